"""Shape-only layers: Flatten, Reshape."""
from __future__ import annotations

import dataclasses
import math

from ..core.errors import ShapeError, format_error
from ..core.module import Module

__all__ = ["Flatten", "Reshape"]


@dataclasses.dataclass(frozen=True, repr=False)
class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""
    per_example = True

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        if x.ndim < 1:
            raise ShapeError(format_error("Flatten", f"input expected a batch axis, got a scalar"))
        return x.reshape(x.shape[0], -1), state


@dataclasses.dataclass(frozen=True, repr=False)
class Reshape(Module):
    """Reshape every example to ``shape`` (batch axis kept; one entry may be -1)."""
    per_example = True
    shape: tuple

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        per = math.prod(x.shape[1:])
        known = math.prod(d for d in self.shape if d != -1)
        ok = (per % known == 0) if -1 in self.shape else per == known
        if not ok:
            raise ShapeError(format_error(
                "Reshape", f"cannot reshape examples of shape {tuple(x.shape[1:])} ({per} values) to "
                           f"{self.shape} (input {tuple(x.shape)})"))
        return x.reshape((x.shape[0],) + self.shape), state
