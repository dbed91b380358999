"""A convolution with one input channel, lowered for XLA:CPU as a sum of shifted windows.

XLA:CPU runs a convolution with one input channel (conv1 of the MNIST CNN: 1 -> 32 channels,
3x3, batch 128) at ~20 GFLOP/s, 2.55 ms, where the same multiply-adds written as 9 shifted
slices of the input, each times one row of the kernel, take 0.59 ms
(``benchmarks/conv_lowering.py``). Plain autodiff of that sum is slow (its kernel gradient is
9 elementwise products reduced over the batch: the step went 25 -> 62 ms), so the
derivatives are a custom JVP that is linear in the tangents:

    d conv(x, w) = lax.conv(dx, w) + patches(x) @ dw

Reverse mode transposes it: the kernel gradient is one ``patches^T @ g`` dot (the patches of
an input of ``c`` channels are ``prod(window) * c`` wide) and the input gradient is
``lax.conv``'s own transpose, not computed at all when the input is data (a symbolic zero
tangent). Forward mode, second order and ``vmap`` work as for any JAX function.

Used only on the CPU backend (GPU and TPU keep ``lax.conv``, their fast path), for float32 and
float64, groups=1, channels-last layers (channels-first measured slower, a 61 -> 72 ms step),
no negative padding and at most :data:`MAX_CHANNELS` input channels, where it measured faster.
``FUNCTORCH_LITE_CONV_LOWERING=lax`` turns it off (for A/B runs), read at trace time;
:func:`disabled` turns it off for what is traced inside it (the torch adapter's compiled
training graphs, where it measured slower: see ``torch/graph.py``).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import os

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

__all__ = ["applies", "conv", "disabled", "lax_conv", "padded_windows", "windows",
           "MAX_CHANNELS"]

_OFF = contextvars.ContextVar("functorch_lite_shifted_conv_off", default=False)

#: input channels up to which the shifted-window forward is used on CPU (measured for the
#: MNIST CNN's conv1 shapes in ``benchmarks/conv_lowering.py``)
MAX_CHANNELS = 1


def windows(xp, window, out, strides, dilation):
    """The slices of a padded channels-last input ``xp`` (batch, *spatial, channels) that meet
    each kernel offset, row-major over the window: ``prod(window)`` arrays of shape
    (batch, *out, channels)."""
    def one(offset):
        return xp[(slice(None),) + tuple(
            slice(o * d, o * d + (size - 1) * s + 1, s)
            for o, d, size, s in zip(offset, dilation, out, strides)) + (slice(None),)]
    return [one(o) for o in itertools.product(*(range(k) for k in window))]


@contextlib.contextmanager
def disabled():
    """Trace the convolutions inside this block as ``lax.conv`` (a trace-time switch)."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


def applies(x, w, *, groups, pads, channels_last) -> bool:
    """Whether :func:`conv` is the faster lowering here (see the module docstring)."""
    if _OFF.get() or os.environ.get("FUNCTORCH_LITE_CONV_LOWERING", "auto") == "lax":
        return False
    if jax.default_backend() != "cpu" or groups != 1 or not channels_last:
        return False
    if jnp.result_type(x, w) not in (jnp.float32, jnp.float64):  # no low-precision sums
        return False
    return (x.shape[-1] <= MAX_CHANNELS and all(lo >= 0 and hi >= 0 for lo, hi in pads)
            and w.size > 0)


def lax_conv(x, w, cfg):
    """``lax.conv_general_dilated`` for ``cfg = (strides, pads, dilation, dn)``."""
    strides, pads, dilation, dn = cfg
    return lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation,
                                    dimension_numbers=dn)


def padded_windows(x, window, cfg):
    """:func:`windows` of a channels-last ``x`` padded as ``cfg`` says."""
    strides, pads, dilation, _ = cfg
    xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    out = tuple((size + lo + hi - (k - 1) * d - 1) // s + 1
                for size, (lo, hi), k, d, s in zip(x.shape[1:-1], pads, window, dilation, strides))
    return windows(xp, window, out, strides, dilation)


def _shifted_sum(x, w, cfg):
    """The convolution as ``sum over offsets k and channels c of window_k(x)[..., c] * w[k, c]``
    (x: (batch, *spatial, C), w: (*window, C, F))."""
    parts = padded_windows(x, w.shape[:-2], cfg)
    c = x.shape[-1]
    rows = w.reshape(-1, c, w.shape[-1])
    total = functools.reduce(jnp.add, (p[..., ci:ci + 1] * rows[k, ci]
                                       for k, p in enumerate(parts) for ci in range(c)))
    return total.astype(jnp.result_type(x, w))


def _patches_times(x, dw, cfg):
    """``patches(x) @ dw``: the convolution's derivative in the kernel as one 2-d dot, so that
    its transpose (the kernel gradient) is one dot, ``patches^T @ g``, too. (Offsets leading
    the patches instead of minor measured 2.5% slower for the CNN step.)"""
    parts = padded_windows(x, dw.shape[:-2], cfg)
    patches = jnp.stack(parts, axis=-2)      # (batch, *out, K, C)
    lead, f = patches.shape[:-2], dw.shape[-1]
    y = jnp.dot(patches.reshape(-1, dw.size // f), dw.reshape(-1, f))
    return y.reshape(lead + (f,))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _conv(x, w, cfg):
    return _shifted_sum(x, w, cfg)


def _conv_jvp(cfg, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = _conv(x, w, cfg)
    dy = None
    if not isinstance(dx, SymbolicZero):
        dy = lax_conv(dx, w, cfg)
    if not isinstance(dw, SymbolicZero):
        t = _patches_times(x, dw, cfg)
        dy = t if dy is None else dy + t
    if dy is None:
        dy = jnp.zeros_like(y)
    return y, dy.astype(y.dtype)


_conv.defjvp(_conv_jvp, symbolic_zeros=True)


def conv(x, w, cfg):
    """``lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation,
    dimension_numbers=dn)`` of a channels-last ``x`` and (*window, in, out) ``w``, for
    ``cfg = (strides, pads, dilation, dn)`` (pads as (lo, hi) pairs), written as shifted
    windows with the derivatives above."""
    return _conv(x, w, cfg)
