"""``Tensor``: a handle on a graph node (lazy under autograd, concrete otherwise).

Shapes and dtypes are known without running anything; values materialise on ``.item()``,
``.numpy()``, ``print``, ``bool`` and friends (see ``graph.py``).  Math, reductions, shapes and
indexing live in ``tensor_ops.py``; node wrapping and argument helpers in ``_base.py``.
"""
from __future__ import annotations

import builtins
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from . import dtypes as _dt
from . import graph
from ._base import (_LIVE, DEFAULT_CLASS, Size, TensorBase, _GradFn, _dim, _grad_fn_name,
                    _op, _py_scalar, _to_array, as_node, host_full, is_tensor, leaf, maybe_tensor,
                    record, wrap)
from .printing import format_tensor
from .tensor_ops import TensorOps

__all__ = ["Tensor", "Size", "as_node", "wrap", "is_tensor", "maybe_tensor", "host_full"]


class Tensor(TensorOps, TensorBase):
    """A torch-like tensor over a JAX array or a lazy graph node."""
    __slots__ = ()
    __array_priority__ = 1000
    __array_ufunc__ = None   # numpy scalars and arrays defer to our operators (x * tensor)

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
        return format_tensor(self)

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

    def __deepcopy__(self, memo):
        n = self._node
        if n.op is not None and n.requires_grad:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support "
                               "the deepcopy protocol at the moment.  If you were attempting to "
                               "deepcopy a module, this may be because of a torch.nn.utils."
                               "weight_norm usage, see https://github.com/pytorch/pytorch/pull/103001")
        t = wrap(leaf(self._value(), n.requires_grad), type(self))   # arrays are immutable
        if n.requires_grad:
            t._node.owner = weakref.ref(t)
        if self.grad is not None:
            t.grad = self.grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t

    def __copy__(self):
        return self.__deepcopy__({})

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


DEFAULT_CLASS[0] = Tensor
