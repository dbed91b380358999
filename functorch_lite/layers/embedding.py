"""Embedding: integer ids -> rows of a learned table."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module
from . import initializers

__all__ = ["Embedding"]


@dataclasses.dataclass(frozen=True, repr=False)
class Embedding(Module):
    """``Embedding(num_embeddings, features)``: params ``{'embedding': (num_embeddings, features)}``
    initialised N(0, 1) like PyTorch; input int ids (...,) -> (..., features)."""
    per_example = True
    num_embeddings: int
    features: int
    embedding_init: Any = "standard_normal"

    def __post_init__(self):
        for name in ("num_embeddings", "features"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"Embedding: {name} expected a positive int, got {v!r}")
        initializers.check_names(self)

    def init(self, key, spec):
        table = initializers.get(self.embedding_init)(key, (self.num_embeddings, self.features), jnp.float32)
        return {"embedding": table}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise ShapeError(format_error(
                "Embedding", f"input dtype expected an integer type (token ids), got {x.dtype} "
                             f"(input {tuple(x.shape)})",
                hint="cast ids with x.astype('int32')"))
        return jnp.take(params["embedding"], x, axis=0), state
