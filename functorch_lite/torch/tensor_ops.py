"""``Tensor`` methods for math, reductions, shapes and indexing (a mixin of ``Tensor``)."""
from __future__ import annotations

import builtins

import jax.numpy as jnp
import numpy as np

from . import dtypes as _dt
from ._base import (TensorBase, _check_int_indices, _dim, _dims, _dynamic_basic, _from,
                    _index_spec, _infer_view, _multi, _np_index, _op, _py_scalar, _shape_arg,
                    host_full, torch_max_result, torch_min_result, torch_topk_result, wrap)
from .graph import grad_enabled, is_functional, leaf, record


class TensorOps:
    """Everything a tensor computes; every method records an op (see ``graph.record``)."""
    __slots__ = ()

    # ------------------------------------------------------------------ math
    def matmul(self, other):
        other = other if isinstance(other, TensorBase) else _from(other)
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
        if isinstance(min, TensorBase) or isinstance(max, TensorBase):
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
        if isinstance(value, TensorBase):
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
        if isinstance(dim, TensorBase):
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
        return _from(host_full(_shape_arg(size), 0, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_ones(self, *size, dtype=None):
        return _from(host_full(_shape_arg(size), 1, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_full(self, size, fill_value, dtype=None):
        return _from(host_full(size, fill_value, _dt.as_jax_dtype(dtype) or self._node.aval[1]))

    def new_tensor(self, data, dtype=None):
        return _from(data, dtype or self.dtype)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, idx):
        spec, tensors, kind = _index_spec(idx)
        if kind == "mask":
            # data-dependent shape: materialise, then index eagerly
            return _from(np.asarray(self._value())[_np_index(idx)])
        node = self._node
        _check_int_indices(spec, node.aval[0])
        data = node.value is not None and not is_functional() and not (
            node.requires_grad and grad_enabled())   # a concrete tensor, no gradient to track
        if kind == "basic":
            dyn = _dynamic_basic(spec, node.aval[0]) if data else None
            if dyn is None:
                return _op("getitem", self, index=spec)
            starts, sizes, shape = dyn
            return wrap(record("slice_at", [node, leaf(starts)],
                               (("sizes", sizes), ("shape", shape))))
        if data and spec == ("T",) and jnp.issubdtype(tensors[0]._node.aval[1], jnp.integer):
            # rows of a concrete tensor (``xt[idx]``): lazy, so the training step that uses the
            # batch gathers it; cross_entropy checks the whole source tensor once
            out = record("rows", [node, tensors[0]._node], lazy=True)
            out.source = node
            return wrap(out)
        return wrap(record("index", [node] + [t._node for t in tensors], (("spec", spec),)))

    def __setitem__(self, idx, value):
        spec, tensors, kind = _index_spec(idx)
        if kind == "mask":
            m = idx if isinstance(idx, TensorBase) else _from(idx)
            v = value if isinstance(value, TensorBase) else _py_scalar(value)
            if isinstance(v, TensorBase):
                from .functions import where
                self._inplace(where(m, v, self)._node)
            else:
                self._inplace(self.masked_fill(m, v)._node)
            return
        s = _py_scalar(value)
        ins = [self._node] + [t._node for t in tensors]
        if s is None:
            ins.append((value if isinstance(value, TensorBase) else _from(value))._node)
        self._inplace(record("setitem", ins, (("spec", spec), ("s", s))))
