"""The global random state behind ``torch.manual_seed``.

Device randomness (``randn``, initialisation, dropout) folds a counter into one JAX key; inside a
recorded graph the key and the counter are leaves (arguments), so dropout never recompiles.
Host randomness (DataLoader shuffling, ``randperm``) uses a numpy Generator seeded alike.
"""
from __future__ import annotations

import jax
import numpy as np

__all__ = ["manual_seed", "seed", "initial_seed", "next_key", "graph_key", "host_rng",
           "get_rng_state", "set_rng_state"]


class _RNG:
    def __init__(self, s: int):
        self.reset(s)

    def reset(self, s: int):
        self.seed = int(s)
        self.base = None          # created lazily (first use) to keep import cheap
        self.counter = 0
        self.host = np.random.default_rng(self.seed)

    def key_array(self):
        if self.base is None:
            self.base = jax.random.PRNGKey(self.seed % (2 ** 32))
        return self.base


_STATE = _RNG(int(np.random.SeedSequence().entropy % (2 ** 63)))


def manual_seed(s):
    """Seed every random draw of ``functorch_lite.torch`` (returns a Generator-like handle)."""
    s = int(s)
    _STATE.reset(s)
    return _Generator(s)


def seed() -> int:
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    _STATE.reset(s)
    return s


def initial_seed() -> int:
    return _STATE.seed


def next_key():
    """A fresh JAX key for an eager random draw."""
    k = jax.random.fold_in(_STATE.key_array(), _STATE.counter)
    _STATE.counter += 1
    return k


def graph_key():
    """``(base_key, counter)`` for a random op recorded in a graph (both become arguments).
    Inside ``functional_call(..., key=k)`` the key is ``k`` and the counter counts its calls."""
    if _OVERRIDE and _OVERRIDE[-1][0] is not None:
        top = _OVERRIDE[-1]
        c = np.uint32(top[1])
        top[1] += 1
        return top[0], c
    c = np.uint32(_STATE.counter % (2 ** 32))
    _STATE.counter += 1
    return _STATE.key_array(), c


_OVERRIDE: list = []


def push_key(key):
    """Use ``key`` (a jax key, or None for the global state) for dropout until ``pop_key``."""
    if key is not None and jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    _OVERRIDE.append([key, 0])


def pop_key():
    _OVERRIDE.pop()


def host_rng() -> np.random.Generator:
    return _STATE.host


def get_rng_state():
    return {"seed": _STATE.seed, "counter": _STATE.counter,
            "host": _STATE.host.bit_generator.state}


def set_rng_state(state):
    _STATE.reset(state["seed"])
    _STATE.counter = state["counter"]
    _STATE.host.bit_generator.state = state["host"]


class _Generator:
    """What ``torch.manual_seed`` returns; ``torch.Generator().manual_seed(s)`` for DataLoader."""

    def __init__(self, s=None):
        self._seed = s
        self.host = np.random.default_rng(s)

    def manual_seed(self, s):
        self._seed = int(s)
        self.host = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed


Generator = _Generator
