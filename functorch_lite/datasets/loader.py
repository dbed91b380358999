"""Minibatches over in-memory numpy arrays."""
from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, ShapeError

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``arrays`` (a tuple or list of arrays sharing their first axis) in batches.

    Each ``iter()`` is a new epoch and yields tuples of numpy batches. With ``shuffle=True``
    epoch ``e`` uses the permutation of ``numpy.random.default_rng((seed, e))``: the same seed
    gives the same sequence of orders. ``drop_last=True`` skips a final short batch.
    ``len()`` is the number of batches per epoch.
    """

    def __init__(self, arrays, batch_size: int, *, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0):
        if not isinstance(arrays, (tuple, list)):
            raise ConfigError(f"DataLoader: arrays expected a tuple or list of arrays, got "
                              f"{type(arrays).__name__}\nHint: wrap a single array: "
                              "DataLoader((x,), batch_size).")
        if not arrays:
            raise ConfigError("DataLoader: arrays expected at least one array, got an empty "
                              f"{type(arrays).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ConfigError(f"DataLoader: batch_size expected a positive int, got "
                              f"{batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"DataLoader: seed expected a non-negative int, got {seed!r}")
        arrays = tuple(np.asarray(a) for a in arrays)
        if any(a.ndim == 0 for a in arrays):
            shapes = [a.shape for a in arrays]
            raise ShapeError(f"DataLoader: arrays expected at least 1 dimension each, got "
                             f"shapes {shapes}")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ShapeError(f"DataLoader: arrays expected the same first dimension, got "
                             f"lengths {lengths}\nHint: every array holds one row per sample; "
                             "pass inputs and targets of the same dataset.")
        self.arrays = arrays
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self._epoch = 0

    @property
    def num_samples(self) -> int:
        return len(self.arrays[0])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        epoch, self._epoch = self._epoch, self._epoch + 1
        order = (np.random.default_rng((self.seed, epoch)).permutation(self.num_samples)
                 if self.shuffle else None)
        return self._batches(order)

    def _batches(self, order):
        for i in range(len(self)):
            part = slice(i * self.batch_size, (i + 1) * self.batch_size)
            index = part if order is None else order[part]
            yield tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})")
