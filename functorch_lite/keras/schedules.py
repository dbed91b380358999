"""``keras.optimizers.schedules``: learning-rate schedules ``step -> lr`` (traceable)."""
from __future__ import annotations

import jax.numpy as jnp

from ..core.errors import ConfigError

__all__ = ["LearningRateSchedule", "ExponentialDecay"]


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; ``step`` counts updates from 0."""

    def __call__(self, step):
        raise NotImplementedError


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (exponent floored with
    ``staircase=True``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        if not decay_steps > 0:
            raise ConfigError(f"ExponentialDecay: decay_steps expected > 0, got {decay_steps!r}")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase, self.name = decay_rate, staircase, name

    def __call__(self, step):
        p = jnp.asarray(step, jnp.float32) / self.decay_steps
        if self.staircase:
            p = jnp.floor(p)
        return self.initial_learning_rate * jnp.power(self.decay_rate, p)
