"""Activations: plain functions over arrays, plus ``Activation(name)`` as a module."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import unknown_option
from ..core.module import Module

__all__ = ["relu", "relu6", "gelu", "tanh", "sigmoid", "softmax", "log_softmax", "leaky_relu",
           "elu", "selu", "silu", "swish", "softplus", "hard_tanh", "identity", "get", "Activation"]


def relu(x):
    return jax.nn.relu(x)


def relu6(x):
    return jax.nn.relu6(x)


def gelu(x, approximate: bool = False):
    """GELU; exact (erf) by default like PyTorch and Keras 3, ``approximate=True`` for tanh."""
    return jax.nn.gelu(x, approximate=approximate)


def tanh(x):
    return jnp.tanh(x)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def softmax(x, axis: int = -1):
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis: int = -1):
    return jax.nn.log_softmax(x, axis=axis)


def leaky_relu(x, negative_slope: float = 0.01):
    # torch's subgradient at 0 is negative_slope (jax.nn.leaky_relu's is 1)
    return jnp.where(x > 0, x, negative_slope * x)


def elu(x, alpha: float = 1.0):
    return jax.nn.elu(x, alpha)


def selu(x):
    return jax.nn.selu(x)


def silu(x):
    return jax.nn.silu(x)


swish = silu


def softplus(x):
    return jax.nn.softplus(x)


def hard_tanh(x):
    # torch's gradient is 0 at the clip points -1 and 1 (jnp.clip's is not)
    return jnp.where(x >= 1, 1.0, jnp.where(x <= -1, -1.0, x)).astype(x.dtype)


def identity(x):
    return x


_NAMES = {f.__name__: f for f in (relu, relu6, gelu, tanh, sigmoid, softmax, log_softmax,
                                   leaky_relu, elu, selu, silu, softplus, hard_tanh, identity)}
_NAMES.update(swish=silu, linear=identity)


def is_per_example(fn) -> bool:
    """Whether ``fn`` is one of this module's activations (each maps every example on its own:
    elementwise, or softmax over the last axis)."""
    return any(fn is f for f in _NAMES.values())


def get(name):
    """Resolve an activation: callables pass through, ``None`` is the identity, strings name
    one of the functions of this module."""
    if name is None:
        return identity
    if callable(name):
        return name
    if isinstance(name, str) and name.lower() in _NAMES:
        return _NAMES[name.lower()]
    raise unknown_option("activation", name, _NAMES)


@dataclasses.dataclass(frozen=True, repr=False)
class Activation(Module):
    """A parameter-free module applying an activation given by name or function."""
    fn: Any = "relu"

    def __post_init__(self):
        get(self.fn)  # fail at construction for unknown names

    @property
    def per_example(self) -> bool:
        return is_per_example(get(self.fn))

    @property
    def name(self) -> str:
        return self.fn if isinstance(self.fn, str) else getattr(self.fn, "__name__", "activation")

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        return get(self.fn)(x), state
