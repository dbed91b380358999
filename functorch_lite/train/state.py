"""TrainState: everything that changes during training, as one pytree."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import xla
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
        """Initialise the model for ``spec`` (unless params/state are given) and the optimizer.

        ``key`` is a JAX key, or an int seed: the key is then ``jax.random.key(seed)``, made
        inside the compiled create below (an eager ``jax.random.key`` compiles and runs two more
        computations first, ~0.1 s of a fit's first step).

        Without ``params`` and ``state`` the whole state is made by ONE computation compiled
        for one run (key split, model init, optimizer init): a fit's first step no longer
        compiles and dispatches each of them on its own (MNIST CNN: 5 compiles, ~0.3 s)."""
        spec = as_spec(spec)
        key = _seed_or_key(key)
        if params is None and state is None and not isinstance(key, jax.core.Tracer):
            make = _jitted_create_or_none(cls, model, optimizer, spec)
            if make is not None:
                return make(key)
        init_key, rng = jax.random.split(_as_key(key))
        if params is None:
            params, model_state = model.init(init_key, as_spec(spec))
            state = model_state if state is None else state
        state = {} if state is None else state
        return cls(params=params, state=state, opt_state=jax.jit(optimizer.init)(params),
                   step=jnp.zeros((), jnp.int32), rng=rng)

    @classmethod
    def shapes(cls, model, optimizer, key, spec) -> "TrainState":
        """The ``jax.ShapeDtypeStruct`` of each leaf of ``create(model, optimizer, key, spec)``
        (traced, not run; the trace is the one ``create`` then compiles)."""
        spec = as_spec(spec)
        key = _seed_or_key(key)
        make = _jitted_create_or_none(cls, model, optimizer, spec)
        if make is None:     # create's step-by-step path
            return jax.eval_shape(lambda k: cls.create(model, optimizer, k, spec), key)
        return make.eval_shape(key)

    @classmethod
    def _create_traced(cls, model, optimizer, spec, key):
        init_key, rng = jax.random.split(_as_key(key))
        params, state = model.init(init_key, spec)
        return cls(params=params, state=state, opt_state=optimizer.init(params),
                   step=jnp.zeros((), jnp.int32), rng=rng)

    def replace(self, **changes) -> "TrainState":
        return dataclasses.replace(self, **changes)

    def step_key(self):
        """The key for this step: ``jax.random.fold_in(rng, step)``."""
        return jax.random.fold_in(self.rng, self.step)


_INT32 = np.iinfo(np.int32)


def _seed_or_key(key):
    """An int seed in the int32 range as ``np.int32`` (turned into its key when traced), a larger
    one as ``jax.random.key(seed)``; a key as itself."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return np.int32(key) if _INT32.min <= key <= _INT32.max else jax.random.key(key)
    return key


def _as_key(key):
    """A seed given as an int32 scalar becomes ``jax.random.key(seed)``; a key stays itself."""
    if (not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0
            and jnp.issubdtype(key.dtype, jnp.integer)):
        return jax.random.key(key)
    return key


@functools.lru_cache(maxsize=32)
def _jitted_create(cls, model, optimizer, spec):
    return xla.jit(functools.partial(cls._create_traced, model, optimizer, spec), once=True)


def _jitted_create_or_none(cls, model, optimizer, spec):
    """The one compiled create, or None for an unhashable model or optimizer (step by step)."""
    try:
        return _jitted_create(cls, model, optimizer, spec)
    except TypeError:
        return None
