"""``torchvision.transforms``: ToTensor, Normalize, Compose, Lambda.

Each transform works on one sample (as torchvision's do) and, where it can, on a whole array of
samples at once (``batched``), which lets array-backed datasets transform everything once.
"""
from __future__ import annotations

import numpy as np

from ..torch.tensor import Tensor

__all__ = ["ToTensor", "Normalize", "Compose", "Lambda", "PILToTensor"]


def _as_numpy(pic):
    if isinstance(pic, Tensor):
        return np.asarray(pic._value())
    return np.asarray(pic)


class ToTensor:
    """HxW or HxWxC image (uint8 in [0, 255], or float) -> float32 CxHxW tensor in [0, 1]."""

    def __call__(self, pic):
        return Tensor._from(self.batched(_as_numpy(pic)[None])[0])

    @staticmethod
    def batched(x: np.ndarray) -> np.ndarray:
        """(N, H, W) or (N, H, W, C) -> (N, C, H, W) float32."""
        if x.ndim not in (3, 4):
            raise ValueError(f"ToTensor: pic should be 2 or 3 dimensional. Got {x.ndim - 1} dimensions.")
        x = x[..., None] if x.ndim == 3 else x
        out = np.transpose(x, (0, 3, 1, 2))
        if out.dtype == np.uint8:
            return out.astype(np.float32) / np.float32(255.0)
        return out.astype(np.float32)

    def __repr__(self):
        return "ToTensor()"


class PILToTensor(ToTensor):
    """HxW(xC) image -> uint8 CxHxW tensor (no scaling)."""

    @staticmethod
    def batched(x):
        x = x[..., None] if x.ndim == 3 else x
        return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


class Normalize:
    """``(x - mean) / std`` per channel of a CxHxW float tensor."""

    def __init__(self, mean, std, inplace=False):
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero after conversion to float32, leading to "
                             f"division by zero.")

    def __call__(self, tensor):
        x = _as_numpy(tensor)
        if x.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got "
                             f"tensor.size() = {x.shape}")
        return Tensor._from(self.batched(x[None])[0])

    def batched(self, x: np.ndarray) -> np.ndarray:
        c = x.shape[1]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need 1 or {c} "
                             f"values for {c} channels")
        m = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return ((x.astype(np.float32) - m) / s).astype(np.float32)

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Lambda:
    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, x):
        return self.lambd(x)

    def __repr__(self):
        return "Lambda()"


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    @property
    def batchable(self) -> bool:
        return all(hasattr(t, "batched") for t in self.transforms)

    def batched(self, x):
        for t in self.transforms:
            x = t.batched(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"
