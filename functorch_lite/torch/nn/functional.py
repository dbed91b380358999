"""``torch.nn.functional``: activations, layers and losses as recorded ops.

Layers (``linear``, ``conv2d``, pools, ``layer_norm``, ``batch_norm``, ``embedding``) run the
functional core's modules (``Dense`` with torch's ``'oi'`` layout, ``Conv`` channels-first, ...)
through one ``core_apply`` op, so the compiled graph holds exactly the core's computation.
"""
from __future__ import annotations

import functools
import warnings
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ... import layers as L
from ...core.errors import DataError
from .. import random as _random
from ..graph import leaf, record
from .._base import _dim, _op, as_node, host_full, wrap
from .module import ModuleShapeError

__all__ = ["relu", "relu6", "leaky_relu", "gelu", "elu", "selu", "silu", "mish", "softplus",
           "tanh", "sigmoid", "softmax", "log_softmax", "dropout", "linear", "conv1d", "conv2d",
           "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d", "layer_norm", "batch_norm", "embedding", "one_hot", "pad",
           "normalize", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "core_call"]


# ----------------------------------------------------------------------------- the core op

def core_call(module, x, params: dict, state: dict | None = None, *, train=False, multi=0,
              key=False, extra=()):
    """Record ``module.apply`` of a functional-core module on tensors: ``params``/``state``
    map the core's names to Tensors (None entries are left out; '/' nests), ``key`` adds a
    random key (dropout inside the module), ``extra`` tensors go with ``x`` as ``(x, extra)``.
    With ``multi=k`` the k flattened outputs come back as a tuple of tensors."""
    names = tuple(k for k, v in params.items() if v is not None)
    nodes = [as_node(x)] + [params[k]._node for k in names]
    snames = tuple(state) if state else ()
    nodes += [state[k]._node for k in snames]
    if key:
        nodes += list(_key_nodes())
    nodes += [as_node(e) for e in extra]
    attrs = (("module", module), ("params", names), ("state", snames), ("train", train),
             ("key", bool(key)), ("extra", len(extra)))
    node = record("core_apply", nodes, attrs)
    if multi:
        return tuple(wrap(record("item_of", [node], (("i", i),))) for i in range(multi))
    return wrap(node)


# ----------------------------------------------------------------------------- activations

def relu(input, inplace=False):  # noqa: A002
    return _op("relu", input)


def relu6(input, inplace=False):  # noqa: A002
    return _op("relu6", input)


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    return _op("leaky_relu", input, slope=float(negative_slope))


def gelu(input, approximate="none"):  # noqa: A002
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return _op("gelu", input, approximate=approximate == "tanh")


def elu(input, alpha=1.0, inplace=False):  # noqa: A002
    return _op("elu", input, alpha=float(alpha))


def selu(input, inplace=False):  # noqa: A002
    return _op("selu", input)


def silu(input, inplace=False):  # noqa: A002
    return _op("silu", input)


def mish(input, inplace=False):  # noqa: A002
    return _op("mish", input)


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002
    if beta == 1.0 and threshold == 20.0:
        return _op("softplus", input)
    scaled = input * beta
    return (scaled > threshold).float() * input + (scaled <= threshold).float() * (_op("softplus", scaled) / beta)


def tanh(input):  # noqa: A002
    return _op("tanh", input)


def sigmoid(input):  # noqa: A002
    return _op("sigmoid", input)


def _softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    if dim is None:
        warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call "
                      "to include dim=X as an argument.", stacklevel=2)
        dim = _softmax_dim(input.ndim)
    x = input.to(dtype) if dtype is not None else input
    return _op("softmax", x, dim=_dim(dim, input.ndim))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    if dim is None:
        warnings.warn("Implicit dimension choice for log_softmax has been deprecated. Change the "
                      "call to include dim=X as an argument.", stacklevel=2)
        dim = _softmax_dim(input.ndim)
    x = input.to(dtype) if dtype is not None else input
    return _op("log_softmax", x, dim=_dim(dim, input.ndim))


def normalize(input, p=2.0, dim=1, eps=1e-12):  # noqa: A002
    n = input.norm(p, dim, keepdim=True).clamp(min=eps)
    return input / n


# ----------------------------------------------------------------------------- dropout

_KEY_LEAF: list = [None, None]


def _key_nodes():
    """Leaves for the random key of a recorded op: the base key (same leaf every step) and a
    fresh counter, so that every call draws new numbers without recompiling."""
    base, counter = _random.graph_key()
    if _KEY_LEAF[0] is not base:
        _KEY_LEAF[0], _KEY_LEAF[1] = base, leaf(base)
    return _KEY_LEAF[1], leaf(counter)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    base, counter = _key_nodes()
    return wrap(record("dropout", [as_node(input), base, counter], (("p", float(p)),)))


# ----------------------------------------------------------------------------- layers

def _tuple(v, n, what):
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(i) for i in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"{what}: expected an int or {n} ints, got {v!r}")
    return v


@functools.lru_cache(maxsize=None)
def _dense(features, use_bias):
    return L.Dense(features, use_bias=use_bias, kernel_layout="oi", kernel_init="torch",
                   bias_init="torch_bias")


def linear(input, weight, bias=None):  # noqa: A002
    w = tuple(weight.shape)
    x = tuple(input.shape)
    if not x or x[-1] != w[-1]:
        a = "x".join(map(str, (int(np.prod(x[:-1])) if len(x) > 1 else 1, x[-1] if x else 0)))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a} and {w[1]}x{w[0]})")
    return core_call(_dense(w[0], bias is not None), input, {"weight": weight, "bias": bias})


def _conv_padding(padding, n, stride):
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             f"{{'valid', 'same'}}")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        return padding
    return tuple((p, p) for p in _tuple(padding, n, "padding"))


@functools.lru_cache(maxsize=None)
def _conv(filters, window, strides, padding, dilation, groups, use_bias):
    return L.Conv(filters, window, strides=strides, padding=padding, dilation=dilation,
                  groups=groups, use_bias=use_bias, layout="channels_first", kernel_init="torch",
                  bias_init="torch_bias")


def _convnd(n, name, input, weight, bias, stride, padding, dilation, groups, label=None):
    w = tuple(weight.shape)
    x = tuple(input.shape)
    unbatched = len(x) == n + 1
    if len(x) not in (n + 1, n + 2):
        raise ModuleShapeError(f"{label or name}: Expected {n + 1}D (unbatched) or {n + 2}D "
                               f"(batched) input to {name}, but got input of size: {list(x)}")
    c = x[0] if unbatched else x[1]
    if c != w[1] * groups:
        raise ModuleShapeError(f"{label or name}: Given groups={groups}, weight of size "
                               f"{list(w)}, expected input{list(x)} to have {w[1] * groups} "
                               f"channels, but got {c} channels instead")
    stride = _tuple(stride, n, "stride")
    core = _conv(w[0], tuple(w[2:]), stride, _conv_padding(padding, n, stride),
                 _tuple(dilation, n, "dilation"), groups, bias is not None)
    xin = input.unsqueeze(0) if unbatched else input
    y = core_call(core, xin, {"weight": weight, "bias": bias})
    return y[0] if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    return _convnd(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    return _convnd(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


@functools.lru_cache(maxsize=None)
def _pool(kind, window, strides, padding, count_include_pad):
    cls = L.MaxPool if kind == "max" else L.AvgPool
    return cls(window, strides=strides, padding=padding, layout="channels_first",
               count_include_pad=count_include_pad)


def _poolnd(kind, n, input, kernel_size, stride, padding, ceil_mode, count_include_pad=True,
            dilation=1, return_indices=False, divisor_override=None):
    name = f"{kind}_pool{n}d"
    if ceil_mode or return_indices or divisor_override is not None or _tuple(dilation, n, "dilation") != (1,) * n:
        raise NotImplementedError(f"{name}: ceil_mode, return_indices, dilation and "
                                  f"divisor_override are not supported by functorch_lite.torch")
    window = _tuple(kernel_size, n, "kernel_size")
    strides = window if stride is None or stride == [] else _tuple(stride, n, "stride")
    pads = _tuple(padding, n, "padding")
    for p, k in zip(pads, window):
        if p > k // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation=1")
    x = tuple(input.shape)
    if len(x) not in (n + 1, n + 2):
        raise RuntimeError(f"{name}: Expected {n + 1}D or {n + 2}D input, got {list(x)}")
    unbatched = len(x) == n + 1
    padding = "valid" if not any(pads) else tuple((p, p) for p in pads)  # valid: core fast path
    core = _pool(kind, window, strides, padding, count_include_pad)
    y = core_call(core, input.unsqueeze(0) if unbatched else input, {})
    return y[0] if unbatched else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    return _poolnd("max", 1, input, kernel_size, stride, padding, ceil_mode, True, dilation,
                   return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    return _poolnd("max", 2, input, kernel_size, stride, padding, ceil_mode, True, dilation,
                   return_indices)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True):
    return _poolnd("avg", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True, divisor_override=None):
    return _poolnd("avg", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override=divisor_override)


@functools.lru_cache(maxsize=None)
def _adaptive(output_size):
    return L.AdaptiveAvgPool(output_size, layout="channels_first")


def _adaptive_nd(n, input, output_size):  # noqa: A002
    x = tuple(input.shape)
    out = (output_size,) * n if isinstance(output_size, int) or output_size is None else tuple(output_size)
    out = tuple(x[len(x) - n + i] if o is None else int(o) for i, o in enumerate(out))
    unbatched = len(x) == n + 1
    y = core_call(_adaptive(out), input.unsqueeze(0) if unbatched else input, {})
    return y[0] if unbatched else y


def adaptive_avg_pool1d(input, output_size):  # noqa: A002
    return _adaptive_nd(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    return _adaptive_nd(2, input, output_size)


@functools.lru_cache(maxsize=None)
def _layer_norm(ndims, eps, use_scale, use_bias):
    return L.LayerNorm(ndims, epsilon=eps, use_scale=use_scale, use_bias=use_bias)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[-len(shape):]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(input.shape)}")
    core = _layer_norm(len(shape), float(eps), weight is not None, bias is not None)
    return core_call(core, input, {"scale": weight, "bias": bias})


@functools.lru_cache(maxsize=None)
def _batch_norm(decay, eps, use_scale, use_bias):
    return L.BatchNorm(axis=1, decay=decay, epsilon=eps, use_scale=use_scale, use_bias=use_bias,
                       unbiased_running_var=True)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,  # noqa: A002
               momentum=0.1, eps=1e-5):
    """torch's batch norm over axis 1; in training the running statistics are updated in place
    (lazily: they are computed in the same compiled step)."""
    if momentum is None:
        raise NotImplementedError("batch_norm(momentum=None) (cumulative average) is not supported")
    c = input.shape[1] if input.ndim > 1 else None
    if input.ndim < 2:
        raise ValueError(f"Expected 2D or more input (got {input.ndim}D input)")
    if training and input.numel() // c <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{input.shape}")
    core = _batch_norm(1.0 - float(momentum), float(eps), weight is not None, bias is not None)
    params = {"scale": weight, "bias": bias}
    if not training:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var are needed when not training")
        return core_call(core, input, params, {"mean": running_mean, "var": running_var})
    mean = running_mean if running_mean is not None else _const(host_full((c,), 0, jnp.float32))
    var = running_var if running_var is not None else _const(host_full((c,), 1, jnp.float32))
    y, new_mean, new_var = core_call(core, input, params, {"mean": mean, "var": var}, train=True,
                                     multi=3)
    if running_mean is not None:
        running_mean._inplace(new_mean.detach()._node)
    if running_var is not None:
        running_var._inplace(new_var.detach()._node)
    return y


def _const(value):
    return wrap(leaf(value))


@functools.lru_cache(maxsize=None)
def _embedding(num, dim):
    return L.Embedding(num, dim)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,  # noqa: A002
              scale_grad_by_freq=False, sparse=False):
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    if input.is_floating_point():
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following "
                           f"scalar types: Long, Int; but got {input.type()} instead")
    num, dim = tuple(weight.shape)
    if padding_idx is None:
        return core_call(_embedding(num, dim), input, {"embedding": weight})
    pad = padding_idx % num
    return _op("embedding_pad", input, weight, pad=pad)


def one_hot(tensor, num_classes=-1):
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1
    return _op("one_hot", tensor, num_classes=int(num_classes)).long()


def pad(input, pad, mode="constant", value=None):  # noqa: A002
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    if len(pad) % 2:
        raise ValueError("Padding length must be divisible by 2")
    n = len(pad) // 2
    pairs = [(0, 0)] * (input.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(n))]
    return _op("pad", input, pads=tuple(pairs), value=0.0 if value is None else float(value))


# ----------------------------------------------------------------------------- losses

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(reduction, size_average=None, reduce=None):
    if size_average is not None or reduce is not None:
        if reduce is False:
            return "none"
        return "mean" if size_average in (None, True) else "sum"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _check_batch(input, target):
    if input.ndim >= 2 and target.ndim >= 1 and input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0]}).")


def _check_class_target(fn, input, target):
    _check_batch(input, target)
    x, t = tuple(input.shape), tuple(target.shape)
    expected = x[:1] + x[2:] if len(x) > 1 else ()
    if t != expected:
        raise RuntimeError(f"{fn}: expected target of shape {list(expected)} (class indices) for "
                           f"input of shape {list(x)}, got {list(t)}")
    if target.is_floating_point():
        raise RuntimeError(f"{fn}: expected target of integer dtype (class indices, torch.long), "
                           f"got {target.dtype}")


class TargetOutOfBoundsError(DataError, IndexError):
    """A class index outside ``[0, C)`` (torch raises IndexError; this is also a DataError)."""


def _host_targets(target):
    """The concrete class indices behind ``target`` and where they come from: the tensor's own
    value, or for a batch of rows of a concrete tensor (a DataLoader's ``take_rows`` of a
    dataset tensor, or ``targets[idx]``) that whole tensor, checked once: reading the batch
    itself would wait for every computation queued before it (the previous training step) on
    each step; None when they are lazy or traced."""
    node = target._node
    if node.source is not None:
        where = "of the dataset's targets" if node.op == "take_rows" else "of the indexed target tensor"
        node = node.source
    elif node.op is not None:
        return None, None
    else:
        where = "of the target"
    value = node.value
    if isinstance(value, jax.core.Tracer) or not isinstance(value, (np.ndarray, jax.Array)):
        return None, None
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return None, None   # a multi-process global batch: not fetchable here, left unchecked
    return value, where


_RANGE_CHECKED: dict = {}   # id(dataset column) -> (weakref, classes, ignore_index) checked


def _check_target_range(fn, input, target, ignore_index):
    """torch's ``Target 7 is out of bounds`` on the host: a target tensor's own values, or the
    tensor a batch's rows come from (a DataLoader's dataset column, ``targets[idx]``'s
    ``targets``) once per (tensor, classes), never a lazy or traced value (that would cost a
    device sync per step)."""
    value, where = _host_targets(target)
    if value is None or value.size == 0:
        return
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    key = (classes, ignore_index)
    if where != "of the target":
        seen = _RANGE_CHECKED.get(id(value))
        if seen is not None and seen[0]() is value and seen[1] == key:
            return
    host = np.asarray(value)
    bad = ((host < 0) | (host >= classes)) & (host != ignore_index)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        got = host[idx].item()
        raise TargetOutOfBoundsError(
            f"{fn}: Target {got} is out of bounds: expected class indices in [0, {classes}) for "
            f"input of shape {list(input.shape)}, got {got} at index {idx} {where} "
            f"({int(bad.sum())} out of range)")
    if where != "of the target":
        if len(_RANGE_CHECKED) > 64:
            _RANGE_CHECKED.clear()
        _RANGE_CHECKED[id(value)] = (weakref.ref(value), key)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
                  reduce=None, reduction="mean", label_smoothing=0.0):
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if tuple(target.shape) != tuple(input.shape):
        _check_class_target("cross_entropy", input, target)
        _check_target_range("cross_entropy", input, target, ignore_index)
    elif not target.is_floating_point():
        raise RuntimeError("cross_entropy: class-probability targets must be floating point")
    xs = [input, target] + ([weight] if weight is not None else [])
    return _op("cross_entropy", *xs, reduction=reduction, ignore_index=int(ignore_index),
               label_smoothing=float(label_smoothing))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,  # noqa: A002
             reduction="mean"):
    reduction = _reduction(reduction, size_average, reduce)
    _check_class_target("nll_loss", input, target)
    _check_target_range("nll_loss", input, target, ignore_index)
    xs = [input, target] + ([weight] if weight is not None else [])
    return _op("nll_loss", *xs, reduction=reduction, ignore_index=int(ignore_index))


def _broadcast_pair(fn, input, target):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to "
                      f"broadcasting. Please ensure they have the same size.", stacklevel=3)
        try:
            shape = tuple(np.broadcast_shapes(tuple(input.shape), tuple(target.shape)))
        except ValueError:
            raise RuntimeError(f"{fn}: The size of tensor a ({input.shape[-1]}) must match the "
                               f"size of tensor b ({target.shape[-1]}) at non-singleton "
                               f"dimension {max(input.ndim, target.ndim) - 1}") from None
        input, target = input.expand(shape), target.expand(shape)
    return input, target.to(input.dtype)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _broadcast_pair("mse_loss", input, target)
    return _op("mse_loss", input, target, reduction=reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):  # noqa: A002
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _broadcast_pair("l1_loss", input, target)
    return _op("l1_loss", input, target, reduction=reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):  # noqa: A002
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _broadcast_pair("smooth_l1_loss", input, target)
    return _op("smooth_l1_loss", input, target, reduction=reduction, beta=float(beta))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,  # noqa: A002
                                     reduce=None, reduction="mean", pos_weight=None):
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    xs = [input, target.to(input.dtype)] + [t for t in (weight, pos_weight) if t is not None]
    return _op("bce_with_logits", *xs, reduction=reduction, has_weight=weight is not None,
               has_pos_weight=pos_weight is not None)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                         reduction="mean"):
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same size.")
    xs = [input, target.to(input.dtype)] + ([weight] if weight is not None else [])
    return _op("bce", *xs, reduction=reduction, has_weight=weight is not None)

