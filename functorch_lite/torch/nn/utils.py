"""``torch.nn.utils``: gradient clipping and parameter/vector conversion."""
from __future__ import annotations

import math

import jax.numpy as jnp

from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _params(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients so that their joint norm is at most ``max_norm``; returns the norm."""
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    if not grads:
        return Tensor._from(0.0)
    values = [g._value() for g in grads]
    if norm_type == math.inf:
        total = jnp.max(jnp.stack([jnp.max(jnp.abs(v)) for v in values]))
    else:
        total = jnp.sum(jnp.stack([jnp.sum(jnp.abs(v) ** norm_type) for v in values])) ** (1.0 / norm_type)
    if error_if_nonfinite and not bool(jnp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable this "
                           "error and scale the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    coef = jnp.minimum(max_norm / (total + 1e-6), 1.0)
    for g, v in zip(grads, values):
        g._set_value(v * coef)
    return Tensor._from(total)


def clip_grad_value_(parameters, clip_value, foreach=None):
    for p in _params(parameters):
        if p.grad is not None:
            p.grad._set_value(jnp.clip(p.grad._value(), -clip_value, clip_value))


def parameters_to_vector(parameters):
    return Tensor._from(jnp.concatenate([p._value().reshape(-1) for p in parameters]))


def vector_to_parameters(vec, parameters):
    v = vec._value()
    i = 0
    for p in parameters:
        n = p.numel()
        p._set_value(v[i:i + n].reshape(tuple(p.shape)))
        i += n
