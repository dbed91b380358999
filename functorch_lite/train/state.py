"""TrainState: everything that changes during training, as one pytree."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..core.module import as_spec

__all__ = ["TrainState"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """``TrainState(params, state, opt_state, step, rng)``; one pytree, so it can be jitted,
    donated, checkpointed and sharded whole.  The per-step key is ``fold_in(rng, step)``."""
    params: Any
    state: Any
    opt_state: Any
    step: Any
    rng: Any

    @classmethod
    def create(cls, model, optimizer, key, spec, *, params=None, state=None) -> "TrainState":
        """Initialise the model for ``spec`` (unless params/state are given) and the optimizer."""
        init_key, rng = jax.random.split(key)
        if params is None:
            params, model_state = model.init(init_key, as_spec(spec))
            state = model_state if state is None else state
        state = {} if state is None else state
        return cls(params=params, state=state, opt_state=jax.jit(optimizer.init)(params),
                   step=jnp.zeros((), jnp.int32), rng=rng)

    def replace(self, **changes) -> "TrainState":
        return dataclasses.replace(self, **changes)

    def step_key(self):
        """The key for this step: ``jax.random.fold_in(rng, step)``."""
        return jax.random.fold_in(self.rng, self.step)
