"""Dense (fully connected) layer: ``y = x @ kernel + bias`` over the last axis."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec
from . import initializers, per_example

__all__ = ["Dense"]


@dataclasses.dataclass(frozen=True, repr=False)
class Dense(Module):
    """``Dense(features)``: params ``{'kernel': (in, features), 'bias': (features,)}``.

    ``kernel_layout='oi'`` stores PyTorch's ``{'weight': (features, in), 'bias'}`` instead, so
    ``torch.nn.Linear`` weights load verbatim.  Input ``(..., in)`` -> output ``(..., features)``.
    """
    per_example = True
    features: int
    use_bias: bool = True
    kernel_init: Any = "glorot_uniform"
    bias_init: Any = "zeros"
    kernel_layout: str = "io"
    dtype: Any = None

    def __post_init__(self):
        if not isinstance(self.features, int) or self.features <= 0:
            raise ConfigError(f"Dense: features expected a positive int, got {self.features!r}")
        if self.kernel_layout not in ("io", "oi"):
            raise ConfigError(f"Dense: kernel_layout expected 'io' or 'oi', got {self.kernel_layout!r}")
        initializers.check_names(self)

    @property
    def _kname(self):
        return "kernel" if self.kernel_layout == "io" else "weight"

    def init(self, key, spec):
        spec = as_spec(spec)
        if len(spec.shape) < 1:
            raise ShapeError(format_error("Dense", f"input expected at least 1 axis, got shape {spec.shape}"))
        fan_in = spec.shape[-1]
        dtype = self.dtype or (spec.dtype if jnp.issubdtype(spec.dtype, jnp.floating) else jnp.float32)
        k1, k2 = jax.random.split(key)
        if self.kernel_layout == "io":
            shape, axes = (fan_in, self.features), dict(in_axis=-2, out_axis=-1)
        else:
            shape, axes = (self.features, fan_in), dict(in_axis=-1, out_axis=-2)
        params = {self._kname: initializers.get(self.kernel_init, **axes)(k1, shape, dtype)}
        if self.use_bias:
            params["bias"] = initializers.get(self.bias_init, fan_in=fan_in)(k2, (self.features,), dtype)
        return params, {}

    def apply(self, params, state, x, *, key=None, train=False):
        w = params[self._kname]
        fan_in = w.shape[0] if self.kernel_layout == "io" else w.shape[1]
        if x.ndim < 1 or x.shape[-1] != fan_in:
            raise ShapeError(format_error(
                "Dense", f"input last axis {x.shape[-1] if x.ndim else None} != kernel in-features "
                         f"{fan_in} (input {tuple(x.shape)}, {self._kname} {tuple(w.shape)})",
                hint="flatten the input first (Flatten()) or build the model for this input shape"
                if x.ndim > 2 else None))
        y = per_example.dense(x, w, io=self.kernel_layout == "io")
        if self.use_bias:
            y = y + params["bias"]
        return y, state
