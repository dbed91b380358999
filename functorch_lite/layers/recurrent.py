"""Recurrent layers: SimpleRNN, LSTM and GRU, each a ``jax.lax.scan`` over time.

Parameters mirror PyTorch's so its weights load verbatim: one dict per layer and direction,
named like torch's suffixes (``'l0'``, ``'l0_reverse'``, ``'l1'``, ...), each holding
``{'weight_ih': (G*H, in), 'weight_hh': (G*H, H), 'bias_ih': (G*H,), 'bias_hh': (G*H,)}`` with
torch's gate order (LSTM: i, f, g, o; GRU: r, z, n, G = 4 and 3; SimpleRNN: G = 1).  Every
parameter starts U(-1/sqrt(H), 1/sqrt(H)) as in torch.  ``rnn_params_from_torch`` and
``rnn_params_to_torch`` convert a torch ``state_dict`` (flat ``weight_ih_l0_reverse`` names).

Input: ``x`` of shape (N, T, C) (``batch_first=True``) or (T, N, C), or a tuple
``(x, initial_state)`` where ``initial_state`` is ``h_0`` (SimpleRNN, GRU) or ``(h_0, c_0)``
(LSTM), each of torch's shape (num_layers * num_directions, N, H).

Output: the last layer's outputs (N, T, D*H) (time-major (T, N, D*H) when ``batch_first=False``),
the two directions concatenated on the last axis; with ``return_sequences=False`` only the last
time step ``outputs[:, -1]`` (N, D*H) (as torch's ``out[:, -1]``: for the reverse direction that
is its output after one step; the final states ``h_n`` hold each direction's last step).  With
``return_state=True`` the output is ``(outputs, final_state)``, ``final_state`` being ``h_n`` or
``(h_n, c_n)`` of shape (num_layers * num_directions, N, H), like torch.

``dropout`` acts on the inputs of layers 1.. (as torch) only when ``train=True``; layer ``l``'s
input goes through ``Dropout(dropout)`` with key ``jax.random.fold_in(key, l)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec
from . import activations
from .dropout import Dropout

__all__ = ["SimpleRNN", "LSTM", "GRU", "rnn_params_from_torch", "rnn_params_to_torch"]

_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _suffix(layer: int, reverse: bool) -> str:
    return f"l{layer}" + ("_reverse" if reverse else "")


def rnn_params_from_torch(state_dict) -> dict:
    """A torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` ``state_dict`` (``weight_ih_l0``, ...,
    ``bias_hh_l1_reverse``) -> this module's nested params ``{'l0': {'weight_ih', ...}, ...}``
    (tensors become jax arrays; nothing is transposed)."""
    params: dict = {}
    for name, value in state_dict.items():
        for w in _WEIGHTS:
            if name.startswith(w + "_l"):
                arr = value.detach().cpu().numpy() if hasattr(value, "detach") else value
                params.setdefault(name[len(w) + 1:], {})[w] = jnp.asarray(arr)
                break
        else:
            raise ConfigError(f"rnn_params_from_torch: unexpected entry {name!r}; expected names like "
                              f"'weight_ih_l0' or 'bias_hh_l1_reverse' (proj_size is not supported)")
    return params


def rnn_params_to_torch(params) -> dict:
    """The inverse of ``rnn_params_from_torch``: flat torch names -> numpy arrays (load them with
    ``module.load_state_dict({k: torch.from_numpy(v) ...})``)."""
    import numpy as np
    return {f"{w}_{sfx}": np.array(p[w]) for sfx, p in params.items() for w in _WEIGHTS if w in p}


@dataclasses.dataclass(frozen=True, repr=False)
class _Recurrent(Module):
    features: int
    _: dataclasses.KW_ONLY
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = True
    return_sequences: bool = True
    return_state: bool = False
    dropout: float = 0.0
    use_bias: bool = True
    dtype: Any = None

    _gates = 1  # G: rows of weight_ih per hidden unit

    def __post_init__(self):
        kind = type(self).__name__
        for name in ("features", "num_layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{kind}: {name} expected a positive int, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{kind}: dropout expected in [0, 1), got {self.dropout!r}")

    @property
    def needs_key(self) -> bool:  # dropout between stacked layers draws randomness
        return self.dropout > 0.0 and self.num_layers > 1

    @property
    def _dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _has_c(self) -> bool:
        return False

    # -- the cell: (carry, input projection at t) -> (carry, h_t) ---------------------------
    def _cell(self, p, carry, xp):
        raise NotImplementedError

    def _split_input(self, x):
        """x or (x, initial_state) -> (x, initial_state or None)."""
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ShapeError(format_error(
                    type(self).__name__, f"input expected an array or a pair (x, initial_state), got a "
                                         f"sequence of length {len(x)}"))
            return x[0], x[1]
        return x, None

    def _check_x(self, shape):
        kind = type(self).__name__
        if len(shape) != 3:
            axes = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ShapeError(format_error(
                kind, f"input rank expected 3 {axes}, got {len(shape)} (input {tuple(shape)})",
                hint="add a batch axis, e.g. x[None]" if len(shape) == 2 else None))

    def init(self, key, spec):
        spec = as_spec(spec)
        if not isinstance(spec, jax.ShapeDtypeStruct):  # (x, initial_state) spec
            spec = spec[0]
        self._check_x(spec.shape)
        dtype = self.dtype or (spec.dtype if jnp.issubdtype(spec.dtype, jnp.floating) else jnp.float32)
        H, G = self.features, self._gates
        bound = 1.0 / math.sqrt(H)
        keys = iter(jax.random.split(key, self.num_layers * self._dirs * 4))
        params = {}
        for layer in range(self.num_layers):
            fan_in = spec.shape[-1] if layer == 0 else H * self._dirs
            shapes = {"weight_ih": (G * H, fan_in), "weight_hh": (G * H, H),
                      "bias_ih": (G * H,), "bias_hh": (G * H,)}
            for reverse in ((False, True) if self.bidirectional else (False,)):
                p = {}
                for w, shape in shapes.items():
                    k = next(keys)
                    if w.startswith("bias") and not self.use_bias:
                        continue
                    p[w] = jax.random.uniform(k, shape, dtype, -bound, bound)
                params[_suffix(layer, reverse)] = p
        return params, {}

    def _initial(self, init_state, n, dtype):
        """The initial carries, one per (layer, direction), in torch's order."""
        kind = type(self).__name__
        L = self.num_layers * self._dirs
        want = (L, n, self.features)
        if init_state is None:
            z = jnp.zeros(want, dtype)
            hs, cs = z, z
        else:
            if self._has_c:
                if not (isinstance(init_state, (tuple, list)) and len(init_state) == 2):
                    raise ShapeError(format_error(
                        kind, f"initial_state expected a pair (h_0, c_0), got "
                              f"{type(init_state).__name__}"))
                hs, cs = init_state
            else:
                hs, cs = init_state, None
            for nm, s in (("h_0", hs), ("c_0", cs)):
                if s is not None and tuple(s.shape) != want:
                    raise ShapeError(format_error(
                        kind, f"initial {nm} shape expected {want} (num_layers*num_directions, batch, "
                              f"features), got {tuple(s.shape)}"))
        if self._has_c:
            return [(hs[i], cs[i]) for i in range(L)]
        return [hs[i] for i in range(L)]

    def apply(self, params, state, x, *, key=None, train=False):
        kind = type(self).__name__
        x, init_state = self._split_input(x)
        self._check_x(x.shape)
        w0 = params["l0"]["weight_ih"]
        if x.shape[-1] != w0.shape[1]:
            raise ShapeError(format_error(
                kind, f"input features {x.shape[-1]} != weight_ih_l0 in-features {w0.shape[1]} "
                      f"(input {tuple(x.shape)}, weight_ih {tuple(w0.shape)})"))
        seq = x if not self.batch_first else jnp.swapaxes(x, 0, 1)   # (T, N, C)
        T, n = seq.shape[0], seq.shape[1]
        if T == 0 and not self.return_sequences:
            raise ShapeError(format_error(
                kind, f"input time axis is empty (input {tuple(x.shape)}); return_sequences=False "
                      f"needs at least one step"))
        dtype = jnp.result_type(seq.dtype, w0.dtype)
        carries = self._initial(init_state, n, dtype)
        drop_on = train and self.dropout > 0.0 and self.num_layers > 1
        if drop_on and key is None:
            raise ValueError(format_error(
                kind, f"train=True with dropout={self.dropout} needs a random key, got key=None",
                hint="pass key=jax.random.key(seed) (fit and train_step do this for you)"))
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and drop_on:
                seq, _ = Dropout(self.dropout).apply({}, {}, seq, key=jax.random.fold_in(key, layer),
                                                     train=True)
            outs = []
            for d, reverse in enumerate((False, True) if self.bidirectional else (False,)):
                p = params[_suffix(layer, reverse)]
                xp = jnp.einsum("tnc,gc->tng", seq, p["weight_ih"])
                if "bias_ih" in p:
                    xp = xp + p["bias_ih"]
                carry, ys = jax.lax.scan(lambda c, xt, p=p: self._cell(p, c, xt),
                                         carries[layer * self._dirs + d], xp, reverse=reverse)
                outs.append(ys)
                finals.append(carry)
            seq = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
        if self.return_sequences:
            y = seq if not self.batch_first else jnp.swapaxes(seq, 0, 1)
        else:
            y = seq[-1]
        if self.return_state:
            if self._has_c:
                final = (jnp.stack([c[0] for c in finals]), jnp.stack([c[1] for c in finals]))
            else:
                final = jnp.stack(finals)
            y = (y, final)
        return y, state

    def _hh(self, p, h):
        hp = h @ p["weight_hh"].T
        return hp + p["bias_hh"] if "bias_hh" in p else hp


@dataclasses.dataclass(frozen=True, repr=False)
class SimpleRNN(_Recurrent):
    """Elman RNN ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (``torch.nn.RNN``;
    ``activation`` 'tanh' (default), 'relu', or any activation name or function)."""
    _: dataclasses.KW_ONLY
    activation: Any = "tanh"

    def __post_init__(self):
        super().__post_init__()
        activations.get(self.activation)

    def _cell(self, p, h, xp):
        h = activations.get(self.activation)(xp + self._hh(p, h))
        return h, h


@dataclasses.dataclass(frozen=True, repr=False)
class LSTM(_Recurrent):
    """Long short-term memory (``torch.nn.LSTM``, gates i, f, g, o):
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``."""
    _gates = 4

    @property
    def _has_c(self) -> bool:
        return True

    def _cell(self, p, carry, xp):
        h, c = carry
        i, f, g, o = jnp.split(xp + self._hh(p, h), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


@dataclasses.dataclass(frozen=True, repr=False)
class GRU(_Recurrent):
    """Gated recurrent unit (``torch.nn.GRU``, gates r, z, n):
    ``n = tanh(x_n + r * (W_hn h + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``."""
    _gates = 3

    def _cell(self, p, h, xp):
        xr, xz, xn = jnp.split(xp, 3, axis=-1)
        hr, hz, hn = jnp.split(self._hh(p, h), 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        nn = jnp.tanh(xn + r * hn)
        h = (1.0 - z) * nn + z * h
        return h, h
