"""Channels-last inside compiled graphs: the replay runs torch's NCHW convolutions as NHWC.

XLA's CPU convolutions (forward and backward) run about 1.7x faster channels-last, but PyTorch
code is channels-first.  While a graph is replayed for compilation, a convolution's result is
kept channels-last (a :class:`ChannelsLast` wrapper around the physical array) and flows as such
through the ops that do not care about the layout (element-wise ops, pooling, batch norm,
dropout); the first op that does care (reshape, flatten, a matmul, a reduction over named
axes, an output of the graph) gets the logical channels-first array back by one transpose.
Values are the same up to float summation order; gradients flow through the transposes.

Measured and not kept: a flatten feeding a ``Linear`` taken channels-last as well, with the
Linear's weight columns permuted into (spatial, channel) order instead of transposing the
activations.  For the MNIST CNN's loop it was slower, 20.9-22.2 ms per step (median of 9
interleaved rounds, 3 runs, the batch in 2 pieces then) against 19.8-20.2: the weight
(128 x 3136) is twice one piece's activations (64 x 3136), and its transposes (forward and
gradient, 0.27-0.34 ms each alone) cost more than the activations' ones, which XLA fuses into
the pooling.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ..layers import AdaptiveAvgPool, AvgPool, BatchNorm, Conv, MaxPool

__all__ = ["ChannelsLast", "logical", "run"]


class ChannelsLast:
    """A logical channels-first array (N, C, *spatial) stored as (N, *spatial, C)."""
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a

    def logical(self):
        return jnp.moveaxis(self.a, -1, 1)


def logical(v):
    """The channels-first value (tuples of outputs included)."""
    if isinstance(v, ChannelsLast):
        return v.logical()
    if isinstance(v, tuple):
        return tuple(logical(x) for x in v)
    return v


def _logical_shape(v):
    s = v.a.shape
    return (s[0], s[-1]) + tuple(s[1:-1])


def _physical(x):
    return x.a if isinstance(x, ChannelsLast) else jnp.moveaxis(x, 1, -1)


_ELEMENTWISE = {"relu", "relu6", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "selu", "silu",
                "mish", "softplus", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "square",
                "identity", "stop_gradient", "astype", "clamp", "sign", "erf", "reciprocal"}
_BINARY = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"}


def _core(fn, kw, args):
    module = kw["module"]
    x = args[0]
    if isinstance(module, Conv) and module.layout == "channels_first" and not kw.get("extra"):
        names = kw["params"]
        arrays = list(args[1:])
        w = arrays[names.index("weight")]
        perm = tuple(range(2, w.ndim)) + (1, 0)          # OI* -> *IO
        arrays[names.index("weight")] = jnp.transpose(w, perm)
        core = dataclasses.replace(module, layout="channels_last")
        names = tuple("kernel" if n == "weight" else n for n in names)
        return ChannelsLast(fn(_physical(x), *arrays, **{**kw, "module": core, "params": names}))
    if not isinstance(x, ChannelsLast):
        return NotImplemented
    if isinstance(module, (MaxPool, AvgPool, AdaptiveAvgPool)) and module.layout == "channels_first":
        core = dataclasses.replace(module, layout="channels_last")
        return ChannelsLast(fn(x.a, *args[1:], **{**kw, "module": core}))
    if isinstance(module, BatchNorm) and module.axis == 1:
        core = dataclasses.replace(module, axis=-1)
        out = fn(x.a, *args[1:], **{**kw, "module": core})
        if isinstance(out, tuple):
            return (ChannelsLast(out[0]),) + out[1:]
        return ChannelsLast(out)
    return NotImplemented


def _shape(v):
    return _logical_shape(v) if isinstance(v, ChannelsLast) else tuple(getattr(v, "shape", ()))


def run(op, fn, kw, args):
    """Run ``fn`` (the implementation of ``op``) on replay values that may be channels-last."""
    if op == "core_apply":
        out = _core(fn, kw, args)
        if out is not NotImplemented:
            return out
    elif op in _BINARY and len(args) == 2 and (isinstance(args[0], ChannelsLast)
                                               or isinstance(args[1], ChannelsLast)):
        if _shape(args[0]) == _shape(args[1]):             # e.g. a residual connection
            return ChannelsLast(fn(_physical(args[0]), _physical(args[1]), **kw))
    elif args and isinstance(args[0], ChannelsLast):
        if op in _ELEMENTWISE and len(args) == 1 or op == "dropout":
            return ChannelsLast(fn(args[0].a, *args[1:], **kw))
        if op in _BINARY and len(args) == 1:               # a Python scalar operand
            return ChannelsLast(fn(args[0].a, **kw))
    if op == "item_of" and isinstance(args[0], tuple):
        return args[0][kw["i"]]
    return fn(*(logical(a) for a in args), **kw)
