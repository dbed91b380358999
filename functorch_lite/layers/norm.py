"""Normalisation layers: BatchNorm (running statistics in ``state``) and LayerNorm."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec

__all__ = ["BatchNorm", "LayerNorm"]


def _axis(axis, ndim, layer):
    a = axis + ndim if axis < 0 else axis
    if not 0 < a < ndim:
        raise ShapeError(format_error(layer, f"feature axis {axis} is out of range for input rank {ndim} "
                                             f"(axis 0 is the batch axis)"))
    return a


@dataclasses.dataclass(frozen=True, repr=False)
class BatchNorm(Module):
    """Batch normalisation over every axis but ``axis`` (the feature axis, last by default).

    params ``{'scale', 'bias'}``, state ``{'mean', 'var'}``.  In training the batch statistics
    normalise and the running ones move: ``new = decay * old + (1 - decay) * batch``.
    ``unbiased_running_var=True`` stores the unbiased batch variance in the running estimate as
    PyTorch does (torch ``momentum=0.1`` is ``decay=0.9``; Keras ``momentum=0.99`` is ``decay=0.99``).
    """
    axis: int = -1
    decay: float = 0.99
    epsilon: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True
    unbiased_running_var: bool = False

    def __post_init__(self):
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"BatchNorm: decay expected in [0, 1], got {self.decay!r}")
        if self.epsilon <= 0:
            raise ConfigError(f"BatchNorm: epsilon expected > 0, got {self.epsilon!r}")

    def init(self, key, spec):
        spec = as_spec(spec)
        a = _axis(self.axis, len(spec.shape), "BatchNorm")
        c = spec.shape[a]
        params = {}
        if self.use_scale:
            params["scale"] = jnp.ones((c,), jnp.float32)
        if self.use_bias:
            params["bias"] = jnp.zeros((c,), jnp.float32)
        return params, {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}

    def apply(self, params, state, x, *, key=None, train=False):
        a = _axis(self.axis, x.ndim, "BatchNorm")
        c = state["mean"].shape[0]
        if x.shape[a] != c:
            raise ShapeError(format_error(
                "BatchNorm", f"input features {x.shape[a]} on axis {self.axis} != {c} features the layer "
                             f"was built for (input {tuple(x.shape)})"))
        red = tuple(i for i in range(x.ndim) if i != a)
        bshape = tuple(c if i == a else 1 for i in range(x.ndim))
        if train:
            mean = jnp.mean(x, axis=red)
            var = jnp.mean(jnp.square(x - mean.reshape(bshape)), axis=red)
            n = x.size // c
            run_var = var * (n / max(n - 1, 1)) if self.unbiased_running_var else var
            d = self.decay
            # keep the state's dtype: f64/bf16 data must not change the type of the carried state
            state = {"mean": (d * state["mean"] + (1 - d) * mean).astype(state["mean"].dtype),
                     "var": (d * state["var"] + (1 - d) * run_var).astype(state["var"].dtype)}
        else:
            mean, var = state["mean"], state["var"]
        y = (x - mean.reshape(bshape)) * jax.lax.rsqrt(var.reshape(bshape) + self.epsilon)
        if self.use_scale:
            y = y * params["scale"].reshape(bshape)
        if self.use_bias:
            y = y + params["bias"].reshape(bshape)
        return y.astype(x.dtype), state


@dataclasses.dataclass(frozen=True, repr=False)
class LayerNorm(Module):
    """Normalises over the trailing ``ndims`` axes (1 by default: the feature axis), with a
    learned ``scale`` and ``bias`` of that trailing shape (``torch.nn.LayerNorm(normalized_shape)``)."""
    ndims: int = 1
    epsilon: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True

    def __post_init__(self):
        if not isinstance(self.ndims, int) or self.ndims <= 0:
            raise ConfigError(f"LayerNorm: ndims expected a positive int, got {self.ndims!r}")
        if self.epsilon <= 0:
            raise ConfigError(f"LayerNorm: epsilon expected > 0, got {self.epsilon!r}")

    def init(self, key, spec):
        spec = as_spec(spec)
        if len(spec.shape) < self.ndims + 1:
            raise ShapeError(format_error("LayerNorm", f"input rank expected >= {self.ndims + 1}, got "
                                                       f"{len(spec.shape)} (input {spec.shape})"))
        shape = tuple(spec.shape[-self.ndims:])
        params = {}
        if self.use_scale:
            params["scale"] = jnp.ones(shape, jnp.float32)
        if self.use_bias:
            params["bias"] = jnp.zeros(shape, jnp.float32)
        return params, {}

    def apply(self, params, state, x, *, key=None, train=False):
        axes = tuple(range(x.ndim - self.ndims, x.ndim))
        ref = params.get("scale", params.get("bias"))
        if ref is not None and tuple(x.shape[-self.ndims:]) != tuple(ref.shape):
            raise ShapeError(format_error(
                "LayerNorm", f"input trailing shape {tuple(x.shape[-self.ndims:])} != normalized shape "
                             f"{tuple(ref.shape)} (input {tuple(x.shape)})"))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.use_scale:
            y = y * params["scale"]
        if self.use_bias:
            y = y + params["bias"]
        return y.astype(x.dtype), state
