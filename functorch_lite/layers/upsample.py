"""Upsampling: ConvTranspose (the gradient of a convolution) and Upsample (nearest / linear).

``ConvTranspose`` matches ``torch.nn.ConvTranspose1d/2d/3d``.  Kernel layouts:

* ``layout='channels_first'``: input (N, C, *spatial), ``'weight'`` (C, F/groups, *window),
  PyTorch's tensor verbatim.
* ``layout='channels_last'``: input (N, *spatial, C), ``'kernel'`` (*window, F/groups, C), Keras'
  ``Conv2DTranspose`` layout, i.e. ``kernel = weight.transpose(2, 3, 1, 0)`` (2-d) with the same
  meaning (no spatial flip between the two).

Both are run as one ``lax.conv_general_dilated`` over the input dilated by ``strides``
(``lhs_dilation``) with the spatially flipped, in/out-swapped kernel (then a crop where
``padding`` exceeds the kernel span).  ``padding`` p crops p
from both ends of the full output (an int, n ints, or n explicit ``(low, high)`` crops) and
``output_padding`` adds rows at the high end: output size
``(in - 1) * stride - low - high + dilation * (k - 1) + 1 + output_padding`` as in torch.
Default init is torch's (``'torch'`` kernel, ``'torch_bias'`` bias, fan-in = F/groups * window).

``Upsample(scale_factor, mode)`` matches ``torch.nn.Upsample``: ``'nearest'`` (source index
``floor(dst / scale)``), ``'linear'``/``'bilinear'``/``'trilinear'`` (1-, 2-, 3-d; half-pixel
centres with ``align_corners=False``, or corner-aligned).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error, unknown_option
from ..core.module import Module, as_spec
from . import initializers
from .conv import _LAYOUTS, check_conv_config, freeze_lists, to_tuple

__all__ = ["ConvTranspose", "ConvTranspose1D", "ConvTranspose2D", "Upsample"]


def _crops(padding, n, layer="ConvTranspose"):
    """An int, n ints or n (low, high) pairs of non-negative ints -> n (low, high) crops."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        pairs = ((padding, padding),) * n
    else:
        seq = tuple(padding) if isinstance(padding, (tuple, list)) else None
        if seq is not None and len(seq) == n and all(isinstance(p, int) for p in seq):
            pairs = tuple((p, p) for p in seq)
        elif seq is not None and len(seq) == n and all(
                isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(i, int) for i in p)
                for p in seq):
            pairs = tuple(tuple(p) for p in seq)
        else:
            raise ConfigError(f"{layer}: padding expected an int, {n} ints or {n} (low, high) pairs, "
                              f"got {padding!r}")
    if any(i < 0 for p in pairs for i in p):
        raise ConfigError(f"{layer}: padding expected non-negative values, got {pairs!r}")
    return pairs


@dataclasses.dataclass(frozen=True, repr=False)
class ConvTranspose(Module):
    """``ConvTranspose(filters, kernel_size, *, strides, padding, output_padding, dilation, groups)``
    (torch ``ConvTranspose{1,2,3}d(in, filters, kernel_size, stride, padding, output_padding,
    groups, bias, dilation)``).  The spatial rank comes from the input when ``kernel_size`` is an int.
    """
    #: computations over this layer get the convolution compiler options (core/xla.py)
    uses_convolution = True
    per_example = True

    filters: int
    kernel_size: Any
    _: dataclasses.KW_ONLY
    strides: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: Any = "torch"
    bias_init: Any = "torch_bias"
    layout: str = "channels_last"
    dtype: Any = None

    def __post_init__(self):
        check_conv_config("ConvTranspose", self.filters, self.layout, self.groups)
        initializers.check_names(self)
        freeze_lists(self, ("kernel_size", "strides", "dilation", "output_padding", "padding"))
        if isinstance(self.padding, str):
            raise ConfigError(f"ConvTranspose: padding expected an int, ints or (low, high) pairs "
                              f"(torch's transposed convolutions have no 'same'/'valid'), got {self.padding!r}")

    @property
    def _kname(self):
        return "kernel" if self.layout == "channels_last" else "weight"

    def _n(self, ndim: int) -> int:
        return len(self.kernel_size) if isinstance(self.kernel_size, tuple) else ndim - 2

    def _channels(self, shape) -> int:
        return shape[-1] if self.layout == "channels_last" else shape[1]

    def _check_input(self, shape, n):
        if n not in (1, 2, 3):
            raise ConfigError(f"ConvTranspose: only 1-d, 2-d and 3-d transposed convolutions are "
                              f"supported, got {n}-d")
        if len(shape) != n + 2:
            axes = "spatial..., channels" if self.layout == "channels_last" else "channels, spatial..."
            raise ShapeError(format_error(
                "ConvTranspose", f"input rank expected {n + 2} (batch, {axes}) for a {n}-d transposed "
                                 f"convolution, got {len(shape)} (input {tuple(shape)})",
                hint="add a channel axis, e.g. x[..., None] for channels_last images"
                if len(shape) == n + 1 else None))

    def _config(self, n):
        strides = to_tuple(self.strides, n, "strides", "ConvTranspose")
        dilation = to_tuple(self.dilation, n, "dilation", "ConvTranspose")
        out_pad = to_tuple(self.output_padding, n, "output_padding", "ConvTranspose")
        for s, d, o in zip(strides, dilation, out_pad):
            if s <= 0 or d <= 0:
                raise ConfigError(f"ConvTranspose: strides and dilation expected positive ints, got "
                                  f"strides={strides}, dilation={dilation}")
            if o < 0 or (o >= s and o >= d):
                raise ConfigError(f"ConvTranspose: output_padding {out_pad} must be non-negative and "
                                  f"smaller than either strides {strides} or dilation {dilation}")
        return strides, dilation, out_pad, _crops(self.padding, n)

    def init(self, key, spec):
        spec = as_spec(spec)
        n = self._n(len(spec.shape))
        self._check_input(spec.shape, n)
        self._config(n)
        cin = self._channels(spec.shape)
        if cin % self.groups:
            raise ShapeError(format_error(
                "ConvTranspose", f"input channels {cin} not divisible by groups {self.groups}"))
        window = to_tuple(self.kernel_size, n, "kernel_size", "ConvTranspose")
        dtype = self.dtype or (spec.dtype if jnp.issubdtype(spec.dtype, jnp.floating) else jnp.float32)
        fo = self.filters // self.groups
        if self.layout == "channels_last":
            shape, axes = window + (fo, cin), dict(in_axis=-2, out_axis=-1)
        else:
            shape, axes = (cin, fo) + window, dict(in_axis=1, out_axis=0)
        fan_in = fo * math.prod(window)   # torch's fan-in of a transposed weight: its dim 1
        k1, k2 = jax.random.split(key)
        params = {self._kname: initializers.get(self.kernel_init, **axes)(k1, shape, dtype)}
        if self.use_bias:
            params["bias"] = initializers.get(self.bias_init, fan_in=fan_in)(k2, (self.filters,), dtype)
        return params, {}

    def apply(self, params, state, x, *, key=None, train=False):
        w = params[self._kname]
        n = w.ndim - 2
        self._check_input(x.shape, n)
        strides, dilation, out_pad, crops = self._config(n)
        cin = self._channels(x.shape)
        if self.layout == "channels_last":   # (*window, F/g, C) -> torch (C, F/g, *window)
            w = jnp.transpose(w, (n + 1, n) + tuple(range(n)))
        if cin != w.shape[0]:
            raise ShapeError(format_error(
                "ConvTranspose", f"input channels {cin} != kernel in-channels {w.shape[0]} "
                                 f"(input {tuple(x.shape)}, {self._kname} {tuple(params[self._kname].shape)})",
                hint="channels_last layers expect (N, H, W, C); channels_first (N, C, H, W)"))
        g = self.groups
        window = w.shape[2:]
        # forward-conv kernel (F, C/g, *window): swap in/out within each group, flip the window
        k = w.reshape((g, cin // g, w.shape[1]) + window)
        k = jnp.swapaxes(k, 1, 2).reshape((g * w.shape[1], cin // g) + window)
        k = jnp.flip(k, axis=tuple(range(2, n + 2)))
        sp_axes = tuple(range(1, n + 1)) if self.layout == "channels_last" else tuple(range(2, n + 2))
        pads, crop, out_shape = [], [], list(x.shape)
        for a, kk, s, d, (lo, hi), o in zip(sp_axes, window, strides, dilation, crops, out_pad):
            span = d * (kk - 1)
            out_shape[a] = (x.shape[a] - 1) * s - lo - hi + span + 1 + o
            plo, phi = span - lo, span - hi + o
            pads.append((max(plo, 0), max(phi, 0)))        # pad here, crop what is negative below
            crop.append((max(-plo, 0), max(-phi, 0)))
        out_shape[-1 if self.layout == "channels_last" else 1] = self.filters
        if any(out_shape[a] <= 0 for a in sp_axes):
            raise ShapeError(format_error(
                "ConvTranspose", f"output would be empty: spatial size {tuple(out_shape[a] for a in sp_axes)} "
                                 f"for input "
                                 f"{tuple(x.shape)} (padding {crops} crops more than the output)"))
        sp = "DHW"[-n:]
        lhs = ("N" + sp + "C") if self.layout == "channels_last" else ("NC" + sp)
        y = jax.lax.conv_general_dilated(
            x, k, window_strides=(1,) * n, padding=pads, lhs_dilation=strides, rhs_dilation=dilation,
            dimension_numbers=(lhs, "OI" + sp, lhs), feature_group_count=g)
        if any(c != (0, 0) for c in crop):
            idx = [slice(None)] * y.ndim
            for a, (clo, chi) in zip(sp_axes, crop):
                idx[a] = slice(clo, y.shape[a] - chi)
            y = y[tuple(idx)]
        if self.use_bias:
            b = params["bias"]
            y = y + (b if self.layout == "channels_last" else b.reshape((-1,) + (1,) * n))
        return y, state


def ConvTranspose1D(filters, kernel_size, **kw) -> ConvTranspose:
    """A 1-d ``ConvTranspose`` (kernel_size as a 1-tuple)."""
    return ConvTranspose(filters, to_tuple(kernel_size, 1, "kernel_size", "ConvTranspose"), **kw)


def ConvTranspose2D(filters, kernel_size, **kw) -> ConvTranspose:
    """A 2-d ``ConvTranspose`` (kernel_size as a 2-tuple)."""
    return ConvTranspose(filters, to_tuple(kernel_size, 2, "kernel_size", "ConvTranspose"), **kw)


_MODES = {"nearest": None, "linear": 1, "bilinear": 2, "trilinear": 3}


def _linear_axis(x, axis, out, scale, align_corners):
    """Linear interpolation of ``x`` along ``axis`` to ``out`` samples (torch's source indices)."""
    size = x.shape[axis]
    dst = jnp.arange(out, dtype=jnp.float32)
    if align_corners:
        src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = jnp.maximum((dst + 0.5) * (1.0 / scale) - 0.5, 0.0)
    lo = jnp.minimum(jnp.floor(src).astype(jnp.int32), size - 1)
    hi = jnp.minimum(lo + 1, size - 1)
    frac = (src - lo).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = out
    frac = frac.reshape(shape)
    return jnp.take(x, lo, axis=axis) * (1 - frac) + jnp.take(x, hi, axis=axis) * frac


def _nearest_axis(x, axis, out, scale):
    size = x.shape[axis]
    if out == size * scale and float(scale).is_integer():
        return jnp.repeat(x, int(scale), axis=axis)
    src = jnp.floor(jnp.arange(out, dtype=jnp.float32) * jnp.float32(1.0 / scale)).astype(jnp.int32)
    return jnp.take(x, jnp.minimum(src, size - 1), axis=axis)


@dataclasses.dataclass(frozen=True, repr=False)
class Upsample(Module):
    """``Upsample(scale_factor=2, mode='nearest')``: ``torch.nn.Upsample(scale_factor=..., mode=...)``.

    ``scale_factor`` is a number or one per spatial axis; output size ``floor(in * scale)``.
    ``mode`` 'nearest' works for any spatial rank; 'linear', 'bilinear' and 'trilinear' need 1, 2
    and 3 spatial axes, as in torch.  No parameters.
    """
    per_example = True
    scale_factor: Any = 2
    mode: str = "nearest"
    _: dataclasses.KW_ONLY
    align_corners: bool = False
    layout: str = "channels_last"

    def __post_init__(self):
        if self.mode not in _MODES:
            raise unknown_option("Upsample: mode", self.mode, _MODES)
        if self.layout not in _LAYOUTS:
            raise ConfigError(f"Upsample: layout expected one of {list(_LAYOUTS)}, got {self.layout!r}")
        if isinstance(self.scale_factor, list):
            object.__setattr__(self, "scale_factor", tuple(self.scale_factor))
        sf = self.scale_factor if isinstance(self.scale_factor, tuple) else (self.scale_factor,)
        if not sf or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in sf):
            raise ConfigError(f"Upsample: scale_factor expected a positive number or one per spatial "
                              f"axis, got {self.scale_factor!r}")
        if self.align_corners and self.mode == "nearest":
            raise ConfigError("Upsample: align_corners=True only applies to the linear modes, "
                              "got mode='nearest'")

    def init(self, key, spec):
        spec = as_spec(spec)
        self._scales(spec.shape)
        return {}, {}

    def _scales(self, shape):
        n = len(shape) - 2
        need = _MODES[self.mode]
        lay = "(batch, spatial..., channels)" if self.layout == "channels_last" else "(batch, channels, spatial...)"
        if n < 1 or (need is not None and n != need):
            want = f"{need + 2}" if need is not None else "at least 3"
            raise ShapeError(format_error(
                "Upsample", f"input rank expected {want} {lay} for mode={self.mode!r}, got {len(shape)} "
                            f"(input {tuple(shape)})"))
        if isinstance(self.scale_factor, tuple):
            if len(self.scale_factor) != n:
                raise ShapeError(format_error(
                    "Upsample", f"scale_factor has {len(self.scale_factor)} entries for {n} spatial axes "
                                f"(input {tuple(shape)})"))
            return tuple(float(s) for s in self.scale_factor)
        return (float(self.scale_factor),) * n

    def apply(self, params, state, x, *, key=None, train=False):
        scales = self._scales(x.shape)
        n = len(scales)
        axes = range(1, n + 1) if self.layout == "channels_last" else range(2, n + 2)
        for axis, s in zip(axes, scales):
            out = int(math.floor(x.shape[axis] * s))
            if out <= 0:
                raise ShapeError(format_error(
                    "Upsample", f"output size along axis {axis} would be {out} (size {x.shape[axis]}, "
                                f"scale {s}; input {tuple(x.shape)})"))
            if self.mode == "nearest":
                x = _nearest_axis(x, axis, out, s)
            else:
                x = _linear_axis(x, axis, out, s, self.align_corners)
        return x, state
