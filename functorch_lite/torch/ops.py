"""The op implementations the graph records: ``fn(*arrays, **static_attrs) -> array``.

Every op is a pure function of JAX arrays; Python scalars, dims and shapes are keyword
attributes (static in the compiled graph).  Layers and losses reuse the functional core.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from .. import losses as _losses
from .graph import register

# ----------------------------------------------------------------------------- elementwise


def _binary(name, f, nondiff=False):
    def impl(*xs, s=None, rev=False):
        if len(xs) == 2:
            return f(xs[0], xs[1])
        return f(s, xs[0]) if rev else f(xs[0], s)
    register(name, nondiff=nondiff)(impl)


def _true_div(a, b):
    return jnp.true_divide(a, b)


def _floor_div(a, b):
    return jnp.floor_divide(a, b)


def _remainder(a, b):
    return jnp.remainder(a, b)


def _pow(a, b):
    return jnp.power(a, b)


for _name, _f in (("add", jnp.add), ("sub", jnp.subtract), ("mul", jnp.multiply),
                  ("div", _true_div), ("pow", _pow), ("maximum", jnp.maximum),
                  ("minimum", jnp.minimum), ("atan2", jnp.arctan2)):
    _binary(_name, _f)
for _name, _f in (("floordiv", _floor_div), ("remainder", _remainder), ("eq", jnp.equal),
                  ("ne", jnp.not_equal), ("lt", jnp.less), ("le", jnp.less_equal),
                  ("gt", jnp.greater), ("ge", jnp.greater_equal), ("and", jnp.bitwise_and),
                  ("or", jnp.bitwise_or), ("xor", jnp.bitwise_xor)):
    _binary(_name, _f, nondiff=True)


@jax.custom_jvp
def torch_abs(x):
    """``|x|`` with torch's gradient ``sign(x)`` (0 at 0; JAX's is 1)."""
    return jnp.abs(x)


@torch_abs.defjvp
def _torch_abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * dx


def _unary(name, f, nondiff=False):
    register(name, nondiff=nondiff)(lambda x: f(x))


for _name, _f in (("neg", jnp.negative), ("abs", torch_abs), ("exp", jnp.exp), ("log", jnp.log),
                  ("log2", jnp.log2), ("log10", jnp.log10), ("log1p", jnp.log1p),
                  ("expm1", jnp.expm1), ("sqrt", jnp.sqrt), ("rsqrt", lax.rsqrt),
                  ("sin", jnp.sin), ("cos", jnp.cos), ("tan", jnp.tan), ("tanh", jnp.tanh),
                  ("sigmoid", jax.nn.sigmoid), ("relu", jax.nn.relu), ("silu", jax.nn.silu),
                  ("softplus", jax.nn.softplus), ("erf", jax.scipy.special.erf),
                  ("reciprocal", jnp.reciprocal), ("square", jnp.square),
                  ("relu6", jax.nn.relu6), ("selu", jax.nn.selu), ("mish", lambda x: x * jnp.tanh(jax.nn.softplus(x)))):
    _unary(_name, _f)
for _name, _f in (("sign", jnp.sign), ("floor", jnp.floor), ("ceil", jnp.ceil),
                  ("round", jnp.round), ("trunc", jnp.trunc), ("logical_not", jnp.logical_not),
                  ("bitwise_not", jnp.invert), ("isnan", jnp.isnan), ("isinf", jnp.isinf),
                  ("isfinite", jnp.isfinite)):
    _unary(_name, _f, nondiff=True)


@register("gelu")
def gelu(x, approximate=False):
    return jax.nn.gelu(x, approximate=approximate)


@register("leaky_relu")
def leaky_relu(x, slope=0.01):
    return jax.nn.leaky_relu(x, slope)


@register("elu")
def elu(x, alpha=1.0):
    return jax.nn.elu(x, alpha)


@register("clamp")
def clamp(x, lo=None, hi=None):
    """torch.clamp: the gradient passes where ``lo <= x <= hi`` (ends included)."""
    if lo is not None:
        x = jnp.where(x < lo, jnp.asarray(lo, x.dtype), x)
    if hi is not None:
        x = jnp.where(x > hi, jnp.asarray(hi, x.dtype), x)
    return x


@register("where")
def where(c, x, y):
    return jnp.where(c, x, y)


@register("where_s")
def where_s(c, *xs, x=None, y=None):
    it = iter(xs)
    a = next(it) if x is None else x
    b = next(it) if y is None else y
    return jnp.where(c, a, b)


@register("masked_fill")
def masked_fill(x, mask, value=0.0):
    return jnp.where(mask, jnp.asarray(value, x.dtype), x)


@register("astype", cheap=True)
def astype(x, dtype=None):
    return x.astype(dtype)


@register("stop_gradient", nondiff=True)
def stop_gradient(x):
    return lax.stop_gradient(x)


@register("identity")
def identity(x):
    return x


@register("einsum")
def einsum(*xs, eq=""):
    return jnp.einsum(eq, *xs)


@register("matmul")
def matmul(a, b):
    return jnp.matmul(a, b)


# ----------------------------------------------------------------------------- reductions

@register("sum")
def sum_(x, dim=None, keepdim=False, dtype=None):
    if dtype is None and (jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_):
        dtype = jnp.int32
    return jnp.sum(x, axis=dim, keepdims=keepdim, dtype=dtype)


@register("mean")
def mean(x, dim=None, keepdim=False, dtype=None):
    return jnp.mean(x, axis=dim, keepdims=keepdim, dtype=dtype)


@register("prod")
def prod(x, dim=None, keepdim=False):
    return jnp.prod(x, axis=dim, keepdims=keepdim)


@register("amax")
def amax(x, dim=None, keepdim=False):
    return jnp.max(x, axis=dim, keepdims=keepdim)


@register("amin")
def amin(x, dim=None, keepdim=False):
    return jnp.min(x, axis=dim, keepdims=keepdim)


@register("argmax", nondiff=True)
def argmax(x, dim=None, keepdim=False):
    if dim is None:
        return jnp.argmax(x.reshape(-1)).astype(jnp.int32)
    return jnp.argmax(x, axis=dim, keepdims=keepdim).astype(jnp.int32)


@register("argmin", nondiff=True)
def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return jnp.argmin(x.reshape(-1)).astype(jnp.int32)
    return jnp.argmin(x, axis=dim, keepdims=keepdim).astype(jnp.int32)


@register("max_dim")
def max_dim(x, dim=0, keepdim=False):
    """torch.max(x, dim): (values, indices); indices of the first maximum."""
    return (jnp.max(x, axis=dim, keepdims=keepdim),
            jnp.argmax(x, axis=dim, keepdims=keepdim).astype(jnp.int32))


@register("min_dim")
def min_dim(x, dim=0, keepdim=False):
    return (jnp.min(x, axis=dim, keepdims=keepdim),
            jnp.argmin(x, axis=dim, keepdims=keepdim).astype(jnp.int32))


@register("var")
def var(x, dim=None, correction=1, keepdim=False):
    return jnp.var(x, axis=dim, ddof=correction, keepdims=keepdim)


@register("std")
def std(x, dim=None, correction=1, keepdim=False):
    return jnp.std(x, axis=dim, ddof=correction, keepdims=keepdim)


@register("norm")
def norm(x, p=2, dim=None, keepdim=False):
    if p == 2:
        return jnp.sqrt(jnp.sum(jnp.square(x), axis=dim, keepdims=keepdim))
    if p == 1:
        return jnp.sum(jnp.abs(x), axis=dim, keepdims=keepdim)
    if p == math.inf:
        return jnp.max(jnp.abs(x), axis=dim, keepdims=keepdim)
    return jnp.sum(jnp.abs(x) ** p, axis=dim, keepdims=keepdim) ** (1.0 / p)


@register("logsumexp")
def logsumexp(x, dim=None, keepdim=False):
    return jax.nn.logsumexp(x, axis=dim, keepdims=keepdim)


@register("all", nondiff=True)
def all_(x, dim=None, keepdim=False):
    return jnp.all(x, axis=dim, keepdims=keepdim)


@register("any", nondiff=True)
def any_(x, dim=None, keepdim=False):
    return jnp.any(x, axis=dim, keepdims=keepdim)


@register("cumsum")
def cumsum(x, dim=0):
    return jnp.cumsum(x, axis=dim)


@register("softmax")
def softmax(x, dim=-1):
    return jax.nn.softmax(x, axis=dim)


@register("log_softmax")
def log_softmax(x, dim=-1):
    return jax.nn.log_softmax(x, axis=dim)


@register("topk")
def topk(x, k=1, dim=-1, largest=True):
    xm = jnp.moveaxis(x, dim, -1)
    v, i = lax.top_k(xm if largest else -xm, k)
    v = v if largest else -v
    return jnp.moveaxis(v, -1, dim), jnp.moveaxis(i.astype(jnp.int32), -1, dim)


# ----------------------------------------------------------------------------- shapes

@register("reshape", cheap=True)
def reshape(x, shape=()):
    return jnp.reshape(x, shape)


@register("transpose", cheap=True)
def transpose(x, perm=()):
    return jnp.transpose(x, perm)


@register("expand", cheap=True)
def expand(x, shape=()):
    return jnp.broadcast_to(x, shape)


@register("getitem", cheap=True)
def getitem(x, index=()):
    """Basic indexing; ``index`` is hashable: slices are ('slice', start, stop, step)."""
    return x[tuple(_unslice(s) for s in index)]


@register("index")
def index(x, *idx, spec=()):
    """Advanced indexing: ``spec`` holds static parts and None where a tensor index goes."""
    it = iter(idx)
    full = tuple(next(it) if s == "T" else _unslice(s) for s in spec)
    return x[full]


def _unslice(s):
    if isinstance(s, tuple) and s and s[0] == "slice":
        return slice(*s[1:])
    if s == "...":
        return Ellipsis
    return s


@register("slice_at")
def slice_at(x, starts, sizes=(), shape=()):
    """Basic indexing (ints, unit-step slices) of a concrete tensor with the starts as an
    argument: one compiled function per output shape, not one per index (``xs[i]`` in a
    Dataset, ``perm[i:i + 128]`` in a loop)."""
    return lax.dynamic_slice(x, [starts[d] for d in range(x.ndim)], sizes).reshape(shape)


@register("rows", cheap=True)
def rows(x, idx):
    """``x[idx]`` for an integer tensor ``idx``: rows of a concrete tensor, recorded lazily so
    a training step gathers its minibatch itself instead of waiting for a separate dispatch."""
    return x[idx]


@register("item_of", cheap=True)
def item_of(x, i=0):
    return x[i]


@register("cat")
def cat(*xs, dim=0):
    return jnp.concatenate(xs, axis=dim)


@register("stack")
def stack(*xs, dim=0):
    return jnp.stack(xs, axis=dim)


@register("flip")
def flip(x, dims=()):
    return jnp.flip(x, axis=dims)


@register("roll")
def roll(x, shifts=0, dims=None):
    return jnp.roll(x, shifts, axis=dims)


@register("repeat")
def repeat(x, reps=()):
    return jnp.tile(x, reps)


@register("tril")
def tril(x, k=0):
    return jnp.tril(x, k)


@register("triu")
def triu(x, k=0):
    return jnp.triu(x, k)


@register("gather")
def gather(x, idx, dim=0):
    return jnp.take_along_axis(x, idx, axis=dim)


@register("index_select")
def index_select(x, idx, dim=0):
    return jnp.take(x, idx, axis=dim)


@register("one_hot", nondiff=True)
def one_hot(x, num_classes=-1):
    return jax.nn.one_hot(x, num_classes, dtype=jnp.int32)


@register("pad")
def pad(x, pads=(), value=0.0):
    return jnp.pad(x, pads, constant_values=value)


@register("take_rows", cheap=True, nondiff=True)
def take_rows(x, idx):
    """A minibatch: rows ``idx`` of a device-resident dataset array (the DataLoader's batches)."""
    return jnp.take(x, idx, axis=0, mode="clip")


# ----------------------------------------------------------------------------- nn

def _nest(names, arrays):
    """Flat names ('l0/weight_ih') and arrays -> the nested params dict a core module takes."""
    out: dict = {}
    for name, a in zip(names, arrays):
        *path, last = name.split("/")
        d = out
        for part in path:
            d = d.setdefault(part, {})
        d[last] = a
    return out


@register("core_apply")
def core_apply(x, *arrays, module=None, params=(), state=(), train=False, key=False, extra=0):
    """``module.apply`` of a functional-core layer.  ``arrays`` are the params (named by
    ``params``, '/' nesting), the state (named by ``state``), then, with ``key``, a base key and
    a counter, then ``extra`` arrays packed with ``x`` as ``(x, extra)`` (an RNN's initial
    state).  Nested outputs come back flattened (a tuple of arrays)."""
    i = len(params)
    p = _nest(params, arrays[:i])
    s = dict(zip(state, arrays[i:i + len(state)]))
    i += len(state)
    rng = None
    if key:
        rng = jax.random.fold_in(arrays[i], arrays[i + 1])
        i += 2
    if extra:
        rest = arrays[i:i + extra]
        x = (x, rest[0] if extra == 1 else tuple(rest))
    y, new_s = module.apply(p, s, x, key=rng, train=train)
    if isinstance(y, (tuple, list)):
        y = tuple(jax.tree_util.tree_leaves(y))
    if state and train:
        return (y if isinstance(y, tuple) else (y,)) + tuple(new_s[k] for k in state)
    return y


@register("dropout")
def dropout(x, base, counter, p=0.5):
    key = jax.random.fold_in(base, counter)
    keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x / (1.0 - p), jnp.zeros_like(x))


@register("embedding_pad")
def embedding_pad(ids, weight, pad=0):
    """Embedding rows; the ``pad`` row gets no gradient (torch's padding_idx)."""
    rows = jnp.take(weight, ids, axis=0)
    return jnp.where((ids == pad)[..., None], lax.stop_gradient(rows), rows)


def _masked_reduce(per, mask, reduction, weights=None):
    w = mask.astype(per.dtype) if weights is None else weights * mask.astype(per.dtype)
    per = per * w
    if reduction == "none":
        return per
    if reduction == "sum":
        return jnp.sum(per)
    return jnp.sum(per) / jnp.sum(w)


@register("cross_entropy")
def cross_entropy(x, target, *weight, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: class axis 1, class indices or probabilities."""
    axis = 1 if x.ndim > 1 else 0
    w = weight[0] if weight else None
    if x.shape == target.shape:   # class probabilities
        logp = jax.nn.log_softmax(x, axis=axis)
        c = x.shape[axis]
        tgt = target * (1 - label_smoothing) + label_smoothing / c
        if w is not None:
            shape = [1] * x.ndim
            shape[axis] = c
            logp = logp * w.reshape(shape)
        per = -jnp.sum(tgt * logp, axis=axis)
        if reduction == "none":
            return per
        return jnp.sum(per) if reduction == "sum" else jnp.sum(per) / per.size
    mask = target != ignore_index
    safe = jnp.where(mask, target, 0)
    per = _losses.softmax_cross_entropy(x, safe, axis=axis, reduction="none",
                                        label_smoothing=0.0)
    if label_smoothing:
        logp = jax.nn.log_softmax(x, axis=axis)
        c = x.shape[axis]
        if w is not None:
            shape = [1] * x.ndim
            shape[axis] = c
            smooth = -jnp.sum(logp * w.reshape(shape), axis=axis)
        else:
            smooth = -jnp.sum(logp, axis=axis)
        wt = jnp.take(w, safe, axis=0) if w is not None else None
        nll = per * (wt if wt is not None else 1.0)
        per_mix = (1 - label_smoothing) * nll + label_smoothing / c * smooth
        per_mix = per_mix * mask.astype(x.dtype)
        if reduction == "none":
            return per_mix
        if reduction == "sum":
            return jnp.sum(per_mix)
        denom = jnp.sum(wt * mask) if wt is not None else jnp.sum(mask.astype(x.dtype))
        return jnp.sum(per_mix) / denom
    wt = jnp.take(w, safe, axis=0) if w is not None else None
    return _masked_reduce(per, mask, reduction, wt)


@register("nll_loss")
def nll_loss(x, target, *weight, reduction="mean", ignore_index=-100):
    axis = 1 if x.ndim > 1 else 0
    w = weight[0] if weight else None
    mask = target != ignore_index
    safe = jnp.where(mask, target, 0)
    per = _losses.nll_loss(x, safe, axis=axis, reduction="none")
    wt = jnp.take(w, safe, axis=0) if w is not None else None
    return _masked_reduce(per, mask, reduction, wt)


@register("mse_loss")
def mse_loss(x, y, reduction="mean"):
    return _losses.mse_loss(x, y, reduction=reduction)


@register("l1_loss")
def l1_loss(x, y, reduction="mean"):
    per = torch_abs(x - y)   # the core's l1_loss has JAX's gradient 1 at a zero difference
    if reduction == "none":
        return per
    return jnp.sum(per) if reduction == "sum" else jnp.mean(per)


@register("smooth_l1_loss")
def smooth_l1_loss(x, y, reduction="mean", beta=1.0):
    return _losses.smooth_l1_loss(x, y, reduction=reduction, beta=beta)


@register("bce_with_logits")
def bce_with_logits(x, y, *extra, reduction="mean", has_weight=False, has_pos_weight=False):
    it = iter(extra)
    w = next(it) if has_weight else None
    pw = next(it) if has_pos_weight else None
    log_p = jax.nn.log_sigmoid(x)
    log_not_p = jax.nn.log_sigmoid(-x)
    per = -((pw * y * log_p if pw is not None else y * log_p) + (1 - y) * log_not_p)
    if w is not None:
        per = per * w
    if reduction == "none":
        return per
    return jnp.sum(per) if reduction == "sum" else jnp.mean(per)


@register("bce")
def bce(x, y, *extra, reduction="mean", has_weight=False):
    per = -(y * jnp.maximum(jnp.log(x), -100.0) + (1 - y) * jnp.maximum(jnp.log1p(-x), -100.0))
    if has_weight:
        per = per * extra[0]
    if reduction == "none":
        return per
    return jnp.sum(per) if reduction == "sum" else jnp.mean(per)
