"""Keras initializers: names (``'glorot_uniform'``, ``'HeNormal'``...) and classes.

Each resolves to ``init(key, shape, dtype) -> array`` on ``jax.nn.initializers`` with Keras's
definitions: fans of a kernel ``(..., in, out)`` (Dense ``(in, out)``, Conv ``HWIO``) are
``in * receptive field`` and ``out * receptive field``; the ``*_normal`` variance-scaling
initializers draw from a truncated normal as Keras does; ``random_normal`` /
``random_uniform`` / ``truncated_normal`` default to stddev 0.05 / range +-0.05.
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from ..core.errors import ConfigError, unknown_option

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "get",
           "INITIALIZERS"]


def _is_key(a) -> bool:
    if not isinstance(a, jax.Array):
        return False
    return jnp.issubdtype(a.dtype, jax.dtypes.prng_key) or (a.dtype == jnp.uint32
                                                            and a.shape == (2,))


@functools.lru_cache(maxsize=None)
def _variance_scaling(scale, mode, distribution):
    # jax's variance_scaling init is jitted: one function per configuration keeps its
    # compilation cache across layers (a new one per layer would compile every time).
    return jinit.variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1)


class Initializer:
    """Base class: ``init(shape, dtype='float32', key=None)`` or, as the core calls it,
    ``init(key, shape, dtype)``."""

    seed = None

    def _fn(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        if args and _is_key(args[0]):
            key, shape, *rest = args
            dtype = rest[0] if rest else kwargs.get("dtype", jnp.float32)
        else:  # Keras style: init(shape, dtype=None)
            shape = args[0] if args else kwargs["shape"]
            dtype = (args[1] if len(args) > 1 else kwargs.get("dtype")) or jnp.float32
            key = jax.random.key(0 if self.seed is None else self.seed)
        return self._fn()(key, tuple(shape), jnp.dtype(dtype))

    # Equal by configuration, so that layers (frozen dataclasses holding initializers) built
    # alike are equal and share compiled inits.
    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__,) + tuple(sorted((k, repr(v)) for k, v in
                                                          vars(self).items())))

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Zeros(Initializer):
    def _fn(self):
        return jinit.zeros


class Ones(Initializer):
    def _fn(self):
        return jinit.ones


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def _fn(self):
        return jinit.constant(self.value)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def _fn(self):
        base = jinit.normal(self.stddev)
        return lambda key, shape, dtype: base(key, shape, dtype) + jnp.asarray(self.mean, dtype)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def _fn(self):
        return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, self.minval,
                                                            self.maxval)


class TruncatedNormal(Initializer):
    """Normal(mean, stddev) truncated at two standard deviations (as Keras)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def _fn(self):
        def init(key, shape, dtype):
            z = jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)
            return z * self.stddev + self.mean
        return init


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        modes = ("fan_in", "fan_out", "fan_avg")
        dists = ("truncated_normal", "untruncated_normal", "uniform")
        if mode not in modes:
            raise unknown_option("VarianceScaling mode", mode, modes)
        if distribution not in dists:
            raise unknown_option("VarianceScaling distribution", distribution, dists)
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def _fn(self):
        dist = "normal" if self.distribution == "untruncated_normal" else self.distribution
        return _variance_scaling(self.scale, self.mode, dist)


class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class Orthogonal(Initializer):
    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def _fn(self):
        return jinit.orthogonal(self.gain)


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def _fn(self):
        def init(key, shape, dtype):
            if len(shape) != 2:
                raise ConfigError(f"Identity initializer: expected a 2-d shape, got {shape}")
            return self.gain * jnp.eye(*shape, dtype=dtype)
        return init


INITIALIZERS = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity, "uniform": RandomUniform, "normal": RandomNormal,
}


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def get(identifier):
    """An initializer from a name (``'he_normal'``, ``'HeNormal'``), an Initializer or a
    callable ``(key, shape, dtype) -> array``."""
    if isinstance(identifier, str):
        cls = INITIALIZERS.get(_snake(identifier))
        if cls is None:
            raise unknown_option("initializer", identifier,
                                 [k for k in INITIALIZERS if k not in ("uniform", "normal")])
        return cls()
    if callable(identifier):
        return identifier
    raise ConfigError(f"initializer: expected a name or a callable, got {identifier!r}")
