"""N-d convolution: one implementation parameterised by dimension numbers (as stax's GeneralConv).

``layout='channels_last'``: input (N, *spatial, C), kernel ``'kernel'`` (*window, C/groups, F),
the Keras/Flax convention. ``layout='channels_first'``: input (N, C, *spatial), kernel
``'weight'`` (F, C/groups, *window), PyTorch's convention, so its weights load verbatim.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec
from . import initializers, per_example

__all__ = ["Conv", "Conv1D", "Conv2D", "conv_dimension_numbers", "normalize_padding", "to_tuple"]

_LAYOUTS = ("channels_last", "channels_first")


def to_tuple(v, n: int, what: str, layer: str = "Conv") -> tuple[int, ...]:
    """An int or a length-n sequence of ints -> a tuple of n ints (clear error otherwise)."""
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n or not all(isinstance(i, int) for i in v):
        raise ConfigError(f"{layer}: {what} expected an int or {n} ints for a {n}-d input, got {v!r}")
    return v


def normalize_padding(padding, n: int, layer: str = "Conv"):
    """'valid'/'same' (any case), an int, n ints, or n (low, high) pairs -> lax padding."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ConfigError(f"{layer}: padding expected 'valid', 'same', an int or pairs, got {padding!r}")
        return padding.upper()
    if isinstance(padding, int):
        return ((padding, padding),) * n
    padding = tuple(padding)
    if len(padding) == n and all(isinstance(p, int) for p in padding):
        return tuple((p, p) for p in padding)
    if len(padding) == n and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding):
        return tuple(tuple(p) for p in padding)
    raise ConfigError(f"{layer}: padding expected 'valid', 'same', an int, {n} ints or {n} pairs, got {padding!r}")


def check_conv_config(layer: str, filters, layout, groups) -> None:
    """The construction-time checks shared by Conv and ConvTranspose (ConfigError naming ``layer``)."""
    if not isinstance(filters, int) or filters <= 0:
        raise ConfigError(f"{layer}: filters expected a positive int, got {filters!r}")
    if layout not in _LAYOUTS:
        raise ConfigError(f"{layer}: layout expected one of {list(_LAYOUTS)}, got {layout!r}")
    if not isinstance(groups, int) or groups <= 0 or filters % groups:
        raise ConfigError(f"{layer}: groups expected a positive int dividing filters={filters}, "
                          f"got {groups!r}")


def freeze_lists(module, names) -> None:
    """Turn list-valued fields (and lists inside them) into tuples so the frozen module hashes."""
    for name in names:
        v = getattr(module, name)
        if isinstance(v, list):
            object.__setattr__(module, name, tuple(tuple(p) if isinstance(p, list) else p for p in v))


def conv_dimension_numbers(n: int, layout: str):
    """lax ConvDimensionNumbers for an n-d conv in the given layout."""
    sp = "DHW"[-n:] if n <= 3 else None
    if sp is None:
        raise ConfigError(f"Conv: only 1-d, 2-d and 3-d convolutions are supported, got {n}-d")
    if layout == "channels_last":
        return ("N" + sp + "C", sp + "IO", "N" + sp + "C")
    return ("NC" + sp, "OI" + sp, "NC" + sp)


@dataclasses.dataclass(frozen=True, repr=False)
class Conv(Module):
    """``Conv(filters, kernel_size, *, strides, padding, dilation, groups)``.

    The spatial rank comes from the input spec (rank - 2) when ``kernel_size`` is an int.
    """
    #: computations over this layer get the convolution compiler options (core/xla.py)
    uses_convolution = True
    per_example = True

    filters: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = "valid"
    dilation: Any = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: Any = "glorot_uniform"
    bias_init: Any = "zeros"
    layout: str = "channels_last"
    dtype: Any = None

    def __post_init__(self):
        check_conv_config("Conv", self.filters, self.layout, self.groups)
        initializers.check_names(self)
        if isinstance(self.kernel_size, (list, tuple)):
            object.__setattr__(self, "kernel_size", tuple(self.kernel_size))
        freeze_lists(self, ("strides", "dilation", "padding"))
        if isinstance(self.padding, str):  # fail at construction, not at the first apply
            normalize_padding(self.padding, 1)

    @property
    def _kname(self):
        return "kernel" if self.layout == "channels_last" else "weight"

    def _n(self, ndim: int) -> int:
        if isinstance(self.kernel_size, tuple):
            return len(self.kernel_size)
        return ndim - 2

    def _channels(self, shape) -> int:
        return shape[-1] if self.layout == "channels_last" else shape[1]

    def _check_input(self, shape, n):
        if len(shape) != n + 2:
            raise ShapeError(format_error(
                "Conv", f"input rank expected {n + 2} (batch, {'spatial..., channels' if self.layout == 'channels_last' else 'channels, spatial...'}) "
                        f"for a {n}-d convolution, got {len(shape)} (input {tuple(shape)})",
                hint="add a channel axis, e.g. x[..., None] for channels_last images" if len(shape) == n + 1 else None))

    def init(self, key, spec):
        spec = as_spec(spec)
        n = self._n(len(spec.shape))
        self._check_input(spec.shape, n)
        cin = self._channels(spec.shape)
        if cin % self.groups:
            raise ShapeError(format_error("Conv", f"input channels {cin} not divisible by groups {self.groups}"))
        window = to_tuple(self.kernel_size, n, "kernel_size")
        dtype = self.dtype or (spec.dtype if jnp.issubdtype(spec.dtype, jnp.floating) else jnp.float32)
        if self.layout == "channels_last":
            shape, axes = window + (cin // self.groups, self.filters), dict(in_axis=-2, out_axis=-1)
        else:
            shape, axes = (self.filters, cin // self.groups) + window, dict(in_axis=1, out_axis=0)
        fan_in = (cin // self.groups) * math.prod(window)
        k1, k2 = jax.random.split(key)
        params = {self._kname: initializers.get(self.kernel_init, **axes)(k1, shape, dtype)}
        if self.use_bias:
            params["bias"] = initializers.get(self.bias_init, fan_in=fan_in)(k2, (self.filters,), dtype)
        return params, {}

    def apply(self, params, state, x, *, key=None, train=False):
        w = params[self._kname]
        n = w.ndim - 2
        self._check_input(x.shape, n)
        cin = self._channels(x.shape)
        kin = w.shape[-2] if self.layout == "channels_last" else w.shape[1]
        if cin != kin * self.groups:
            raise ShapeError(format_error(
                "Conv", f"input channels {cin} != kernel in-channels {kin} x groups {self.groups} "
                        f"(input {tuple(x.shape)}, {self._kname} {tuple(w.shape)})",
                hint="channels_last layers expect (N, H, W, C); channels_first (N, C, H, W)"))
        y = per_example.conv(
            x, w,
            strides=to_tuple(self.strides, n, "strides"),
            padding=normalize_padding(self.padding, n),
            dilation=to_tuple(self.dilation, n, "dilation"),
            dimension_numbers=conv_dimension_numbers(n, self.layout),
            groups=self.groups, channels_last=self.layout == "channels_last")
        if self.use_bias:
            b = params["bias"]
            y = y + (b if self.layout == "channels_last" else b.reshape((-1,) + (1,) * n))
        return y, state


def Conv1D(filters, kernel_size, **kw) -> Conv:
    """A 1-d ``Conv`` (kernel_size as a 1-tuple)."""
    return Conv(filters, to_tuple(kernel_size, 1, "kernel_size"), **kw)


def Conv2D(filters, kernel_size, **kw) -> Conv:
    """A 2-d ``Conv`` (kernel_size as a 2-tuple)."""
    return Conv(filters, to_tuple(kernel_size, 2, "kernel_size"), **kw)
