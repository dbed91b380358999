"""``functorch_lite.torch.nn``: modules over the functional core, losses, ``functional``."""
from . import functional, init, parallel, utils
from .layers import (ELU, GELU, SELU, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d,
                     BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, Dropout, Dropout1d, Dropout2d,
                     Embedding, Flatten, Identity, LayerNorm, LeakyReLU, Linear, LogSoftmax,
                     MaxPool1d, MaxPool2d, Mish, ModuleDict, ModuleList, ReLU, ReLU6, Sequential,
                     Sigmoid, SiLU, Softmax, Softplus, Tanh, Unflatten)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
                   SmoothL1Loss)
from .module import Buffer, Module, ModuleShapeError, Parameter
from .parallel import DataParallel
from .rnn import GRU, LSTM, RNN

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BCELoss",
           "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Buffer", "Conv1d", "Conv2d",
           "CrossEntropyLoss", "DataParallel", "Dropout", "Dropout1d", "Dropout2d", "ELU", "Embedding", "Flatten",
           "GELU", "GRU", "Identity", "LSTM", "RNN", "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax",
           "MSELoss", "MaxPool1d", "MaxPool2d", "Mish", "Module", "ModuleDict", "ModuleList",
           "ModuleShapeError", "NLLLoss", "Parameter", "ReLU", "ReLU6", "SELU", "Sequential",
           "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softplus", "Tanh", "Unflatten",
           "functional", "init", "parallel", "utils"]
