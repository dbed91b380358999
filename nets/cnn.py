"""The classic two-convolution MNIST network.

Shape contract: input (N, 28, 28, 1) NHWC float images, output logits (N, num_classes).
conv3x3(32, 'same') relu maxpool2 -> conv3x3(64, 'same') relu maxpool2 -> dense 128 relu -> dense.
"""
from __future__ import annotations

from functorch_lite import layers as L
from functorch_lite.core import Sequential
from functorch_lite.layers.activations import relu


def cnn(num_classes: int = 10, *, dropout: float = 0.0) -> Sequential:
    """The MNIST CNN (about 421k parameters for 28x28x1 inputs)."""
    return Sequential([
        L.Conv(32, (3, 3), padding="same"), relu, L.MaxPool((2, 2)),
        L.Conv(64, (3, 3), padding="same"), relu, L.MaxPool((2, 2)),
        L.Flatten(), L.Dense(128), relu,
        *([L.Dropout(dropout)] if dropout else []),
        L.Dense(num_classes),
    ])
