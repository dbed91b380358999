"""Pooling: MaxPool, AvgPool (1-d/2-d/3-d), global pools, adaptive average pooling.

Non-overlapping, unpadded pools (window == strides) run as elementwise maxima of strided slices
(max) or a reshape and a mean (average), which XLA's CPU backend runs many times faster than
``lax.reduce_window`` (whose max gradient is a slow select-and-scatter); other configurations use
``reduce_window``.  Results are identical.  The fast max's gradient goes to each window's first
maximum (row-major), as in PyTorch, through a custom JVP whose transpose XLA fuses into one loop:
the MNIST CNN's train step ran 37.6 -> 34.9 ms (same process, XLA:CPU) against differentiating
the strided slices.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module
from .conv import normalize_padding, to_tuple

__all__ = ["MaxPool", "AvgPool", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D",
           "GlobalAvgPool", "GlobalMaxPool", "AdaptiveAvgPool", "max_pool", "avg_pool"]

_LAYOUTS = ("channels_last", "channels_first")


def _check_layout(layout, layer):
    if layout not in _LAYOUTS:
        raise ConfigError(f"{layer}: layout expected one of {list(_LAYOUTS)}, got {layout!r}")


def _check_min_rank(x, layer):
    if x.ndim < 3:
        raise ShapeError(format_error(layer, f"input rank expected >= 3 (batch, spatial..., channels), "
                                             f"got {x.ndim} (input {tuple(x.shape)})"))


def _spatial_axes(ndim, n, layout):
    return tuple(range(1, 1 + n)) if layout == "channels_last" else tuple(range(2, 2 + n))


def _full(vals, ndim, axes, fill):
    out = [fill] * ndim
    for a, v in zip(axes, vals):
        out[a] = v
    return tuple(out)


def _tiled_pool(x, window, axes, kind):
    """Pool with window == strides and no padding (the trailing remainder is dropped, as in
    PyTorch).  The max is an elementwise ``maximum`` of the window's strided slices, axis by axis
    (XLA's CPU backend runs it ~2.5x faster than a reshape-and-max and ~25x faster than
    ``reduce_window``), with the derivative of :func:`_tiled_max`; the mean is a reshape and a mean."""
    w_of = dict(zip(axes, window))
    x = x[tuple(slice(0, (x.shape[a] // w_of[a]) * w_of[a]) if a in w_of else slice(None)
                for a in range(x.ndim))]
    shape, red = [], []
    for a in range(x.ndim):
        if a in w_of:
            shape += [x.shape[a] // w_of[a], w_of[a]]
            red.append(len(shape) - 1)
        else:
            shape.append(x.shape[a])
    if kind == "max":
        return _tiled_max(x, tuple(w_of.items()), tuple(shape), tuple(red))
    return jnp.mean(x.reshape(shape), axis=tuple(red))


def _strided_max(x, w_items):
    for a, w in w_items:
        x = functools.reduce(jnp.maximum, [lax.slice_in_dim(x, i, x.shape[a], stride=w, axis=a)
                                           for i in range(w)])
    return x


def _index_dtype(n):
    """The smallest signed integer dtype that holds ``n`` (and ``n + 1``)."""
    return next(d for d in (np.int8, np.int16, np.int32) if n + 1 <= np.iinfo(d).max)


def _first_max_index(x, shape, red, once=True):
    """Each window's FIRST maximum (row-major in the window), as one small integer per window of
    the windowed view ``x.reshape(shape)`` (window axes ``red``): a running maximum over the
    window positions, taken by a later position only where it is strictly greater, or NaN (as
    PyTorch's max pooling picks its index: a window with NaNs picks its last NaN).

    The index is computed from ``x`` alone, never by comparing ``x`` with the pooled output:
    XLA may compute the two in different fusions, and a value recomputed in one need not be
    bit-equal to the same value in the other (the MNIST CNN's conv1, a fused sum of 9 shifted
    windows: then no position matched and the gradient went to the wrong one).

    The index ends in an integer remainder by a number above every position (the identity on
    the positions) because XLA's fusion never copies an integer remainder into a consumer that
    reads each of its elements several times: the index is then written once per window in the
    forward pass (one byte each up to 126 positions), where without it XLA:CPU recomputed the
    window's chain (and the layer before the pool) for every element of the backward's mask.
    The divisor is not a power of two, which XLA's simplifier would turn into a bit mask;
    ``once=False`` leaves the remainder out (``python -m benchmarks.step_variants``:
    ``pool_mask_recomputed``, 1.07x the step's time).  Against the mask before (each position
    compared with the pooled output, recomputed in the backward), the MNIST CNN's Adam step
    (batch 128, 2 cores, one process, 15 alternating rounds of 20 steps, 2026-12-04) took
    0.76-0.95x the time by round (best 20.1 -> 17.8 ms), the same loss; its per-example
    gradients 67.8 -> 65.6 ms, bit-identical."""
    xw = x.reshape(shape)
    sizes = [shape[r] for r in red]
    n = math.prod(sizes)
    dtype = _index_dtype(n)
    floating = jnp.issubdtype(x.dtype, jnp.inexact)
    best = first = None
    for number, pos in enumerate(itertools.product(*(range(k) for k in sizes))):
        at = dict(zip(red, pos))
        v = lax.squeeze(xw[tuple(slice(at[i], at[i] + 1) if i in at else slice(None)
                                 for i in range(len(shape)))], red)
        if best is None:
            best, first = v, jnp.zeros(v.shape, dtype)
            continue
        better = (v > best) | jnp.isnan(v) if floating else v > best
        first = jnp.where(better, np.asarray(number, dtype), first)
        best = jnp.where(better, v, best)
    if once and n > 1:
        first = lax.rem(first, np.asarray(n if n & (n - 1) else n + 1, dtype))
    return first


def _first_max_mask(x, shape, red, once=True):
    """In the windowed view ``x.reshape(shape)`` (window axes ``red``), True at the FIRST
    position (row-major in the window) of each window's maximum, as PyTorch routes the gradient:
    :func:`_first_max_index` compared with the positions' numbers (instead of one mask per
    position joined by concatenation: MNIST CNN Adam step 36.6 -> 32.6 ms median; the step's
    LLVM compile 864 -> 728 ms of CPU)."""
    first = _first_max_index(x, shape, red, once)
    return jnp.expand_dims(first, red) == window_numbers(shape, red, first.dtype)


def window_numbers(shape, red, dtype):
    """The positions' numbers (row-major in the window), shaped to broadcast against the
    windowed view ``shape`` (window axes ``red``)."""
    return np.arange(math.prod(shape[r] for r in red), dtype=dtype).reshape(
        [shape[i] if i in red else 1 for i in range(len(shape))])


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _tiled_max(x, w_items, shape, red):
    return _strided_max(x, w_items)


@_tiled_max.defjvp
def _tiled_max_jvp(w_items, shape, red, primals, tangents):
    # The tangent of each window's first maximum, read through the windowed reshape: its
    # transpose (the gradient) is then one broadcast-multiply-reshape that XLA fuses into a
    # single loop, instead of one interior-padded scatter per window position.
    (x,), (t,) = primals, tangents
    y = _strided_max(x, w_items)
    mask = _first_max_mask(x, shape, red)
    return y, jnp.sum(jnp.where(mask, t.reshape(shape), 0), axis=red)


def _pool(x, window, strides, padding, layout, kind, count_include_pad, layer):
    n = len(window)
    if x.ndim != n + 2:
        raise ShapeError(format_error(
            layer, f"input rank expected {n + 2} for a {n}-d pool, got {x.ndim} (input {tuple(x.shape)})"))
    axes = _spatial_axes(x.ndim, n, layout)
    for a, w in zip(axes, window):
        if x.shape[a] < w and padding == "VALID":
            raise ShapeError(format_error(
                layer, f"spatial size {x.shape[a]} smaller than pool window {w} (input {tuple(x.shape)})"))
    if padding == "VALID" and tuple(strides) == tuple(window):
        return _tiled_pool(x, window, axes, kind)
    dims = _full(window, x.ndim, axes, 1)
    strd = _full(strides, x.ndim, axes, 1)
    pads = padding if isinstance(padding, str) else _full(padding, x.ndim, axes, (0, 0))
    if kind == "max":
        init = -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
        return lax.reduce_window(x, np.array(init, x.dtype), lax.max, dims, strd, pads)
    total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, strd, pads)
    if count_include_pad and not isinstance(pads, str):
        return total / math.prod(window)
    counts = lax.reduce_window(jnp.ones(x.shape, x.dtype), np.array(0, x.dtype),
                               lax.add, dims, strd, pads)
    return total / counts


def max_pool(x, window, strides=None, padding="valid", layout="channels_last"):
    """Functional max pooling over the spatial axes."""
    n = x.ndim - 2
    window = to_tuple(window, n, "window", "max_pool")
    strides = to_tuple(strides if strides is not None else window, n, "strides", "max_pool")
    return _pool(x, window, strides, normalize_padding(padding, n, "max_pool"), layout, "max", True, "max_pool")


def avg_pool(x, window, strides=None, padding="valid", layout="channels_last", count_include_pad=True):
    """Functional average pooling over the spatial axes."""
    n = x.ndim - 2
    window = to_tuple(window, n, "window", "avg_pool")
    strides = to_tuple(strides if strides is not None else window, n, "strides", "avg_pool")
    return _pool(x, window, strides, normalize_padding(padding, n, "avg_pool"), layout, "avg",
                 count_include_pad, "avg_pool")


@dataclasses.dataclass(frozen=True, repr=False)
class _Pool(Module):
    per_example = True
    window: Any = 2
    strides: Any = None
    padding: Any = "valid"
    layout: str = "channels_last"
    count_include_pad: bool = True
    _kind = "max"

    def __post_init__(self):
        _check_layout(self.layout, type(self).__name__)
        for name in ("window", "strides", "padding"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(tuple(p) if isinstance(p, list) else p for p in v))
        if isinstance(self.padding, str):  # fail at construction, not at the first apply
            normalize_padding(self.padding, 1, type(self).__name__)

    def _n(self, ndim):
        return len(self.window) if isinstance(self.window, tuple) else ndim - 2

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        layer = type(self).__name__
        n = self._n(x.ndim)
        window = to_tuple(self.window, n, "window", layer)
        strides = to_tuple(self.strides if self.strides is not None else window, n, "strides", layer)
        padding = normalize_padding(self.padding, n, layer)
        return _pool(x, window, strides, padding, self.layout, self._kind, self.count_include_pad, layer), state


@dataclasses.dataclass(frozen=True, repr=False)
class MaxPool(_Pool):
    """``MaxPool(window=2, *, strides=window, padding='valid')``; padded cells never win."""
    _kind = "max"


@dataclasses.dataclass(frozen=True, repr=False)
class AvgPool(_Pool):
    """``AvgPool(window=2, *, strides=window, padding='valid', count_include_pad=True)``."""
    _kind = "avg"


def MaxPool1D(window=2, **kw):
    return MaxPool(to_tuple(window, 1, "window", "MaxPool1D"), **kw)


def MaxPool2D(window=2, **kw):
    return MaxPool(to_tuple(window, 2, "window", "MaxPool2D"), **kw)


def AvgPool1D(window=2, **kw):
    return AvgPool(to_tuple(window, 1, "window", "AvgPool1D"), **kw)


def AvgPool2D(window=2, **kw):
    return AvgPool(to_tuple(window, 2, "window", "AvgPool2D"), **kw)


@dataclasses.dataclass(frozen=True, repr=False)
class _GlobalPool(Module):
    per_example = True
    layout: str = "channels_last"
    keepdims: bool = False

    def __post_init__(self):
        _check_layout(self.layout, type(self).__name__)

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        _check_min_rank(x, type(self).__name__)
        axes = tuple(range(1, x.ndim - 1)) if self.layout == "channels_last" else tuple(range(2, x.ndim))
        return self._reduce(x, axis=axes, keepdims=self.keepdims), state


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial axes: (N, *spatial, C) -> (N, C)."""
    _reduce = staticmethod(jnp.mean)


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalMaxPool(_GlobalPool):
    """Max over all spatial axes: (N, *spatial, C) -> (N, C)."""
    _reduce = staticmethod(jnp.max)


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveAvgPool(Module):
    """PyTorch's ``AdaptiveAvgPool``: output spatial size ``output_size``; each output cell
    averages input cells ``[floor(i*H/o), ceil((i+1)*H/o))``."""
    per_example = True
    output_size: Any = 1
    layout: str = "channels_last"

    def __post_init__(self):
        _check_layout(self.layout, "AdaptiveAvgPool")
        if isinstance(self.output_size, list):
            object.__setattr__(self, "output_size", tuple(self.output_size))

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        _check_min_rank(x, "AdaptiveAvgPool")
        n = x.ndim - 2
        out = to_tuple(self.output_size, n, "output_size", "AdaptiveAvgPool")
        axes = _spatial_axes(x.ndim, n, self.layout)
        for a, o in zip(axes, out):
            size = x.shape[a]
            starts = [(i * size) // o for i in range(o)]
            ends = [-(-((i + 1) * size) // o) for i in range(o)]
            pieces = [jnp.mean(lax.slice_in_dim(x, s, e, axis=a), axis=a, keepdims=True)
                      for s, e in zip(starts, ends)]
            x = jnp.concatenate(pieces, axis=a) if o > 1 else pieces[0]
        return x, state
