"""Layers of the functional core; each is a frozen dataclass with ``init`` and ``apply``."""
from . import activations, initializers
from .activations import Activation
from .attention import MultiHeadAttention, scaled_dot_product_attention
from .conv import Conv, Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .norm import BatchNorm, LayerNorm
from .pool import (AdaptiveAvgPool, AvgPool, AvgPool1D, AvgPool2D, GlobalAvgPool, GlobalMaxPool,
                   MaxPool, MaxPool1D, MaxPool2D, avg_pool, max_pool)
from .recurrent import GRU, LSTM, SimpleRNN
from .reshape import Flatten, Reshape
from .upsample import ConvTranspose, ConvTranspose1D, ConvTranspose2D, Upsample

__all__ = ["Activation", "AdaptiveAvgPool", "AvgPool", "AvgPool1D", "AvgPool2D", "BatchNorm",
           "Conv", "Conv1D", "Conv2D", "ConvTranspose", "ConvTranspose1D", "ConvTranspose2D", "Dense",
           "GRU", "LSTM", "MultiHeadAttention", "SimpleRNN", "Upsample", "scaled_dot_product_attention", "Dropout", "Embedding", "Flatten",
           "GlobalAvgPool", "GlobalMaxPool", "LayerNorm", "MaxPool", "MaxPool1D", "MaxPool2D",
           "Reshape", "activations", "avg_pool", "initializers", "max_pool"]
