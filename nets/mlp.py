"""Multi-layer perceptron.

Shape contract: input (N, ...) of any trailing shape (flattened), output logits (N, num_classes).
"""
from __future__ import annotations

from functorch_lite import layers as L
from functorch_lite.core import Sequential
from functorch_lite.layers.activations import relu


def mlp(hidden=(512, 512), num_classes: int = 10, *, dropout: float = 0.0) -> Sequential:
    """``Flatten -> [Dense(h) -> relu (-> Dropout)] * len(hidden) -> Dense(num_classes)``."""
    body = [L.Flatten()]
    for h in hidden:
        body += [L.Dense(h), relu] + ([L.Dropout(dropout)] if dropout else [])
    return Sequential(body + [L.Dense(num_classes)])
