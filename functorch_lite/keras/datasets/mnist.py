"""``keras.datasets.mnist``."""
from __future__ import annotations

from ._load import load

__all__ = ["load_data"]


def load_data(path="mnist.npz"):
    """``((x_train, y_train), (x_test, y_test))``: uint8 arrays (60000, 28, 28), (60000,),
    (10000, 28, 28), (10000,), as ``keras.datasets.mnist.load_data()``.  ``path`` may name an
    existing Keras ``mnist.npz``; otherwise the copy bundled with functorch_lite is used
    (see :func:`functorch_lite.datasets.load_mnist`)."""
    return load("mnist", path)
