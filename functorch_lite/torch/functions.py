"""``torch.*`` functions over tensors (most forward to the Tensor methods)."""
from __future__ import annotations

import builtins

import numpy as np

from .graph import record
from ._base import _dim, _op, _py_scalar, as_node, wrap
from .tensor import Tensor

__all__ = ["cat", "concat", "concatenate", "stack", "flatten", "max", "min", "argmax", "argmin",
           "sum", "mean", "prod", "std", "var", "exp", "log", "sqrt", "abs", "tanh", "sigmoid",
           "relu", "softmax", "log_softmax", "matmul", "mm", "bmm", "where", "clamp", "clip",
           "maximum", "minimum", "reshape", "squeeze", "unsqueeze", "transpose", "permute",
           "allclose", "equal", "numel", "topk", "logsumexp", "chunk", "split", "unbind", "gather",
           "norm", "sign", "floor", "ceil", "round", "pow", "log1p", "expm1", "sin", "cos",
           "isnan", "isinf", "isfinite", "all", "any", "cumsum", "flip", "tril", "triu",
           "amax", "amin", "eq", "ne", "lt", "le", "gt", "ge", "add", "sub", "mul", "div",
           "neg", "square", "rsqrt", "t", "masked_fill", "index_select", "einsum", "outer"]


def _tensors(xs, fn):
    xs = list(xs)
    if not xs:
        raise RuntimeError(f"{fn}(): expected a non-empty list of Tensors")
    return [x if isinstance(x, Tensor) else Tensor._from(x) for x in xs]


def cat(tensors, dim=0, *, out=None):
    ts = _tensors(tensors, "torch.cat")
    d = _dim(dim, ts[0].ndim)
    ref = tuple(ts[0].shape)
    for i, t in enumerate(ts[1:], 1):
        s = tuple(t.shape)
        if len(s) != len(ref) or builtins.any(a != b for j, (a, b) in enumerate(zip(ref, s)) if j != d):
            raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected "
                               f"size {ref[1 - d] if len(ref) > 1 else ref} but got size "
                               f"{s[1 - d] if len(s) > 1 else s} for tensor number {i} in the list.")
    return wrap(record("cat", [t._node for t in ts], (("dim", d),)))


concat = concatenate = cat


def stack(tensors, dim=0, *, out=None):
    ts = _tensors(tensors, "torch.stack")
    ref = tuple(ts[0].shape)
    for i, t in enumerate(ts[1:], 1):
        if tuple(t.shape) != ref:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(ref)} at "
                               f"entry 0 and {list(t.shape)} at entry {i}")
    d = _dim(dim, len(ref) + 1)
    return wrap(record("stack", [t._node for t in ts], (("dim", d),)))


def flatten(input, start_dim=0, end_dim=-1):  # noqa: A002
    return input.flatten(start_dim, end_dim)


def max(input, dim=None, keepdim=False):  # noqa: A001, A002
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001, A002
    return input.min(dim, keepdim)


def amax(input, dim=None, keepdim=False):  # noqa: A002
    return input.amax(dim, keepdim)


def amin(input, dim=None, keepdim=False):  # noqa: A002
    return input.amin(dim, keepdim)


def argmax(input, dim=None, keepdim=False):  # noqa: A002
    return input.argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):  # noqa: A002
    return input.argmin(dim, keepdim)


def sum(input, dim=None, keepdim=False, dtype=None):  # noqa: A001, A002
    return input.sum(dim, keepdim, dtype=dtype)


def mean(input, dim=None, keepdim=False, dtype=None):  # noqa: A002
    return input.mean(dim, keepdim, dtype=dtype)


def prod(input, dim=None, keepdim=False):  # noqa: A002
    return input.prod(dim, keepdim)


def std(input, dim=None, unbiased=True, keepdim=False, *, correction=None):  # noqa: A002
    return input.std(dim, unbiased, keepdim, correction=correction)


def var(input, dim=None, unbiased=True, keepdim=False, *, correction=None):  # noqa: A002
    return input.var(dim, unbiased, keepdim, correction=correction)


def norm(input, p="fro", dim=None, keepdim=False):  # noqa: A002
    return input.norm(p, dim, keepdim)


def logsumexp(input, dim, keepdim=False):  # noqa: A002
    return input.logsumexp(dim, keepdim)


def cumsum(input, dim):  # noqa: A002
    return input.cumsum(dim)


def all(input, dim=None, keepdim=False):  # noqa: A001, A002
    return input.all(dim, keepdim)


def any(input, dim=None, keepdim=False):  # noqa: A001, A002
    return input.any(dim, keepdim)


def _unary(name):
    def fn(input):  # noqa: A002
        return getattr(input if isinstance(input, Tensor) else Tensor._from(input), name)()
    fn.__name__ = name
    return fn


exp, log, sqrt, abs, tanh, sigmoid, relu = (_unary(n) for n in  # noqa: A001
                                           ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu"))
sign, floor, ceil, round, log1p, expm1, sin, cos = (_unary(n) for n in  # noqa: A001
                                                   ("sign", "floor", "ceil", "round", "log1p",
                                                    "expm1", "sin", "cos"))
isnan, isinf, isfinite, neg, square, rsqrt, t = (_unary(n) for n in
                                                 ("isnan", "isinf", "isfinite", "neg", "square",
                                                  "rsqrt", "t"))


def _binary(name):
    def fn(input, other):  # noqa: A002
        if not isinstance(input, Tensor):
            return getattr(Tensor._from(input), name)(other)
        return getattr(input, name)(other)
    fn.__name__ = name
    return fn


eq, ne, lt, le, gt, ge, mul, div, maximum, minimum = (_binary(n) for n in (
    "eq", "ne", "lt", "le", "gt", "ge", "mul", "div", "maximum", "minimum"))


def add(input, other, *, alpha=1):  # noqa: A002
    return (input if isinstance(input, Tensor) else Tensor._from(input)).add(other, alpha=alpha)


def sub(input, other, *, alpha=1):  # noqa: A002
    return (input if isinstance(input, Tensor) else Tensor._from(input)).sub(other, alpha=alpha)


def pow(input, exponent):  # noqa: A001, A002
    if not isinstance(input, Tensor):
        return exponent.__rpow__(input)
    return input.pow(exponent)


def softmax(input, dim, dtype=None):  # noqa: A002
    return input.softmax(dim)


def log_softmax(input, dim, dtype=None):  # noqa: A002
    return input.log_softmax(dim)


def matmul(input, other):  # noqa: A002
    return input.matmul(other)


mm = bmm = matmul


def outer(a, b):
    return a.reshape(-1, 1) * b.reshape(1, -1)


def where(condition, input=None, other=None):  # noqa: A002
    if input is None and other is None:
        return tuple(Tensor._from(i) for i in np.nonzero(np.asarray(condition._value())))
    cond = as_node(condition)
    xs, attrs = [cond], []
    for name, v in (("x", input), ("y", other)):
        s = _py_scalar(v)
        if s is None:
            xs.append(as_node(v))
        else:
            attrs.append((name, s))
    return wrap(record("where_s", xs, tuple(attrs)))


def clamp(input, min=None, max=None):  # noqa: A001, A002
    return input.clamp(min, max)


clip = clamp


def masked_fill(input, mask, value):  # noqa: A002
    return input.masked_fill(mask, value)


def reshape(input, shape):  # noqa: A002
    return input.reshape(shape)


def squeeze(input, dim=None):  # noqa: A002
    return input.squeeze(dim)


def unsqueeze(input, dim):  # noqa: A002
    return input.unsqueeze(dim)


def transpose(input, dim0, dim1):  # noqa: A002
    return input.transpose(dim0, dim1)


def permute(input, dims):  # noqa: A002
    return input.permute(*dims)


def flip(input, dims):  # noqa: A002
    return input.flip(dims)


def tril(input, diagonal=0):  # noqa: A002
    return input.tril(diagonal)


def triu(input, diagonal=0):  # noqa: A002
    return input.triu(diagonal)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    return input.topk(k, dim, largest, sorted)


def chunk(input, chunks, dim=0):  # noqa: A002
    return input.chunk(chunks, dim)


def split(tensor, split_size_or_sections, dim=0):
    return tensor.split(split_size_or_sections, dim)


def unbind(input, dim=0):  # noqa: A002
    return input.unbind(dim)


def gather(input, dim, index):  # noqa: A002
    return input.gather(dim, index)


def index_select(input, dim, index):  # noqa: A002
    return input.index_select(dim, index)


def numel(input) -> int:  # noqa: A002
    return input.numel()


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:  # noqa: A002
    return builtins.bool(np.allclose(np.asarray(input), np.asarray(other), rtol, atol, equal_nan))


def equal(input, other) -> bool:  # noqa: A002
    a, b = np.asarray(input), np.asarray(other)
    return a.shape == b.shape and builtins.bool(np.all(a == b))


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _op("einsum", *operands, eq=equation)

