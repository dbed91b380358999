"""``keras.datasets.fashion_mnist``."""
from __future__ import annotations

from ._load import load

__all__ = ["load_data"]


def load_data():
    """Fashion-MNIST as uint8 arrays, same layout as ``mnist.load_data()`` (labels 0 T-shirt
    ... 9 ankle boot); see :func:`functorch_lite.datasets.load_fashion_mnist` for where the
    files are looked for or downloaded."""
    return load("fashion_mnist", None)
