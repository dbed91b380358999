"""LeNet-5 (LeCun et al., 1998) with ReLU and average pooling.

Shape contract: input (N, 28, 28, 1) NHWC float images (padded to 32x32 by the first conv's
'same' padding, as the classic 32x32 input), output logits (N, num_classes).
"""
from __future__ import annotations

from functorch_lite import layers as L
from functorch_lite.core import Sequential
from functorch_lite.layers.activations import relu


def lenet5(num_classes: int = 10) -> Sequential:
    """conv5x5(6, same) relu avgpool2 -> conv5x5(16) relu avgpool2 -> 120 -> 84 -> num_classes."""
    return Sequential([
        L.Conv(6, (5, 5), padding="same"), relu, L.AvgPool((2, 2)),
        L.Conv(16, (5, 5), padding="valid"), relu, L.AvgPool((2, 2)),
        L.Flatten(), L.Dense(120), relu, L.Dense(84), relu, L.Dense(num_classes),
    ])
