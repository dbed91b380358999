"""Keras activations by name, with Keras 3 defaults (``leaky_relu`` slope 0.2, exact ``gelu``).

``get(name_or_fn)`` resolves ``activation=`` arguments: a callable passes through, ``None`` is
``linear``, a string names one of :data:`ACTIVATIONS` (case-insensitive), anything else is a
``ConfigError`` listing the valid names.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, unknown_option

__all__ = ["ACTIVATIONS", "get", "serialize", "relu", "relu6", "leaky_relu", "elu", "selu",
           "gelu", "silu", "swish", "mish", "tanh", "sigmoid", "hard_sigmoid", "hard_silu",
           "hard_swish", "softmax", "log_softmax", "softplus", "softsign", "exponential",
           "linear"]


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``keras.activations.relu``: ``x`` above ``threshold`` (capped at ``max_value``),
    ``negative_slope * (x - threshold)`` below."""
    y = jnp.where(x > threshold, x, negative_slope * (x - threshold) if negative_slope else 0.0)
    if max_value is not None:
        y = jnp.minimum(y, max_value)
    return y


def relu6(x):
    return jax.nn.relu6(x)


def leaky_relu(x, negative_slope=0.2):
    return jax.nn.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    return jax.nn.elu(x, alpha)


def selu(x):
    return jax.nn.selu(x)


def gelu(x, approximate=False):
    return jax.nn.gelu(x, approximate=approximate)


def silu(x):
    return jax.nn.silu(x)


swish = silu


def mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


def tanh(x):
    return jnp.tanh(x)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def hard_sigmoid(x):
    """Keras 3: ``relu6(x + 3) / 6``."""
    return jax.nn.hard_sigmoid(x)


def hard_silu(x):
    return x * jax.nn.hard_sigmoid(x)


hard_swish = hard_silu


def softmax(x, axis=-1):
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return jax.nn.log_softmax(x, axis=axis)


def softplus(x):
    return jax.nn.softplus(x)


def softsign(x):
    return x / (1.0 + jnp.abs(x))


def exponential(x):
    return jnp.exp(x)


def linear(x):
    return x


ACTIVATIONS = {f.__name__: f for f in (
    relu, relu6, leaky_relu, elu, selu, gelu, silu, mish, tanh, sigmoid, hard_sigmoid,
    hard_silu, softmax, log_softmax, softplus, softsign, exponential, linear)}
ACTIVATIONS.update(swish=silu, hard_swish=hard_silu)


def get(identifier):
    """An activation function from a name, a callable, or ``None`` (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = ACTIVATIONS.get(identifier.lower())
        if fn is None:
            raise unknown_option("activation", identifier, ACTIVATIONS)
        return fn
    if callable(identifier):
        return identifier
    raise ConfigError(f"activation: expected a name or a callable, got {identifier!r}")


def serialize(fn) -> str:
    """The name of an activation (``'relu'``), as in ``keras.activations.serialize``."""
    return getattr(fn, "__name__", repr(fn))
