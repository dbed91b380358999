"""``functorch_lite.torch``: PyTorch's eager API over the functional core, compiled by XLA.

    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F

Record, do not dispatch: tensors produced under autograd are lazy graph nodes; ``backward()``,
``optimizer.step()`` and anything that needs a value run the recorded graph as one cached
``jax.jit`` computation (``graph.py``).  ``compile_count()`` / ``compile_log()`` tell how many
graphs were compiled and why.
"""
from __future__ import annotations

import types as _types

from . import dtypes as _dtypes
from . import distributed, func, graph, nn, optim, utils
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .dtypes import (bfloat16, bool_ as bool, device, double, dtype, float16, float32,  # noqa: A001
                     float64, get_default_dtype, half, int8, int16, int32, int64, long,
                     set_default_dtype, short, uint8)
from .dtypes import float as float  # noqa: A001, PLC0414
from .dtypes import int as int  # noqa: A001, PLC0414
from .factories import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                        linspace, normal, ones, ones_like, rand, rand_like, randint, randint_like,
                        randn, randn_like, randperm, tensor, zeros, zeros_like)
from .functions import (abs, add, all, allclose, amax, amin, any, argmax, argmin, bmm, cat,  # noqa: A004
                        ceil, chunk, clamp, clip, concat, concatenate, cos, cumsum, div, einsum,
                        eq, equal, exp, expm1, flatten, flip, floor, gather, ge, gt, index_select,
                        isfinite, isinf, isnan, le, log, log1p, log_softmax, logsumexp, lt,
                        masked_fill, matmul, max, maximum, mean, min, minimum, mm, mul, ne, neg,
                        norm, numel, outer, permute, pow, prod, relu, reshape, round, rsqrt,
                        sigmoid, sign, sin, softmax, split, sqrt, square, squeeze, stack, std, sub,
                        sum, t, tanh, topk, transpose, tril, triu, unbind, unsqueeze, var, where)
from .graph import COMPILES
from .random import Generator, initial_seed, manual_seed, seed
from .serialization import load, save
from .tensor import Size, Tensor, is_tensor

__version__ = "2.13.0+functorch_lite"


def compile_count() -> int:
    """How many graphs (training steps, forwards, optimizer updates) were compiled so far."""
    return COMPILES.count


def compile_log():
    """The compile log: ``.count``, ``.by_kind`` and ``.reasons`` (why each compile happened)."""
    return COMPILES


def is_floating_point(t) -> bool:
    return t.is_floating_point()


def set_num_threads(n: int) -> None:
    """Accepted for compatibility; XLA chooses its own threads."""


def get_num_threads() -> int:
    import os
    return os.cpu_count() or 1


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted for compatibility (XLA CPU kernels are deterministic)."""


def _unavailable(name):
    def is_available() -> bool:
        return False

    def device_count() -> int:
        return 0

    def manual_seed_all(s):
        return None
    return _types.SimpleNamespace(is_available=is_available, device_count=device_count,
                                  manual_seed=manual_seed_all, manual_seed_all=manual_seed_all,
                                  is_built=is_available)


cuda = _unavailable("cuda")
backends = _types.SimpleNamespace(mps=_unavailable("mps"), cudnn=_types.SimpleNamespace(
    deterministic=False, benchmark=False, enabled=False, is_available=lambda: False))
mps = _unavailable("mps")


class autograd:  # noqa: N801  (a namespace, like torch.autograd)
    no_grad = no_grad
    enable_grad = enable_grad
    set_grad_enabled = set_grad_enabled
    inference_mode = inference_mode

FloatTensor = Tensor
LongTensor = Tensor
del _types

__all__ = ["COMPILES", "FloatTensor", "Generator", "LongTensor", "Size", "Tensor", "abs", "add",
           "all", "allclose", "amax", "amin", "any", "arange", "argmax", "argmin", "as_tensor",
           "autograd", "backends", "bfloat16", "bmm", "bool", "cat", "ceil", "chunk", "clamp",
           "clip", "compile_count", "compile_log", "concat", "concatenate", "cos", "cuda",
           "cumsum", "device", "distributed", "div", "double", "dtype", "einsum", "empty",
           "empty_like", "enable_grad", "eq", "equal", "exp", "expm1", "eye", 
           "flatten", "flip", "float", "float16", "float32", "float64", "floor", "from_numpy",
           "full", "full_like", "func", "gather", "ge", "get_default_dtype",
           "get_num_threads", "graph", "gt", "half", "index_select", "inference_mode",
           "initial_seed", "int", "int16", "int32", "int64", "int8", "is_floating_point",
           "is_grad_enabled", "is_tensor", "isfinite", "isinf", "isnan", "le", "linspace", "load",
           "log", "log1p", "log_softmax", "logsumexp", "long", "lt", "manual_seed", "masked_fill",
           "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "mps", "mul", "ne", "neg",
           "nn", "no_grad", "norm", "normal", "numel", "ones", "ones_like", "optim",
           "outer", "permute", "pow", "prod", "rand", "rand_like", "randint",
           "randint_like", "randn", "randn_like", "random", "randperm", "relu", "reshape",
           "round", "rsqrt", "save", "seed", "set_default_dtype",
           "set_grad_enabled", "set_num_threads", "short", "sigmoid", "sign", "sin", "softmax",
           "split", "sqrt", "square", "squeeze", "stack", "std", "sub", "sum", "t", "tanh",
           "tensor", "topk", "transpose", "tril", "triu", "uint8", "unbind",
           "unsqueeze", "use_deterministic_algorithms", "utils", "var", "where", "zeros",
           "zeros_like"]
