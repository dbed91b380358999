"""The pieces under ``Tensor``: the tensor slots, wrapping graph nodes, array conversion with
torch's dtype rules, argument normalisation (dims, shapes, indices) and the live-tensor registry
that ``graph.flush`` reads."""
from __future__ import annotations

import builtins
import collections
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from . import dtypes as _dt
from . import graph
from . import ops as _ops  # noqa: F401  (registers the ops)
from .graph import leaf, record


class TensorBase:
    """The state of a tensor: its graph node, ``.grad``, the tensor a ``.data`` view writes
    back to, and its key in the live-tensor registry."""
    __slots__ = ("_node", "grad", "_base", "_live_key", "__weakref__")


#: the class ``wrap`` creates by default (``Tensor``, set by tensor.py)
DEFAULT_CLASS: list = [None]


_LIVE = weakref.WeakValueDictionary()
graph.LIVE = None  # replaced below by a view with the interface flush() needs


class _LiveView:
    """The live lazy tensors, for graph.flush: iterable, with ``discard``."""

    def __iter__(self):
        return iter(list(_LIVE.values()))

    def discard(self, t):
        _LIVE.pop(t._live_key, None)


graph.LIVE = _LiveView()


class Size(tuple):
    """``torch.Size``: a tuple of ints."""

    def __repr__(self):
        return f"torch.Size([{', '.join(str(d) for d in self)}])"

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n


torch_max_result = collections.namedtuple("max", ["values", "indices"])
torch_min_result = collections.namedtuple("min", ["values", "indices"])
torch_topk_result = collections.namedtuple("topk", ["values", "indices"])


class _GradFn:
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name

    def __repr__(self):
        return f"<{self._name} object>"


_CORE_GRAD_FN = {"Dense": "Addmm", "Conv": "Convolution", "MaxPool": "MaxPool2DWithIndices",
                 "AvgPool": "AvgPool2D", "AdaptiveAvgPool": "AdaptiveAvgPool2D",
                 "BatchNorm": "NativeBatchNorm", "LayerNorm": "NativeLayerNorm",
                 "Embedding": "Embedding"}
_OP_GRAD_FN = {"getitem": "Slice", "item_of": "Select", "reshape": "View", "transpose": "Permute",
               "softmax": "Softmax", "log_softmax": "LogSoftmax", "cross_entropy": "NllLoss",
               "nll_loss": "NllLoss", "mse_loss": "MseLoss", "identity": "Clone",
               "astype": "ToCopy", "index": "Index", "stop_gradient": "Detach"}


def _grad_fn_name(node) -> str:
    op = node.op
    if op == "core_apply":
        name = _CORE_GRAD_FN.get(type(dict(node.attrs)["module"]).__name__, "CoreApply")
    else:
        name = _OP_GRAD_FN.get(op) or "".join(p.capitalize() for p in op.split("_"))
    return name + "Backward0"


def is_tensor(x) -> bool:
    return isinstance(x, TensorBase)


_SCALARS = (builtins.bool, builtins.int, builtins.float)


def _py_scalar(x):
    """A Python scalar for numbers (numpy ones included), else None."""
    if isinstance(x, _SCALARS):
        return x
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    return None


def as_node(x):
    """The graph node of a Tensor, or a new leaf for an array / number / nested list."""
    if isinstance(x, TensorBase):
        return x._node
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return leaf(x)
    return leaf(_to_array(x, None))


def _to_array(data, dtype):
    """A jax array from numbers / nested lists / numpy arrays, with torch's dtype inference."""
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else None
    if isinstance(data, TensorBase):
        v = data._value()
        return v.astype(jd) if jd is not None and v.dtype != jd else v
    if isinstance(data, (jax.Array, jax.core.Tracer)):
        return data.astype(jd) if jd is not None and data.dtype != jd else data
    if isinstance(data, (list, tuple)) and any(isinstance(d, TensorBase) for d in _flat(data)):
        data = _nested_values(data)
    arr = np.asarray(data)
    if arr.dtype.kind in "UOSV":
        raise TypeError(f"tensor: expected numbers, (nested) lists of numbers or arrays, got "
                        f"{type(data).__name__}")
    if jd is None:
        jd = {"f": jnp.float32 if arr.dtype.itemsize >= 4 else arr.dtype,
              "i": jnp.int32 if arr.dtype.itemsize >= 4 else arr.dtype,
              "u": jnp.int32 if arr.dtype.itemsize >= 4 else arr.dtype}.get(arr.dtype.kind, arr.dtype)
    # a private copy (jax may alias host memory, the caller may mutate its array later), put
    # on the device without compiling anything (jnp.asarray of a numpy array compiles a
    # staging computation per shape)
    return jax.device_put(np.array(arr, dtype=jd, copy=True))


def host_full(shape, value, dtype):
    """``full`` built on the host and put on the device (no XLA compile per shape)."""
    return jax.device_put(np.full(tuple(shape), value, dtype=jnp.dtype(dtype)))


def _flat(data):
    for d in data:
        if isinstance(d, (list, tuple)):
            yield from _flat(d)
        else:
            yield d


def _nested_values(data):
    if isinstance(data, (list, tuple)):
        return [_nested_values(d) for d in data]
    if isinstance(data, TensorBase):
        return np.asarray(data._value())
    return data


def wrap(node, cls=None):
    """A Tensor around ``node`` (multi-output nodes are wrapped by their callers)."""
    t = object.__new__(cls or DEFAULT_CLASS[0])
    t._node = node
    t.grad = None
    t._base = None
    t._live_key = None
    if node.value is None:
        t._live_key = node.seq
        _LIVE[node.seq] = t
    return t


graph.WRAP_GRAD[0] = wrap


def maybe_tensor(x):
    return wrap(x) if isinstance(x, graph.Node) else x


def _op(op, *xs, **attrs):
    """Record ``op`` over tensors/arrays ``xs`` with static ``attrs``; a new Tensor."""
    return wrap(record(op, [as_node(x) for x in xs], tuple(attrs.items())))


def _multi(op, n, *xs, **attrs):
    node = record(op, [as_node(x) for x in xs], tuple(attrs.items()))
    return tuple(wrap(record("item_of", [node], (("i", i),))) for i in range(n))


def _dim(d, ndim, what="dim"):
    if not isinstance(d, (builtins.int, np.integer)) or isinstance(d, builtins.bool):
        raise TypeError(f"{what}: expected an int, got {d!r}")
    lo = -ndim if ndim else -1
    hi = ndim - 1 if ndim else 0
    if not lo <= d <= hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {d})")
    return builtins.int(d) % builtins.max(ndim, 1)


def _dims(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        return tuple(_dim(d, ndim) for d in dim)
    return _dim(dim, ndim)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    return tuple(builtins.int(s) for s in shape)


def _infer_view(shape, numel, old):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def _index_spec(idx):
    """Split an index into a hashable static spec and the tensor indices (advanced)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    spec, tensors, advanced = [], [], False
    for i in idx:
        if isinstance(i, slice):
            spec.append(("slice", _int_or_none(i.start), _int_or_none(i.stop), _int_or_none(i.step)))
        elif i is None:
            spec.append(None)
        elif i is Ellipsis:
            spec.append("...")
        elif isinstance(i, TensorBase):
            if i._node.aval[1] == jnp.bool_:
                return None, None, "mask"
            spec.append("T")
            tensors.append(i)
            advanced = True
        elif isinstance(i, (list, np.ndarray, jax.Array)):
            arr = _to_array(i, None)
            if arr.dtype == jnp.bool_:
                return None, None, "mask"
            spec.append("T")
            tensors.append(wrap(leaf(arr)))
            advanced = True
        elif isinstance(i, (builtins.int, np.integer)) and not isinstance(i, builtins.bool):
            spec.append(builtins.int(i))
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(i).__name__})")
    return tuple(spec), tensors, "advanced" if advanced else "basic"


def _check_int_indices(spec, shape):
    """torch's IndexError for an integer index outside its dimension (XLA would clamp it)."""
    real = [s for s in spec if s is not None]
    if "..." in real:
        at = real.index("...")
        head, tail = real[:at], real[at + 1:]
        dims = list(enumerate(head)) + [(len(shape) - len(tail) + i, s) for i, s in enumerate(tail)]
    else:
        dims = list(enumerate(real))
    for d, s in dims:
        if isinstance(s, builtins.int) and 0 <= d < len(shape) and not -shape[d] <= s < shape[d]:
            raise IndexError(f"index {s} is out of bounds for dimension {d} with size {shape[d]}")


def _dynamic_basic(spec, shape):
    """A basic index ``spec`` of an array of ``shape`` as ``(starts, sizes, out_shape)`` for a
    ``dynamic_slice`` (ints and unit-step slices, with ``None`` and ``...``), or None where it
    takes more (other steps, too many indices: the static path says what is wrong)."""
    if spec.count("...") > 1:
        return None
    n_real = sum(1 for s in spec if s is not None and s != "...")
    if n_real > len(shape):
        return None
    starts, sizes, out = [], [], []
    d = 0
    for s in spec:
        if s is None:
            out.append(1)
        elif s == "...":
            for _ in range(len(shape) - n_real):
                starts.append(0)
                sizes.append(shape[d])
                out.append(shape[d])
                d += 1
        elif isinstance(s, tuple):
            if s[3] not in (None, 1):
                return None
            lo, hi, _ = slice(s[1], s[2]).indices(shape[d])
            size = builtins.max(hi - lo, 0)
            starts.append(builtins.min(lo, shape[d] - size))
            sizes.append(size)
            out.append(size)
            d += 1
        else:
            starts.append(s % shape[d])
            sizes.append(1)
            d += 1
    for size in shape[d:]:
        starts.append(0)
        sizes.append(size)
        out.append(size)
    return np.asarray(starts, np.int32), tuple(sizes), tuple(out)


def _int_or_none(v):
    if v is None:
        return None
    if isinstance(v, TensorBase):
        return builtins.int(v.item())
    return builtins.int(v)


def _from(data, dtype=None):
    """A new concrete leaf tensor from data (numbers, lists, arrays, tensors)."""
    return wrap(leaf(_to_array(data, dtype)))


def _np_index(idx):
    """An index with tensors replaced by numpy arrays (for data-dependent boolean masks)."""
    if isinstance(idx, tuple):
        return tuple(_np_index(i) for i in idx)
    if isinstance(idx, TensorBase):
        return np.asarray(idx._value())
    return idx


@graph.register("setitem")
def _setitem(x, *xs, spec=(), s=None):
    """``x[spec] = value``: a scalar ``s`` or the last array of ``xs``; tensor indices first."""
    it = iter(xs)
    full = tuple(next(it) if p == "T" else _ops._unslice(p) for p in spec)
    v = s if s is not None else next(it)
    return x.at[full].set(jnp.asarray(v, x.dtype) if s is not None else v.astype(x.dtype))
