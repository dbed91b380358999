"""``Tensor``: a handle on a graph node (lazy under autograd, concrete otherwise), ``Size``.

Shapes and dtypes are known without running anything; values materialise on ``.item()``,
``.numpy()``, ``print``, ``bool`` and friends (see ``graph.py``).
"""
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

__all__ = ["Tensor", "Size", "as_node", "wrap", "is_tensor", "maybe_tensor", "host_full"]

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
    return isinstance(x, Tensor)


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
    if isinstance(x, Tensor):
        return x._node
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return leaf(x)
    return leaf(_to_array(x, None))


def _to_array(data, dtype):
    """A jax array from numbers / nested lists / numpy arrays, with torch's dtype inference."""
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else None
    if isinstance(data, Tensor):
        v = data._value()
        return v.astype(jd) if jd is not None and v.dtype != jd else v
    if isinstance(data, (jax.Array, jax.core.Tracer)):
        return data.astype(jd) if jd is not None and data.dtype != jd else data
    if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in _flat(data)):
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
    if isinstance(data, Tensor):
        return np.asarray(data._value())
    return data


def wrap(node, cls=None) -> "Tensor":
    """A Tensor around ``node`` (multi-output nodes are wrapped by their callers)."""
    t = object.__new__(cls or Tensor)
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
        elif isinstance(i, Tensor):
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
        elif isinstance(i, Tensor) is False and _py_scalar(i) is not None and isinstance(i, builtins.bool):
            spec.append(i)
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(i).__name__})")
    return tuple(spec), tensors, "advanced" if advanced else "basic"


def _int_or_none(v):
    if v is None:
        return None
    if isinstance(v, Tensor):
        return builtins.int(v.item())
    return builtins.int(v)


class Tensor:
    """A torch-like tensor over a JAX array or a lazy graph node."""
    __slots__ = ("_node", "grad", "_base", "_live_key", "__weakref__")
    __array_priority__ = 1000

    def __new__(cls, *args, **kwargs):
        # legacy constructor: torch.Tensor([1, 2]) / torch.Tensor(2, 3)
        if args and all(isinstance(a, builtins.int) for a in args):
            value = host_full(args, 0, jnp.float32)
        elif len(args) == 1:
            value = _to_array(args[0], _dt.float32)
        elif not args:
            value = host_full((0,), 0, jnp.float32)
        else:
            raise TypeError(f"Tensor(): expected data or sizes, got {args!r}")
        return wrap(leaf(value), cls)

    def __init__(self, *args, **kwargs):
        pass

    # ------------------------------------------------------------------ values
    def _value(self):
        return graph.materialize(self._node)

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return np.asarray(self._value())

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self._value())
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        n = self.numel()
        if n != 1:
            raise RuntimeError(f"a Tensor with {n} elements cannot be converted to Scalar")
        return np.asarray(self._value()).reshape(()).item()

    def tolist(self):
        return np.asarray(self._value()).tolist()

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __bool__(self):
        n = self.numel()
        if n != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self.item())

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return iter([self[i] for i in range(self.shape[0])])

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return _format(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self.numel() == 1 and spec:
            return format(self.item(), spec)
        return repr(self)

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> Size:
        a = self._node.aval
        return Size(a[0])

    def size(self, dim=None):
        s = self.shape
        return s if dim is None else s[_dim(dim, len(s))]

    def dim(self) -> int:
        return len(self._node.aval[0])

    ndimension = dim

    @property
    def ndim(self) -> int:
        return len(self._node.aval[0])

    def numel(self) -> int:
        n = 1
        for d in self._node.aval[0]:
            n *= d
        return n

    nelement = numel

    @property
    def dtype(self):
        return _dt.from_jax_dtype(self._node.aval[1])

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def device(self):
        return _dt.device("cpu")

    @property
    def is_cuda(self):
        return False

    def is_floating_point(self) -> bool:
        return builtins.bool(jnp.issubdtype(self._node.aval[1], jnp.floating))

    @property
    def requires_grad(self) -> bool:
        return self._node.requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True):
        n = self._node
        if n.op is not None and n.requires_grad and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if n.op is not None:
            if requires_grad:
                raise RuntimeError("you can only change requires_grad flags of leaf variables.")
            return self
        if requires_grad and not jnp.issubdtype(n.aval[1], jnp.inexact):
            raise RuntimeError("only Tensors of floating point and complex dtype can require "
                               "gradients")
        n.requires_grad = builtins.bool(requires_grad)
        n.owner = weakref.ref(self) if requires_grad else None
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node.op is None or not self._node.requires_grad

    @property
    def grad_fn(self):
        n = self._node
        if n.op is None or not n.requires_grad:
            return None
        return _GradFn(_grad_fn_name(n))

    def retain_grad(self):
        if not self.is_leaf:
            raise RuntimeError("retain_grad() is not supported by functorch_lite.torch: only leaf "
                               "tensors (parameters, inputs with requires_grad=True) get .grad")

    @property
    def data(self):
        t = wrap(leaf(self._value()), Tensor)
        t._base = self
        return t

    @data.setter
    def data(self, other):
        v = _to_array(other, None)
        self._set_value(v)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if create_graph:
            raise NotImplementedError(
                "backward(create_graph=True) is not supported; for higher-order derivatives use "
                "functorch_lite.torch.func (grad of grad, hessian, jvp)")
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...) is not supported; set requires_grad "
                                      "on the tensors you want gradients for")
        if not self._node.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        seed = None
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
        else:
            g = gradient if isinstance(gradient, Tensor) else Tensor._from(gradient)
            if tuple(g.shape) != tuple(self.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {g.shape} and "
                                   f"output[0] has a shape of {self.shape}.")
            seed = g.detach()._node
        graph.start_backward(self._node, seed, builtins.bool(retain_graph))

    def detach(self):
        n = self._node
        if n.value is not None:
            return wrap(leaf(n.value))
        return wrap(record("stop_gradient", [n]))

    def detach_(self):
        if self._node.op is not None and self._node.requires_grad:
            self._node = self.detach()._node
        return self

    def clone(self, memory_format=None):
        return _op("identity", self)

    def contiguous(self, memory_format=None):
        return self

    # ------------------------------------------------------------------ internal
    @classmethod
    def _from(cls, data, dtype=None, requires_grad=False):
        t = wrap(leaf(_to_array(data, dtype)), cls)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def _set_value(self, value):
        """Replace the value of a leaf in place (optimizer steps, .data =, in-place under no_grad)."""
        rg = self._node.requires_grad and self._node.op is None
        n = leaf(value, rg)
        if rg:
            n.owner = weakref.ref(self)
        self._node = n
        if self._live_key is not None:
            _LIVE.pop(self._live_key, None)
            self._live_key = None

    def _inplace(self, node):
        """Make this tensor hold ``node``, the result of an in-place op."""
        old = self._node
        if old.op is None and old.requires_grad and graph.grad_enabled() and not graph.is_functional():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        if tuple(node.aval[0]) != tuple(old.aval[0]):
            raise RuntimeError(f"output with shape {list(old.aval[0])} doesn't match the broadcast "
                               f"shape {list(node.aval[0])}")
        if node.aval[1] != old.aval[1]:
            node = record("astype", [node], (("dtype", old.aval[1]),))
        if node.value is not None:
            if old.op is None and old.requires_grad:
                self._set_value(node.value)
            else:
                self._set_node(node if node.op is None else leaf(node.value))
        else:
            self._set_node(node)
        if self._base is not None:
            self._base._set_value(self._value())
        return self

    def _set_node(self, node):
        if self._live_key is not None:
            _LIVE.pop(self._live_key, None)
            self._live_key = None
        self._node = node
        if node.value is None:
            self._live_key = node.seq
            _LIVE[node.seq] = self

    # ------------------------------------------------------------------ conversions
    def to(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, _dt.dtype):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, _dt.device)):
                _dt.device(a)   # validates the string
        if dtype is None or _dt.as_jax_dtype(dtype) == self._node.aval[1]:
            return self
        return self.type(dtype)

    def type(self, dtype=None):
        if dtype is None:
            return {"float32": "torch.FloatTensor", "int64": "torch.LongTensor",
                    "bool": "torch.BoolTensor"}.get(self.dtype.name, f"torch.{self.dtype.name}")
        if isinstance(dtype, str):
            dtype = {"torch.FloatTensor": _dt.float32, "torch.LongTensor": _dt.int64}.get(dtype, dtype)
        jd = _dt.as_jax_dtype(dtype)
        if jd == self._node.aval[1]:
            return self
        return _op("astype", self, dtype=jd)

    def type_as(self, other):
        return self.to(other.dtype)

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("Torch not compiled with CUDA enabled (functorch_lite.torch runs on "
                           "JAX's default device; keep .to(device) with device='cpu')")

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)

    def byte(self):
        return self.to(_dt.uint8)

    # ------------------------------------------------------------------ operators
    def _bin(self, op, other, rev=False):
        s = _py_scalar(other)
        if s is not None:
            return wrap(record(op, [self._node], (("s", s), ("rev", rev))))
        if not isinstance(other, Tensor):
            if isinstance(other, (list, tuple, np.ndarray, jax.Array)):
                other = Tensor._from(other)
            else:
                return NotImplemented
        a, b = (other, self) if rev else (self, other)
        return wrap(record(op, [a._node, b._node]))

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __floordiv__(self, o): return self._bin("floordiv", o)
    def __rfloordiv__(self, o): return self._bin("floordiv", o, True)
    def __mod__(self, o): return self._bin("remainder", o)
    def __rmod__(self, o): return self._bin("remainder", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __matmul__(self, o): return self.matmul(o)
    def __rmatmul__(self, o): return Tensor._from(o).matmul(self)
    def __and__(self, o): return self._bin("and", o)
    def __rand__(self, o): return self._bin("and", o, True)
    def __or__(self, o): return self._bin("or", o)
    def __ror__(self, o): return self._bin("or", o, True)
    def __xor__(self, o): return self._bin("xor", o)
    def __eq__(self, o): return self._bin("eq", o)
    def __ne__(self, o): return self._bin("ne", o)
    def __lt__(self, o): return self._bin("lt", o)
    def __le__(self, o): return self._bin("le", o)
    def __gt__(self, o): return self._bin("gt", o)
    def __ge__(self, o): return self._bin("ge", o)
    def __neg__(self): return _op("neg", self)
    def __pos__(self): return self
    def __abs__(self): return _op("abs", self)

    def __invert__(self):
        return _op("logical_not" if self._node.aval[1] == jnp.bool_ else "bitwise_not", self)

    def __iadd__(self, o): return self._inplace(self._bin("add", o)._node)
    def __isub__(self, o): return self._inplace(self._bin("sub", o)._node)
    def __imul__(self, o): return self._inplace(self._bin("mul", o)._node)
    def __itruediv__(self, o): return self._inplace(self._bin("div", o)._node)

    add = lambda self, other, alpha=1: self._bin("add", other if alpha == 1 else other * alpha)  # noqa: E731
    sub = lambda self, other, alpha=1: self._bin("sub", other if alpha == 1 else other * alpha)  # noqa: E731
    mul = lambda self, other: self._bin("mul", other)  # noqa: E731
    multiply = mul
    div = lambda self, other: self._bin("div", other)  # noqa: E731
    divide = div
    pow = lambda self, e: self._bin("pow", e)  # noqa: E731
    eq = lambda self, o: self._bin("eq", o)  # noqa: E731
    ne = lambda self, o: self._bin("ne", o)  # noqa: E731
    lt = lambda self, o: self._bin("lt", o)  # noqa: E731
    le = lambda self, o: self._bin("le", o)  # noqa: E731
    gt = lambda self, o: self._bin("gt", o)  # noqa: E731
    ge = lambda self, o: self._bin("ge", o)  # noqa: E731
    maximum = lambda self, o: self._bin("maximum", o)  # noqa: E731
    minimum = lambda self, o: self._bin("minimum", o)  # noqa: E731
    remainder = lambda self, o: self._bin("remainder", o)  # noqa: E731
    floor_divide = lambda self, o: self._bin("floordiv", o)  # noqa: E731
    logical_and = lambda self, o: self.bool()._bin("and", o.bool() if isinstance(o, Tensor) else o)  # noqa: E731
    logical_or = lambda self, o: self.bool()._bin("or", o.bool() if isinstance(o, Tensor) else o)  # noqa: E731

    def add_(self, other, alpha=1):
        return self._inplace(self.add(other, alpha=alpha)._node)

    def sub_(self, other, alpha=1):
        return self._inplace(self.sub(other, alpha=alpha)._node)

    def mul_(self, other):
        return self._inplace(self._bin("mul", other)._node)

    def div_(self, other):
        return self._inplace(self._bin("div", other)._node)

    def pow_(self, e):
        return self._inplace(self._bin("pow", e)._node)

    def clamp_(self, min=None, max=None):  # noqa: A002
        return self._inplace(self.clamp(min, max)._node)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        v = value.item() if isinstance(value, Tensor) else value
        return self._inplace(leaf(host_full(self.shape, v, self._node.aval[1])))

    def copy_(self, src, non_blocking=False):
        src = src if isinstance(src, Tensor) else Tensor._from(src)
        node = src._node
        if tuple(src.shape) != tuple(self.shape):
            node = record("expand", [node], (("shape", tuple(self.shape)),))
        if node.value is not None:
            node = leaf(jnp.asarray(node.value, self._node.aval[1]))
        return self._inplace(node)

    def uniform_(self, a=0.0, b=1.0):
        from .random import host_rng
        v = host_rng().uniform(a, b, tuple(self.shape)).astype(self._node.aval[1])
        return self._inplace(leaf(jax.device_put(v)))

    def normal_(self, mean=0.0, std=1.0):
        from .random import host_rng
        v = (mean + std * host_rng().standard_normal(tuple(self.shape))).astype(self._node.aval[1])
        return self._inplace(leaf(jax.device_put(v)))

    def masked_fill_(self, mask, value):
        return self._inplace(self.masked_fill(mask, value)._node)

    # ------------------------------------------------------------------ math
    def matmul(self, other):
        other = other if isinstance(other, Tensor) else Tensor._from(other)
        a, b = self.shape, other.shape
        if a and b and a[-1] != (b[-2] if len(b) > 1 else b[0]):
            ra = "x".join(map(str, a))
            rb = "x".join(map(str, b))
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({ra} and {rb})")
        return _op("matmul", self, other)

    mm = bmm = matmul

    def dot(self, other):
        return self.matmul(other)

    def abs(self): return _op("abs", self)
    def exp(self): return _op("exp", self)
    def log(self): return _op("log", self)
    def log2(self): return _op("log2", self)
    def log10(self): return _op("log10", self)
    def log1p(self): return _op("log1p", self)
    def expm1(self): return _op("expm1", self)
    def sqrt(self): return _op("sqrt", self)
    def rsqrt(self): return _op("rsqrt", self)
    def sin(self): return _op("sin", self)
    def cos(self): return _op("cos", self)
    def tanh(self): return _op("tanh", self)
    def sigmoid(self): return _op("sigmoid", self)
    def relu(self): return _op("relu", self)
    def neg(self): return _op("neg", self)
    def sign(self): return _op("sign", self)
    def floor(self): return _op("floor", self)
    def ceil(self): return _op("ceil", self)
    def round(self): return _op("round", self)
    def reciprocal(self): return _op("reciprocal", self)
    def square(self): return _op("square", self)
    def isnan(self): return _op("isnan", self)
    def isinf(self): return _op("isinf", self)
    def isfinite(self): return _op("isfinite", self)
    def logical_not(self): return _op("logical_not", self)
    negative = neg

    def relu_(self):
        return self._inplace(self.relu()._node)

    def clamp(self, min=None, max=None):  # noqa: A002
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            out = self
            if min is not None:
                out = out.maximum(min)
            if max is not None:
                out = out.minimum(max)
            return out
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        return _op("clamp", self, lo=min, hi=max)

    clip = clamp

    def softmax(self, dim):
        return _op("softmax", self, dim=_dim(dim, self.ndim))

    def log_softmax(self, dim):
        return _op("log_softmax", self, dim=_dim(dim, self.ndim))

    def where(self, condition, other):
        from .functions import where
        return where(condition, self, other)

    def masked_fill(self, mask, value):
        if isinstance(value, Tensor):
            from .functions import where
            return where(mask, value, self)
        return _op("masked_fill", self, mask, value=_py_scalar(value))

    # ------------------------------------------------------------------ reductions
    def _reduce(self, op, dim, keepdim, **kw):
        return _op(op, self, dim=_dims(dim, self.ndim), keepdim=keepdim, **kw)

    def sum(self, dim=None, keepdim=False, dtype=None):
        return self._reduce("sum", dim, keepdim, dtype=_dt.as_jax_dtype(dtype))

    def mean(self, dim=None, keepdim=False, dtype=None):
        if not jnp.issubdtype(self._node.aval[1], jnp.inexact) and dtype is None:
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either "
                               f"a floating point or complex dtype. Got: {self.dtype.name.capitalize()}")
        return self._reduce("mean", dim, keepdim, dtype=_dt.as_jax_dtype(dtype))

    def prod(self, dim=None, keepdim=False):
        return self._reduce("prod", dim, keepdim)

    def _maxmin(self, which, dim, keepdim):
        if isinstance(dim, Tensor):
            return self._bin("maximum" if which == "max" else "minimum", dim)
        if dim is None:
            return _op("amax" if which == "max" else "amin", self)
        d = _dim(dim, self.ndim)
        v, i = _multi(f"{which}_dim", 2, self, dim=d, keepdim=keepdim)
        return (torch_max_result if which == "max" else torch_min_result)(v, i)

    def max(self, dim=None, keepdim=False):
        return self._maxmin("max", dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return self._maxmin("min", dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return self._reduce("amax", dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return self._reduce("amin", dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _op("argmax", self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _op("argmin", self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        c = (1 if unbiased else 0) if correction is None else correction
        return self._reduce("var", dim, keepdim, correction=c)

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        c = (1 if unbiased else 0) if correction is None else correction
        return self._reduce("std", dim, keepdim, correction=c)

    def norm(self, p=2, dim=None, keepdim=False):
        p = {"fro": 2}.get(p, p)
        return self._reduce("norm", dim, keepdim, p=p)

    def logsumexp(self, dim, keepdim=False):
        return self._reduce("logsumexp", dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return self._reduce("all", dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return self._reduce("any", dim, keepdim)

    def cumsum(self, dim):
        return _op("cumsum", self, dim=_dim(dim, self.ndim))

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002
        v, i = _multi("topk", 2, self, k=builtins.int(k), dim=_dim(dim, self.ndim), largest=largest)
        return torch_topk_result(v, i)

    # ------------------------------------------------------------------ shapes
    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], _dt.dtype):
            raise NotImplementedError("view(dtype) is not supported; use .to(dtype)")
        shape = _infer_view(_shape_arg(shape), self.numel(), self.shape)
        if shape == tuple(self.shape):
            return _op("reshape", self, shape=shape) if self._node.requires_grad else self._view_same()
        return _op("reshape", self, shape=shape)

    def _view_same(self):
        return wrap(self._node) if self._node.value is not None else _op("reshape", self, shape=tuple(self.shape))

    reshape = view

    def view_as(self, other):
        return self.view(tuple(other.shape))

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        nd = self.ndim
        if nd == 0:
            return self.view(1)
        s, e = _dim(start_dim, nd), _dim(end_dim, nd)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = tuple(self.shape)
        n = 1
        for d in shape[s:e + 1]:
            n *= d
        return self.view(shape[:s] + (n,) + shape[e + 1:])

    def unflatten(self, dim, sizes):
        d = _dim(dim, self.ndim)
        shape = tuple(self.shape)
        return self.view(shape[:d] + tuple(sizes) + shape[d + 1:])

    def squeeze(self, dim=None):
        shape = tuple(self.shape)
        if dim is None:
            new = tuple(s for s in shape if s != 1)
        else:
            dims = _dims(dim if isinstance(dim, (tuple, list)) else (dim,), len(shape))
            new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
        return self.view(new) if new != shape else self

    def unsqueeze(self, dim):
        shape = list(self.shape)
        d = _dim(dim, len(shape) + 1)
        shape.insert(d, 1)
        return self.view(tuple(shape))

    def permute(self, *dims):
        dims = _shape_arg(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                               f"not match the length of the desired ordering of dimensions i.e. "
                               f"input.dim() = {self.ndim} is not equal to len(dims) = {len(dims)}")
        return _op("transpose", self, perm=tuple(_dim(d, self.ndim) for d in dims))

    def transpose(self, dim0, dim1):
        nd = self.ndim
        perm = list(range(nd))
        a, b = _dim(dim0, nd), _dim(dim1, nd)
        perm[a], perm[b] = perm[b], perm[a]
        return _op("transpose", self, perm=tuple(perm))

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand(self, *sizes):
        sizes = _shape_arg(sizes)
        shape = tuple(self.shape)
        full = tuple(shape[i - (len(sizes) - len(shape))] if s == -1 else s
                     for i, s in enumerate(sizes))
        return _op("expand", self, shape=full)

    def expand_as(self, other):
        return self.expand(tuple(other.shape))

    def repeat(self, *reps):
        return _op("repeat", self, reps=_shape_arg(reps))

    def flip(self, dims):
        dims = (dims,) if isinstance(dims, builtins.int) else tuple(dims)
        return _op("flip", self, dims=_dims(dims, self.ndim))

    def roll(self, shifts, dims=None):
        return _op("roll", self, shifts=shifts if isinstance(shifts, builtins.int) else tuple(shifts),
                   dims=_dims(dims, self.ndim))

    def tril(self, diagonal=0):
        return _op("tril", self, k=diagonal)

    def triu(self, diagonal=0):
        return _op("triu", self, k=diagonal)

    def split(self, split_size, dim=0):
        d = _dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size, builtins.int):
            sizes = [split_size] * (n // split_size) + ([n % split_size] if n % split_size else [])
        else:
            sizes = list(split_size)
        out, start = [], 0
        for s in sizes:
            idx = (slice(None),) * d + (slice(start, start + s),)
            out.append(self[idx])
            start += s
        return tuple(out)

    def chunk(self, chunks, dim=0):
        n = self.shape[_dim(dim, self.ndim)]
        size = -(-n // chunks)
        return self.split(size, dim)

    def unbind(self, dim=0):
        d = _dim(dim, self.ndim)
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def gather(self, dim, index):
        return _op("gather", self, index, dim=_dim(dim, self.ndim))

    def index_select(self, dim, index):
        return _op("index_select", self, index, dim=_dim(dim, self.ndim))

    def new_zeros(self, *size, dtype=None):
        return Tensor._from(host_full(_shape_arg(size), 0, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_ones(self, *size, dtype=None):
        return Tensor._from(host_full(_shape_arg(size), 1, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_full(self, size, fill_value, dtype=None):
        return Tensor._from(host_full(size, fill_value, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_tensor(self, data, dtype=None):
        return Tensor._from(data, dtype or self.dtype)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, idx):
        spec, tensors, kind = _index_spec(idx)
        if kind == "mask":
            # data-dependent shape: materialise, then index eagerly
            return Tensor._from(np.asarray(self._value())[_np_index(idx)])
        if kind == "basic":
            return _op("getitem", self, index=spec)
        return wrap(record("index", [self._node] + [t._node for t in tensors], (("spec", spec),)))

    def __setitem__(self, idx, value):
        spec, tensors, kind = _index_spec(idx)
        if kind == "mask":
            m = idx if isinstance(idx, Tensor) else Tensor._from(idx)
            v = value if isinstance(value, Tensor) else _py_scalar(value)
            if isinstance(v, Tensor):
                from .functions import where
                self._inplace(where(m, v, self)._node)
            else:
                self._inplace(self.masked_fill(m, v)._node)
            return
        s = _py_scalar(value)
        ins = [self._node] + [t._node for t in tensors]
        if s is None:
            ins.append((value if isinstance(value, Tensor) else Tensor._from(value))._node)
        self._inplace(record("setitem", ins, (("spec", spec), ("s", s))))


def _np_index(idx):
    if isinstance(idx, tuple):
        return tuple(_np_index(i) for i in idx)
    if isinstance(idx, Tensor):
        return np.asarray(idx._value())
    return idx


@graph.register("setitem")
def _setitem(x, *xs, spec=(), s=None):
    it = iter(xs)
    full = tuple(next(it) if p == "T" else _ops._unslice(p) for p in spec)
    v = s if s is not None else next(it)
    return x.at[full].set(jnp.asarray(v, x.dtype) if s is not None else v.astype(x.dtype))


# ----------------------------------------------------------------------------- printing

def _format(t: Tensor) -> str:
    v = np.asarray(t._value())
    d = t.dtype
    if v.dtype == np.bool_:
        body = np.array2string(v, separator=", ", prefix="tensor(")
    elif np.issubdtype(v.dtype, np.floating):
        finite = v[np.isfinite(v)]
        ints = finite.size and np.all(finite == np.round(finite)) and np.max(np.abs(finite)) < 1e8
        if ints or finite.size == 0:
            body = np.array2string(v, separator=", ", prefix="tensor(",
                                   formatter={"float_kind": lambda x: _int_float(x)})
        else:
            big = np.max(np.abs(finite)) >= 1e4 or np.min(np.abs(finite[finite != 0]), initial=1) < 1e-4
            body = np.array2string(v, separator=", ", prefix="tensor(", precision=4,
                                   floatmode="fixed" if not big else "maxprec",
                                   suppress_small=False)
    else:
        body = np.array2string(v, separator=", ", prefix="tensor(")
    extras = []
    if d not in (_dt.float32, _dt.int64, _dt.bool_):
        extras.append(f"dtype={d!r}")
    fn = t.grad_fn
    if fn is not None:
        extras.append(f"grad_fn=<{fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _int_float(x):
    if not np.isfinite(x):
        return str(x).replace("inf", "inf").replace("nan", "nan")
    return f"{x:.0f}."

