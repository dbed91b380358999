"""Layers of the functional core; each is a frozen dataclass with ``init`` and ``apply``."""
from . import activations, initializers
from .activations import Activation
from .conv import Conv, Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .norm import BatchNorm, LayerNorm
from .pool import (AdaptiveAvgPool, AvgPool, AvgPool1D, AvgPool2D, GlobalAvgPool, GlobalMaxPool,
                   MaxPool, MaxPool1D, MaxPool2D, avg_pool, max_pool)
from .reshape import Flatten, Reshape

__all__ = ["Activation", "AdaptiveAvgPool", "AvgPool", "AvgPool1D", "AvgPool2D", "BatchNorm",
           "Conv", "Conv1D", "Conv2D", "Dense", "Dropout", "Embedding", "Flatten",
           "GlobalAvgPool", "GlobalMaxPool", "LayerNorm", "MaxPool", "MaxPool1D", "MaxPool2D",
           "Reshape", "activations", "avg_pool", "initializers", "max_pool"]
