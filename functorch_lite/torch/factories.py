"""Tensor creation: ``tensor``, ``zeros``, ``randn``, ``arange``, ... (concrete leaves)."""
from __future__ import annotations

import builtins

import jax
import jax.numpy as jnp
import numpy as np

from . import dtypes as _dt
from .random import host_rng, next_key
from .tensor import Tensor, _shape_arg, _to_array

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange",
           "linspace", "eye", "randn", "rand", "randint", "randperm", "normal", "zeros_like",
           "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like"]


def _float_dtype(dtype):
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else _dt.get_default_dtype().jax
    return jd


def _new(value, requires_grad=False):
    return Tensor._from(value, requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new leaf tensor holding a copy of ``data`` (numbers, nested lists, arrays, tensors)."""
    return Tensor._from(data, dtype, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and (dtype is None or _dt.as_jax_dtype(dtype) == data._node.aval[1]):
        return data
    return Tensor._from(data, dtype)


def from_numpy(arr: np.ndarray):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    return Tensor._from(arr)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _new(jnp.zeros(_shape_arg(size), _float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _new(jnp.ones(_shape_arg(size), _float_dtype(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (_dt.bool_ if isinstance(fill_value, builtins.bool) else
                 _dt.int64 if isinstance(fill_value, builtins.int) else None)
    return _new(jnp.full(_shape_arg((size,)), fill_value, _float_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, builtins.int) for v in (start, end, step))
        dtype = _dt.int64 if ints else None
    jd = _float_dtype(dtype)
    return _new(jnp.asarray(np.arange(start, end, step), jd), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _new(jnp.linspace(start, end, steps, dtype=_float_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _new(jnp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    return _new(jax.random.normal(next_key(), _shape_arg(size), _float_dtype(dtype)), requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    return _new(jax.random.uniform(next_key(), _shape_arg(size), _float_dtype(dtype)), requires_grad)


def normal(mean, std, size, generator=None):
    return _new(mean + std * jax.random.normal(next_key(), _shape_arg((size,)), jnp.float32))


def randint(low, high=None, size=None, dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing 1 required positional argument: 'size'")
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else jnp.int32
    return _new(jax.random.randint(next_key(), _shape_arg((size,)), low, high, jd))


def randperm(n, dtype=None, device=None, generator=None):
    rng = generator.host if generator is not None else host_rng()
    return _new(jnp.asarray(rng.permutation(n), _dt.as_jax_dtype(dtype) or jnp.int32))


def _like(t, fn, dtype, requires_grad):
    jd = _dt.as_jax_dtype(dtype) if dtype is not None else t._node.aval[1]
    return _new(fn(tuple(t.shape), jd), requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, jnp.zeros, dtype, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, jnp.ones, dtype, requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, jnp.zeros, dtype, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s, d: jnp.full(s, fill_value, d), dtype, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s, d: jax.random.uniform(next_key(), s, d), dtype, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(t, lambda s, d: jax.random.normal(next_key(), s, d), dtype, requires_grad)


def randint_like(t, low, high=None, dtype=None):
    if high is None:
        low, high = 0, low
    return _like(t, lambda s, d: jax.random.randint(next_key(), s, low, high, d), dtype, False)
