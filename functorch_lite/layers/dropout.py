"""Dropout: zeroes units with probability ``rate`` in training, scales the rest by 1/(1-rate)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, format_error
from ..core.module import Module

__all__ = ["Dropout"]


@dataclasses.dataclass(frozen=True, repr=False)
class Dropout(Module):
    """``Dropout(rate)``; identity when ``train=False``; needs ``key`` when ``train=True``."""
    per_example = True
    rate: float
    needs_key = True

    def __post_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"Dropout: rate expected in [0, 1), got {self.rate!r}")

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        if not train or self.rate == 0.0:
            return x, state
        if key is None:
            raise ValueError(format_error(
                "Dropout", "train=True needs a random key, got key=None",
                hint="pass key=jax.random.key(seed) (fit and train_step do this for you)"))
        keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x)), state
