"""``keras.utils``: to_categorical, normalize, set_random_seed."""
from __future__ import annotations

import random

import numpy as np

from ..core.errors import ConfigError, ShapeError
from ._base import set_seed

__all__ = ["to_categorical", "normalize", "set_random_seed"]


def to_categorical(x, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels: shape ``(N,)`` (or ``(N, 1)``) -> ``(N, classes)``.

    ``num_classes`` defaults to ``max(x) + 1``; labels must be integers in ``[0, num_classes)``.
    """
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ShapeError(f"to_categorical: x expected integer class labels, got non-integer "
                             f"values (dtype {a.dtype})")
    elif a.dtype.kind not in "iub":
        raise ShapeError(f"to_categorical: x expected integer class labels, got dtype {a.dtype}")
    a = a.astype(np.int64)
    shape = a.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = a.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes <= 0:
        raise ConfigError(f"to_categorical: num_classes expected a positive int, got "
                          f"{num_classes!r}")
    bad = (flat < 0) | (flat >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"to_categorical: labels expected in [0, {num_classes}), got "
                         f"{int(flat[i])} at flat index {i}")
    out = np.zeros((flat.size, int(num_classes)), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(shape + (int(num_classes),))


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero vectors stay zero)."""
    a = np.asarray(x, dtype=np.float32 if np.asarray(x).dtype != np.float64 else np.float64)
    norm = np.linalg.norm(a, ord=order, axis=axis, keepdims=True)
    return a / np.where(norm == 0, 1, norm)


def set_random_seed(seed):
    """Seed Python's ``random``, numpy's global generator and the adapter's key stream (layer
    initialisation, shuffling, dropout), so that a script runs the same twice."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"set_random_seed: seed expected a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2 ** 32)
    set_seed(int(seed))
