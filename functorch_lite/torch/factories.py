"""Tensor creation: ``tensor``, ``zeros``, ``randn``, ``arange``, ... (concrete leaves).

Values are built on the host (numpy; random draws from the generator ``torch.manual_seed``
seeds) and put on the device once, so creating tensors of new shapes compiles nothing.
"""
from __future__ import annotations

import builtins

import jax
import jax.numpy as jnp
import numpy as np

from . import dtypes as _dt
from .random import host_rng
from ._base import _shape_arg
from .tensor import Tensor

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange",
           "linspace", "eye", "randn", "rand", "randint", "randperm", "normal", "zeros_like",
           "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like"]


def _float_dtype(dtype):
    return _dt.as_jax_dtype(dtype) if dtype is not None else _dt.get_default_dtype().jax


def _new(value, dtype, requires_grad=False):
    """A leaf tensor from a numpy array (cast to the jax dtype ``dtype``)."""
    t = Tensor._from(jax.device_put(np.asarray(value, dtype=jnp.dtype(dtype))))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _rng(generator):
    return generator.host if generator is not None else host_rng()


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new leaf tensor holding a copy of ``data`` (numbers, nested lists, arrays, tensors)."""
    return Tensor._from(data, dtype, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and (dtype is None or _dt.as_jax_dtype(dtype) == data._node.aval[1]):
        return data
    return Tensor._from(data, dtype)


def from_numpy(arr: np.ndarray):
    """A tensor with a copy of ``arr`` (torch shares the memory; JAX arrays are immutable)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    return Tensor._from(arr)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _new(np.zeros(_shape_arg(size)), _float_dtype(dtype), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _new(np.ones(_shape_arg(size)), _float_dtype(dtype), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (_dt.bool_ if isinstance(fill_value, builtins.bool) else
                 _dt.int64 if isinstance(fill_value, builtins.int) else None)
    return _new(np.full(_shape_arg((size,)), fill_value), _float_dtype(dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, builtins.int) for v in (start, end, step))
        dtype = _dt.int64 if ints else None
    return _new(np.arange(start, end, step), _float_dtype(dtype), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _new(np.linspace(start, end, steps), _float_dtype(dtype), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _new(np.eye(n, m), _float_dtype(dtype), requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    return _new(_rng(generator).standard_normal(_shape_arg(size)), _float_dtype(dtype), requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    return _new(_rng(generator).random(_shape_arg(size)), _float_dtype(dtype), requires_grad)


def normal(mean, std, size, generator=None):
    return _new(_rng(generator).normal(mean, std, _shape_arg((size,))), jnp.float32)


def randint(low, high=None, size=None, dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing 1 required positional argument: 'size'")
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else jnp.int32
    return _new(_rng(generator).integers(low, high, _shape_arg((size,))), jd)


def randperm(n, dtype=None, device=None, generator=None):
    return _new(_rng(generator).permutation(n), _dt.as_jax_dtype(dtype) or jnp.int32)


def _like(t, fn, dtype, requires_grad):
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else t._node.aval[1]
    return _new(fn(tuple(t.shape)), jd, requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, np.zeros, dtype, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, np.ones, dtype, requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, np.zeros, dtype, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s: np.full(s, fill_value), dtype, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s: host_rng().random(s), dtype, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s: host_rng().standard_normal(s), dtype, requires_grad)


def randint_like(t, low, high=None, dtype=None):
    if high is None:
        low, high = 0, low
    return _like(t, lambda s: host_rng().integers(low, high, s), dtype, False)
