"""``torch.utils.data``: Dataset, TensorDataset, Subset, random_split, DataLoader.

Datasets backed by arrays (``TensorDataset``, torchvision's MNIST with batchable transforms)
are put on the device once; each batch is then a lazy row-gather of those arrays by an index
vector, which runs inside the compiled training step (no per-batch host work or transfer but
the indices).  Other datasets go sample by sample through ``collate_fn``.
"""
from __future__ import annotations

import collections.abc
import math

import jax
import numpy as np

from .. import graph
from ..graph import leaf, record
from ..random import host_rng
from .._base import wrap
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
           "default_collate", "IterableDataset"]


class Dataset:
    """Map-style dataset: ``__getitem__(i)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])

    def _fl_arrays(self):
        """Device arrays holding every sample (one per field), or None if not array-backed."""
        return None


def _rows_of(column, idx):
    """A lazy batch: rows ``idx`` of a dataset column (cross_entropy checks the column, once)."""
    node = record("take_rows", [column, idx], lazy=True)
    node.source = column
    return node


class IterableDataset(Dataset):
    def __iter__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are ``tuple(t[i] for t in tensors)``."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        n = {t.shape[0] for t in tensors}
        if len(n) != 1:
            raise ValueError(f"Size mismatch between tensors: first dimensions "
                             f"{[t.shape[0] for t in tensors]}")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor._from(t) for t in tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def _fl_arrays(self):
        return tuple(t._value() for t in self.tensors)


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)

    def _fl_arrays(self):
        cache = getattr(self, "_arrays_cache", None)
        if cache is None:
            base = self.dataset._fl_arrays() if hasattr(self.dataset, "_fl_arrays") else None
            if base is None:
                return None
            idx = np.asarray(self.indices, np.int32)
            cache = tuple(a[idx] for a in base)
            self._arrays_cache = cache
        return cache


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        i = int(np.searchsorted(self.cumulative_sizes, idx, side="right"))
        prev = int(self.cumulative_sizes[i - 1]) if i else 0
        return self.datasets[i][idx - prev]


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1)."""
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    rng = generator.host if generator is not None else host_rng()
    perm = rng.permutation(n).tolist()
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start:start + k]))
        start += k
    return out


def default_collate(batch):
    """Stack a list of samples field by field into tensors (torch's default_collate)."""
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor._from(np.stack([np.asarray(b._value()) for b in batch]))
    if isinstance(first, (np.ndarray, jax.Array)):
        return Tensor._from(np.stack([np.asarray(b) for b in batch]))
    if isinstance(first, (bool, int, float, np.number)):
        return Tensor._from(np.asarray(batch))
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(first, collections.abc.Sequence):
        return [default_collate(list(f)) for f in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                    f"lists; found {type(first)}")


class DataLoader:
    """Batches over a Dataset: ``batch_size``, ``shuffle`` (torch's global seed or
    ``generator``), ``drop_last``, ``collate_fn``; ``len()`` is the number of batches.
    ``num_workers``/``pin_memory`` are accepted and ignored (batches come from device memory).
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                       or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            raise NotImplementedError("DataLoader(batch_sampler=...) is not supported; use "
                                      "batch_size/shuffle/sampler")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.generator = generator
        self.num_workers = num_workers
        self._leaves = None

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if self.sampler is not None:
            return np.asarray(list(iter(self.sampler)), np.int64)
        if self.shuffle:
            rng = self.generator.host if self.generator is not None else host_rng()
            return rng.permutation(n)
        return np.arange(n)

    def __iter__(self):
        order = self._order()
        arrays = None
        if self.collate_fn is None and self.batch_size is not None:
            arrays = self.dataset._fl_arrays() if hasattr(self.dataset, "_fl_arrays") else None
        if arrays is not None:
            return self._array_batches(arrays, order)
        return self._sample_batches(order)

    def _array_batches(self, arrays, order):
        if self._leaves is None or self._leaves[0] is not arrays:
            self._leaves = (arrays, [leaf(a) for a in arrays])
        leaves = self._leaves[1]
        b = self.batch_size
        for i in range(len(self)):
            graph.mark_step()
            idx = leaf(np.asarray(order[i * b:(i + 1) * b], np.int32))
            yield [wrap(_rows_of(lf, idx)) for lf in leaves]

    def _sample_batches(self, order):
        collate = self.collate_fn or default_collate
        if self.batch_size is None:
            for i in order:
                graph.mark_step()
                yield self.dataset[int(i)]
            return
        b = self.batch_size
        for i in range(len(self)):
            graph.mark_step()
            yield collate([self.dataset[int(j)] for j in order[i * b:(i + 1) * b]])

