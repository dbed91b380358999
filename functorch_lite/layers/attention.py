"""Attention: ``scaled_dot_product_attention`` and ``MultiHeadAttention``, as in PyTorch.

``scaled_dot_product_attention(q, k, v, attn_mask=None, *, dropout_p, is_causal, scale,
enable_gqa, key)`` follows ``torch.nn.functional.scaled_dot_product_attention``: a boolean
``attn_mask`` is True where attention IS allowed, a float one is added to the scores; the causal
mask is the lower triangle ``tril(ones(L, S))`` (top-left aligned).

``MultiHeadAttention(num_heads, features)`` follows ``torch.nn.MultiheadAttention(features,
num_heads)`` and loads its ``state_dict`` verbatim once the dotted names are nested:
``{'in_proj_weight': (3E, E), 'in_proj_bias': (3E,), 'out_proj': {'weight': (E, E), 'bias': (E,)}}``
or, when ``kdim``/``vdim`` differ from ``features``, separate ``'q_proj_weight'`` (E, E),
``'k_proj_weight'`` (E, kdim) and ``'v_proj_weight'`` (E, vdim).  Its masks use torch's
``MultiheadAttention`` convention (the opposite of the functional's): a boolean ``attn_mask`` or
``key_padding_mask`` is True where attention is NOT allowed.

Query rows whose keys are all masked get zero attention weights (output = the output bias) in
both, as torch's ``scaled_dot_product_attention`` does (``nn.MultiheadAttention`` with
``need_weights=True`` returns NaN there instead).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec
from . import initializers

__all__ = ["MultiHeadAttention", "scaled_dot_product_attention"]

_INPUT_KEYS = ("query", "key", "value", "attn_mask", "key_padding_mask")


def _safe_softmax(scores):
    """Softmax over the last axis; rows that are entirely -inf give zeros (not NaN), with finite
    gradients."""
    dead = jnp.all(scores == -jnp.inf, axis=-1, keepdims=True)
    w = jax.nn.softmax(jnp.where(dead, jnp.zeros_like(scores), scores), axis=-1)
    return jnp.where(dead, jnp.zeros_like(w), w)


def _as_bias(mask, allowed_when_true: bool, dtype):
    """A boolean or float mask -> an additive float bias (0 or -inf for booleans)."""
    if mask is None:
        return None
    if mask.dtype == jnp.bool_:
        keep = mask if allowed_when_true else ~mask
        return jnp.where(keep, jnp.zeros((), dtype), jnp.full((), -jnp.inf, dtype))
    return mask.astype(dtype)


def _causal_bias(L, S, dtype):
    return _as_bias(jnp.tril(jnp.ones((L, S), jnp.bool_)), True, dtype)


def _attend(q, k, v, bias, scale, dropout_p, key, who):
    """softmax(q k^T * scale + bias) (dropout) @ v -> (out, weights)."""
    scores = jnp.einsum("...le,...se->...ls", q, k) * jnp.asarray(scale, q.dtype)
    if bias is not None:
        scores = scores + bias
    w = _safe_softmax(scores)
    if dropout_p > 0.0:
        if key is None:
            raise ValueError(format_error(
                who, f"attention dropout {dropout_p} needs a random key, got key=None",
                hint="pass key=jax.random.key(seed) (fit and train_step do this for you)"))
        keep = jax.random.bernoulli(key, 1.0 - dropout_p, w.shape)
        w = jnp.where(keep, w / (1.0 - dropout_p), jnp.zeros_like(w))
    return jnp.einsum("...ls,...sv->...lv", w, v), w


def scaled_dot_product_attention(q, k, v, attn_mask=None, *, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False, key=None):
    """``softmax(q @ k^T * scale + mask) @ v`` as ``torch.nn.functional.scaled_dot_product_attention``.

    Shapes: ``q`` (..., L, E), ``k`` (..., S, E), ``v`` (..., S, Ev) -> (..., L, Ev).  ``attn_mask``
    broadcasts to (..., L, S): boolean True = take part in attention, float = added to the
    scores.  ``scale`` defaults to ``1/sqrt(E)``.  ``enable_gqa=True`` lets ``k``/``v`` have fewer
    heads (axis -3) than ``q``, each shared by ``q_heads // kv_heads`` query heads.
    ``dropout_p > 0`` drops attention weights (always, as torch does) and needs ``key``.
    """
    who = "scaled_dot_product_attention"
    if not 0.0 <= dropout_p < 1.0:
        raise ConfigError(f"{who}: dropout_p expected in [0, 1), got {dropout_p!r}")
    for nm, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim < 2:
            raise ShapeError(format_error(who, f"{nm} rank expected >= 2 (..., seq, features), got "
                                               f"{a.ndim} ({nm} {tuple(a.shape)})"))
    shapes = f"(q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)})"
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(format_error(who, f"q features {q.shape[-1]} != k features {k.shape[-1]} {shapes}"))
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(format_error(who, f"k length {k.shape[-2]} != v length {v.shape[-2]} {shapes}"))
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        hq, hk = q.shape[-3], k.shape[-3]
        if k.ndim < 3 or v.shape[-3] != hk or hq % hk:
            raise ShapeError(format_error(
                who, f"enable_gqa: q heads {hq} expected a multiple of k and v heads "
                     f"({k.shape[-3] if k.ndim >= 3 else None}, {v.shape[-3] if v.ndim >= 3 else None}) {shapes}"))
        k = jnp.repeat(k, hq // hk, axis=-3)
        v = jnp.repeat(v, hq // hk, axis=-3)
    L, S = q.shape[-2], k.shape[-2]
    dtype = jnp.result_type(q.dtype, k.dtype)
    if is_causal and attn_mask is not None:
        raise ConfigError(f"{who}: give either attn_mask or is_causal=True, not both")
    bias = _causal_bias(L, S, dtype) if is_causal else None
    if attn_mask is not None:
        try:
            jnp.broadcast_shapes(tuple(attn_mask.shape), q.shape[:-2] + (L, S))
        except ValueError:
            raise ShapeError(format_error(
                who, f"attn_mask shape {tuple(attn_mask.shape)} does not broadcast to "
                     f"{q.shape[:-2] + (L, S)} (..., L, S) {shapes}")) from None
        bias = _as_bias(attn_mask, True, dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    out, _ = _attend(q, k, v, bias, scale, dropout_p, key, who)
    return out


@dataclasses.dataclass(frozen=True, repr=False)
class MultiHeadAttention(Module):
    """``MultiHeadAttention(num_heads, features)``: torch's ``nn.MultiheadAttention``.

    Input: ``x`` (self-attention), a tuple ``(query, key, value, attn_mask, key_padding_mask)``
    (a prefix is enough; a missing or None ``key`` is ``query``, a missing ``value`` is ``key``),
    or a dict with those names (``'query'`` required).  Shapes with ``batch_first=True``: query
    (N, L, features), key (N, S, kdim), value (N, S, vdim); time-major (L, N, ...) otherwise.
    ``attn_mask`` (L, S) or (N*num_heads, L, S), ``key_padding_mask`` (N, S): boolean True = NOT
    allowed, float = added to the scores.  ``is_causal=True`` adds the causal mask
    ``tril(ones(L, S))`` (combined with any ``attn_mask``).

    Output: (N, L, features); with ``need_weights=True`` the pair ``(output, weights)``, weights
    (N, L, S) averaged over heads (``average_attn_weights=True``) or (N, num_heads, L, S), taken
    after dropout as in torch.  ``dropout`` drops attention weights when ``train=True``.
    ``add_bias_kv`` and ``add_zero_attn`` are not supported.
    """
    num_heads: int
    features: int
    _: dataclasses.KW_ONLY
    kdim: int | None = None
    vdim: int | None = None
    dropout: float = 0.0
    use_bias: bool = True
    batch_first: bool = True
    is_causal: bool = False
    need_weights: bool = False
    average_attn_weights: bool = True
    dtype: Any = None

    def __post_init__(self):
        for name in ("num_heads", "features", "kdim", "vdim"):
            v = getattr(self, name)
            if (v is not None or name in ("num_heads", "features")) and (
                    not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ConfigError(f"MultiHeadAttention: {name} expected a positive int, got {v!r}")
        if self.features % self.num_heads:
            raise ConfigError(f"MultiHeadAttention: features {self.features} not divisible by "
                              f"num_heads {self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"MultiHeadAttention: dropout expected in [0, 1), got {self.dropout!r}")

    @property
    def needs_key(self) -> bool:
        return self.dropout > 0.0

    @property
    def _kdim(self) -> int:
        return self.features if self.kdim is None else self.kdim

    @property
    def _vdim(self) -> int:
        return self.features if self.vdim is None else self.vdim

    @property
    def _packed(self) -> bool:
        return self._kdim == self.features and self._vdim == self.features

    # -- inputs --------------------------------------------------------------------------------
    def _inputs(self, x) -> dict:
        if isinstance(x, dict):
            unknown = sorted(set(x) - set(_INPUT_KEYS))
            if unknown or "query" not in x:
                raise TypeError(format_error(
                    "MultiHeadAttention",
                    f"input dict expected keys {list(_INPUT_KEYS)} ('query' required), got {sorted(x)}"))
            d = dict(x)
        elif isinstance(x, (tuple, list)):
            if not 1 <= len(x) <= len(_INPUT_KEYS):
                raise TypeError(format_error(
                    "MultiHeadAttention", f"input tuple expected 1 to 5 entries {_INPUT_KEYS}, got {len(x)}"))
            d = dict(zip(_INPUT_KEYS, x))
        else:
            d = {"query": x}
        d = {n: d.get(n) for n in _INPUT_KEYS}
        if d["key"] is None:
            d["key"] = d["query"]
        if d["value"] is None:
            d["value"] = d["key"]
        return d

    def _check(self, d):
        who = "MultiHeadAttention"
        q, k, v = d["query"], d["key"], d["value"]
        lay = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
        for nm, a in (("query", q), ("key", k), ("value", v)):
            if len(a.shape) != 3:
                raise ShapeError(format_error(
                    who, f"{nm} rank expected 3 {lay}, got {len(a.shape)} ({nm} {tuple(a.shape)})",
                    hint="add a batch axis, e.g. x[None]" if len(a.shape) == 2 else None))
        shapes = f"(query {tuple(q.shape)}, key {tuple(k.shape)}, value {tuple(v.shape)})"
        for nm, a, want, arg in (("query", q, self.features, "features"), ("key", k, self._kdim, "kdim"),
                                 ("value", v, self._vdim, "vdim")):
            if a.shape[-1] != want:
                raise ShapeError(format_error(
                    who, f"{nm} features {a.shape[-1]} != {arg} {want} {shapes}"))
        b = 0 if self.batch_first else 1
        if not q.shape[b] == k.shape[b] == v.shape[b]:
            raise ShapeError(format_error(who, f"batch sizes differ {shapes}"))
        if k.shape[1 - b] != v.shape[1 - b]:
            raise ShapeError(format_error(
                who, f"key length {k.shape[1 - b]} != value length {v.shape[1 - b]} {shapes}"))
        N, L, S = q.shape[b], q.shape[1 - b], k.shape[1 - b]
        am, kpm = d["attn_mask"], d["key_padding_mask"]
        if am is not None and tuple(am.shape) not in ((L, S), (N * self.num_heads, L, S)):
            raise ShapeError(format_error(
                who, f"attn_mask shape expected {(L, S)} or {(N * self.num_heads, L, S)} "
                     f"(L, S) or (N*num_heads, L, S), got {tuple(am.shape)}"))
        if kpm is not None and tuple(kpm.shape) != (N, S):
            raise ShapeError(format_error(
                who, f"key_padding_mask shape expected {(N, S)} (N, S), got {tuple(kpm.shape)}"))
        return N, L, S

    # -- the contract --------------------------------------------------------------------------
    def init(self, key, spec):
        spec = as_spec(spec)
        d = self._inputs(spec)
        self._check(d)
        q = d["query"]
        dtype = self.dtype or (q.dtype if jnp.issubdtype(q.dtype, jnp.floating) else jnp.float32)
        E = self.features
        kq, kk, kv, ko, kb = jax.random.split(key, 5)
        xavier = initializers.glorot_uniform(in_axis=-1, out_axis=-2)   # torch (out, in) layout
        if self._packed:
            params = {"in_proj_weight": xavier(kq, (3 * E, E), dtype)}
        else:
            params = {"q_proj_weight": xavier(kq, (E, E), dtype),
                      "k_proj_weight": xavier(kk, (E, self._kdim), dtype),
                      "v_proj_weight": xavier(kv, (E, self._vdim), dtype)}
        out = {"weight": initializers.torch_kaiming_uniform(in_axis=-1, out_axis=-2)(ko, (E, E), dtype)}
        if self.use_bias:
            params["in_proj_bias"] = jnp.zeros((3 * E,), dtype)
            out["bias"] = jnp.zeros((E,), dtype)
        params["out_proj"] = out
        return params, {}

    def apply(self, params, state, x, *, key=None, train=False):
        d = self._inputs(x)
        N, L, S = self._check(d)
        q, k, v = d["query"], d["key"], d["value"]
        if not self.batch_first:
            q, k, v = (jnp.swapaxes(a, 0, 1) for a in (q, k, v))
        E, H = self.features, self.num_heads
        if self._packed:
            wq, wk, wv = jnp.split(params["in_proj_weight"], 3, axis=0)
        else:
            wq, wk, wv = params["q_proj_weight"], params["k_proj_weight"], params["v_proj_weight"]
        bq = bk = bv = None
        if "in_proj_bias" in params:
            bq, bk, bv = jnp.split(params["in_proj_bias"], 3)

        def project(a, w, b):  # (N, T, in) -> (N, H, T, E/H)
            y = jnp.einsum("nti,oi->nto", a, w)
            if b is not None:
                y = y + b
            return jnp.swapaxes(y.reshape(y.shape[:2] + (H, E // H)), 1, 2)
        qh, kh, vh = project(q, wq, bq), project(k, wk, bk), project(v, wv, bv)
        dtype = qh.dtype

        bias = None
        am, kpm = d["attn_mask"], d["key_padding_mask"]
        if am is not None:
            bias = _as_bias(am, False, dtype)
            if bias.ndim == 3:
                bias = bias.reshape(N, H, L, S)
        if self.is_causal:
            c = _causal_bias(L, S, dtype)
            bias = c if bias is None else bias + c
        if kpm is not None:
            kb = _as_bias(kpm, False, dtype)[:, None, None, :]
            bias = kb if bias is None else bias + kb

        p = self.dropout if train else 0.0
        if p > 0.0 and key is None:
            raise ValueError(format_error(
                "MultiHeadAttention", f"train=True with dropout={self.dropout} needs a random key, got key=None",
                hint="pass key=jax.random.key(seed) (fit and train_step do this for you)"))
        out, w = _attend(qh, kh, vh, bias, 1.0 / math.sqrt(E // H), p, key, "MultiHeadAttention")
        out = jnp.swapaxes(out, 1, 2).reshape(N, L, E)
        out = jnp.einsum("nle,oe->nlo", out, params["out_proj"]["weight"])
        if "bias" in params["out_proj"]:
            out = out + params["out_proj"]["bias"]
        if not self.batch_first:
            out = jnp.swapaxes(out, 0, 1)
        if self.need_weights:
            return (out, jnp.mean(w, axis=1) if self.average_attn_weights else w), state
        return out, state
