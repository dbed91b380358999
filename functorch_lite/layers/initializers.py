"""Weight initializers: ``init(key, shape, dtype) -> array``; strings resolve through ``get``.

Fans follow the kernel layout: for a kernel (..., in, out) (Dense 'kernel', Conv HWIO) the
in-axis is -2 and the out-axis -1; for PyTorch layouts (out, in, ...) use ``in_axis=1,
out_axis=0`` (the torch constructors below do).  Everything is built on
``jax.nn.initializers``; nothing here draws numbers by hand.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from ..core.errors import unknown_option

__all__ = ["get", "zeros", "ones", "constant", "normal", "uniform", "glorot_uniform",
           "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
           "torch_kaiming_uniform", "torch_bias_uniform", "orthogonal"]

zeros = jinit.zeros
ones = jinit.ones
constant = jinit.constant
orthogonal = jinit.orthogonal


def normal(stddev: float = 1.0):
    """N(0, stddev^2)."""
    return jinit.normal(stddev)


def uniform(minval: float = -0.05, maxval: float = 0.05):
    """U(minval, maxval) (Keras' RandomUniform defaults)."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return init


def glorot_uniform(in_axis=-2, out_axis=-1):
    return jinit.glorot_uniform(in_axis=in_axis, out_axis=out_axis)


def glorot_normal(in_axis=-2, out_axis=-1):
    return jinit.glorot_normal(in_axis=in_axis, out_axis=out_axis)


def he_uniform(in_axis=-2, out_axis=-1):
    return jinit.he_uniform(in_axis=in_axis, out_axis=out_axis)


def he_normal(in_axis=-2, out_axis=-1):
    return jinit.he_normal(in_axis=in_axis, out_axis=out_axis)


def lecun_uniform(in_axis=-2, out_axis=-1):
    return jinit.lecun_uniform(in_axis=in_axis, out_axis=out_axis)


def lecun_normal(in_axis=-2, out_axis=-1):
    return jinit.lecun_normal(in_axis=in_axis, out_axis=out_axis)


def torch_kaiming_uniform(in_axis=-2, out_axis=-1):
    """PyTorch's default for Linear/Conv weights: ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (variance scaling with scale 1/3, uniform)."""
    return jinit.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=in_axis, out_axis=out_axis)


def torch_bias_uniform(fan_in: int):
    """PyTorch's default for Linear/Conv biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


_KERNEL = {
    "glorot_uniform": glorot_uniform, "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "xavier_normal": glorot_normal,
    "he_uniform": he_uniform, "kaiming_uniform": he_uniform,
    "he_normal": he_normal, "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform, "lecun_normal": lecun_normal,
    "torch": torch_kaiming_uniform, "torch_kaiming_uniform": torch_kaiming_uniform,
    "orthogonal": lambda in_axis=-2, out_axis=-1: jinit.orthogonal(column_axis=out_axis),
}
_PLAIN = {
    "zeros": lambda: zeros, "ones": lambda: ones,
    "normal": lambda: normal(0.05), "random_normal": lambda: normal(0.05),
    "uniform": uniform, "random_uniform": uniform,
    "standard_normal": lambda: normal(1.0),
}


def get(init, *, in_axis: int = -2, out_axis: int = -1, fan_in: int | None = None):
    """Resolve an initializer: a callable passes through; a string names one of
    glorot/xavier, he/kaiming, lecun (uniform/normal), orthogonal, zeros, ones, normal, uniform,
    'torch' (kaiming-uniform with a=sqrt(5)) and 'torch_bias' (needs ``fan_in``)."""
    if callable(init):
        return init
    if isinstance(init, str):
        name = init.lower()
        if name in _KERNEL:
            return _KERNEL[name](in_axis=in_axis, out_axis=out_axis)
        if name in _PLAIN:
            return _PLAIN[name]()
        if name == "torch_bias":
            if fan_in is None:
                raise ValueError("initializer 'torch_bias' needs the layer's fan_in")
            return torch_bias_uniform(fan_in)
    raise unknown_option("initializer", init, list(_KERNEL) + list(_PLAIN) + ["torch_bias"])


def check_names(layer) -> None:
    """Refuse, at construction, any ``*_init`` field of the dataclass ``layer`` that is a string
    naming no initializer (the error lists the valid names)."""
    valid = set(_KERNEL) | set(_PLAIN) | {"torch_bias"}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if f.name.endswith("_init") and isinstance(value, str) and value.lower() not in valid:
            raise unknown_option(f"{type(layer).__name__}: {f.name} initializer", value, valid)
