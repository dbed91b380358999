"""functorch_lite: neural networks as pure functions over parameter pytrees, compiled by XLA.

    import functorch_lite as fl
    model = fl.Sequential([fl.Dense(128), fl.relu, fl.Dense(10)])
    params, state = model.init(jax.random.key(0), (1, 784))
    logits, state = model.apply(params, state, x)

The Keras-like and torch-like adapters (``fl.keras``, ``fl.torch``, ``fl.torchvision``) are
imported on first use.
"""
from __future__ import annotations

import importlib

from . import checkpoint, core, datasets, distributed, layers, losses, metrics, optim, train, transforms
from .core import (CheckpointError, ConfigError, DataError, Lambda, Module, Parallel, Residual,
                   Sequential, ShapeError, TreeMismatchError, as_spec, has_state, output_spec,
                   without_state)
from .layers import (Activation, AdaptiveAvgPool, AvgPool, AvgPool1D, AvgPool2D, BatchNorm, Conv,
                     Conv1D, Conv2D, ConvTranspose, ConvTranspose2D, Dense, Dropout, Embedding,
                     Flatten, GlobalAvgPool, GlobalMaxPool, GRU, LayerNorm, LSTM, MaxPool, MaxPool1D,
                     MaxPool2D, MultiHeadAttention, Reshape, SimpleRNN, Upsample)
from .layers.activations import (elu, gelu, hard_tanh, identity, leaky_relu, log_softmax, relu,
                                 relu6, selu, sigmoid, silu, softmax, softplus, swish, tanh)
from .train import Callback, History, TrainState, evaluate, fit, predict
from .transforms import (ensemble, functional_call, grad, grad_and_value, hessian, hvp,
                         init_ensemble, jacfwd, jacrev, jit, jvp, per_example_grads, stack_params,
                         unstack_params, value_and_grad, vjp, vmap)

# FUNCTORCH_LITE_CPU_MALLOC=one_arena must reach glibc before JAX starts its threads (core/xla.py)
core.xla.tune_host_allocator_at_import()

__version__ = "0.1.0"

_LAZY = {"keras", "torch", "torchvision"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'functorch_lite' has no attribute {name!r}")


__all__ = [
    "Activation", "AdaptiveAvgPool", "AvgPool", "AvgPool1D", "AvgPool2D", "BatchNorm", "Callback",
    "CheckpointError", "ConfigError", "Conv", "Conv1D", "Conv2D", "DataError", "Dense", "Dropout",
    "distributed",
    "Embedding", "Flatten", "GlobalAvgPool", "GlobalMaxPool", "History", "Lambda", "LayerNorm",
    "ConvTranspose", "ConvTranspose2D", "GRU", "LSTM", "MultiHeadAttention", "SimpleRNN", "Upsample",
    "MaxPool", "MaxPool1D", "MaxPool2D", "Module", "Parallel", "Reshape", "Residual", "Sequential",
    "ShapeError", "TrainState", "TreeMismatchError", "as_spec", "checkpoint", "core", "datasets",
    "elu", "ensemble", "evaluate", "fit", "functional_call", "gelu", "grad", "grad_and_value",
    "hard_tanh", "has_state", "hessian", "hvp", "identity", "init_ensemble", "jacfwd", "jacrev", "jit", "jvp",
    "layers", "leaky_relu", "log_softmax", "losses", "metrics", "optim", "output_spec",
    "per_example_grads", "predict", "relu", "relu6", "selu", "sigmoid", "silu", "softmax",
    "softplus", "stack_params", "swish", "tanh", "train", "transforms", "unstack_params",
    "value_and_grad", "vjp", "vmap", "without_state",
]
