"""``keras.layers``: Keras layer objects, each a functional-core module underneath.

``layer.module`` is the core module (``Dense`` -> ``KerasOp(layers.Dense(units), activation)``);
its params are exactly the core layer's (``{'kernel', 'bias'}``; Conv kernels HWIO), so a
Keras model's ``params`` tree is what the functional API would build.  Keras defaults are kept:
Dense/Conv ``glorot_uniform``/``zeros``, Conv/pool ``padding='valid'``, BatchNormalization
``momentum=0.99, epsilon=1e-3``, LayerNormalization ``epsilon=1e-3``, Embedding
``uniform(-0.05, 0.05)``, LeakyReLU slope 0.3.  ``data_format='channels_first'`` transposes to
the core's channels_last and back.  Recurrent layers (LSTM, GRU, SimpleRNN) are not available:
the functional core has none yet.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from .. import layers as core
from ..core.errors import ConfigError, ShapeError, format_error
from ..core.module import Module, as_spec
from . import activations as _act
from . import initializers as _init
from ._base import KerasOp, KerasTensor, Layer, unique_name

__all__ = ["Layer", "Dense", "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D",
           "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Flatten",
           "Reshape", "Dropout", "BatchNormalization", "LayerNormalization", "Embedding",
           "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Rescaling", "Lambda", "Add",
           "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Input",
           "InputLayer", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "KerasTensor"]

_PADDINGS = ("valid", "same")
_FORMATS = ("channels_last", "channels_first")


def _padding(layer, padding, extra=()):
    if not isinstance(padding, str) or padding.lower() not in _PADDINGS + tuple(extra):
        raise ConfigError(f"{layer}: padding expected one of {list(_PADDINGS + tuple(extra))}, "
                          f"got {padding!r}")
    return padding.lower()


def _data_format(layer, data_format):
    data_format = data_format or "channels_last"
    if data_format not in _FORMATS:
        raise ConfigError(f"{layer}: data_format expected one of {list(_FORMATS)}, got "
                          f"{data_format!r}")
    return data_format == "channels_first"


def _tuple(layer, what, v, n):
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n or not all(isinstance(i, int) and i > 0 for i in v):
        raise ConfigError(f"{layer}: {what} expected a positive int or {n} positive ints, got "
                          f"{v!r}")
    return v


# ------------------------------------------------------------------ small core modules
@dataclasses.dataclass(frozen=True, repr=False)
class Apply(Module):
    """A parameter-free core module applying ``fn(x)``; ``label`` names it in params keys."""
    fn: Callable
    label: str = "apply"
    float_input: bool = False

    @property
    def name(self) -> str:
        return self.label

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        if self.float_input and not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return self.fn(x), state

    def __repr__(self):
        return f"Apply({self.label})"


@dataclasses.dataclass(frozen=True, repr=False)
class Merge(Module):
    """Combines a list of same-shape inputs (``op`` over them) or concatenates along ``axis``."""
    op: str
    axis: int = -1

    @property
    def name(self) -> str:
        return self.op

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, xs, *, key=None, train=False):
        layer = self.op.capitalize()
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            raise ShapeError(format_error(layer, f"input expected a list of at least 2 tensors, "
                                                 f"got {type(xs).__name__}"))
        shapes = [tuple(x.shape) for x in xs]
        if self.op == "concatenate":
            ax = self.axis % len(shapes[0])
            rest = {s[:ax] + s[ax + 1:] for s in shapes}
            if len(rest) != 1 or len({len(s) for s in shapes}) != 1:
                raise ShapeError(format_error("Concatenate", f"inputs expected equal shapes except "
                                                             f"on axis {self.axis}, got {shapes}"))
            return jnp.concatenate(xs, axis=self.axis), state
        if self.op == "subtract" and len(xs) != 2:
            raise ShapeError(format_error("Subtract", f"input expected exactly 2 tensors, got "
                                                      f"{len(xs)}"))
        try:
            jnp.broadcast_shapes(*shapes)
        except ValueError:
            raise ShapeError(format_error(layer, f"inputs expected broadcastable shapes, got "
                                                 f"{shapes}")) from None
        if self.op == "subtract":
            return xs[0] - xs[1], state
        fn = {"add": jnp.add, "multiply": jnp.multiply, "maximum": jnp.maximum,
              "minimum": jnp.minimum, "average": jnp.add}[self.op]
        y = xs[0]
        for x in xs[1:]:
            y = fn(y, x)
        return (y / len(xs) if self.op == "average" else y), state


# ------------------------------------------------------------------ layers with weights
class Dense(Layer):
    """``Dense(units, activation=None, use_bias=True, kernel_initializer='glorot_uniform',
    bias_initializer='zeros')`` on the last axis."""
    _weight_order = (("params", "kernel"), ("params", "bias"))

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ConfigError(f"Dense '{self.name}': units expected a positive int, got {units!r}")
        self.units, self.use_bias = units, use_bias
        self.activation = _act.get(activation)
        self.kernel_initializer = _init.get(kernel_initializer)
        self.bias_initializer = _init.get(bias_initializer)

    def _make_module(self):
        return KerasOp(core.Dense(self.units, use_bias=self.use_bias,
                                  kernel_init=self.kernel_initializer,
                                  bias_init=self.bias_initializer),
                       None if self.activation is _act.linear else self.activation)

    def get_config(self):
        return {"name": self.name, "units": self.units,
                "activation": _act.serialize(self.activation), "use_bias": self.use_bias}


class _Conv(Layer):
    _rank = 2
    _weight_order = (("params", "kernel"), ("params", "bias"))

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        cls, n = f"{type(self).__name__} '{self.name}'", self._rank
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ConfigError(f"{cls}: filters expected a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = _tuple(cls, "kernel_size", kernel_size, n)
        self.strides = _tuple(cls, "strides", strides, n)
        self.dilation_rate = _tuple(cls, "dilation_rate", dilation_rate, n)
        self.padding = _padding(cls, padding, ("causal",) if n == 1 else ())
        self.channels_first = _data_format(cls, data_format)
        if self.padding == "causal" and self.channels_first:
            raise ConfigError(f"{cls}: padding='causal' expected data_format='channels_last'")
        if not isinstance(groups, int) or groups <= 0 or filters % groups:
            raise ConfigError(f"{cls}: groups expected a positive int dividing filters={filters}, "
                              f"got {groups!r}")
        self.groups, self.use_bias = groups, use_bias
        self.activation = _act.get(activation)
        self.kernel_initializer = _init.get(kernel_initializer)
        self.bias_initializer = _init.get(bias_initializer)

    def _make_module(self):
        padding = self.padding
        if padding == "causal":
            padding = (((self.kernel_size[0] - 1) * self.dilation_rate[0], 0),)
        return KerasOp(core.Conv(self.filters, self.kernel_size, strides=self.strides,
                                 padding=padding, dilation=self.dilation_rate, groups=self.groups,
                                 use_bias=self.use_bias, kernel_init=self.kernel_initializer,
                                 bias_init=self.bias_initializer),
                       None if self.activation is _act.linear else self.activation,
                       channels_first=self.channels_first)

    def get_config(self):
        return {"name": self.name, "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "activation": _act.serialize(self.activation)}


class Conv1D(_Conv):
    """1-d convolution over (batch, steps, channels); ``padding`` 'valid', 'same' or 'causal'."""
    _rank = 1


class Conv2D(_Conv):
    """2-d convolution over (batch, rows, cols, channels) with an HWIO ``kernel``."""
    _rank = 2


class BatchNormalization(Layer):
    """Keras batch normalisation: ``momentum=0.99`` (weight of the old moving value),
    ``epsilon=1e-3``; batch statistics in ``fit``, moving ones in ``evaluate``/``predict``."""
    _weight_order = (("params", "scale"), ("params", "bias"), ("state", "mean"),
                     ("state", "var"))

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ConfigError(f"BatchNormalization '{self.name}': axis expected an int, got "
                              f"{axis!r}")
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.center, self.scale = center, scale

    def _make_module(self):
        return KerasOp(core.BatchNorm(axis=self.axis, decay=self.momentum, epsilon=self.epsilon,
                                      use_scale=self.scale, use_bias=self.center))


class LayerNormalization(Layer):
    """Normalises over the last axis (or the trailing axes given), ``epsilon=1e-3``."""
    _weight_order = (("params", "scale"), ("params", "bias"))

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        neg = sorted(a for a in axes if a < 0)
        if not axes or len(neg) != len(axes) or neg != list(range(-len(axes), 0)):
            raise ConfigError(f"LayerNormalization '{self.name}': axis expected the trailing "
                              f"axes as negative ints (-1, or [-2, -1]...), got {axis!r}")
        self.axis, self.epsilon, self.center, self.scale = axis, epsilon, center, scale
        self._ndims = len(axes)

    def _make_module(self):
        return KerasOp(core.LayerNorm(ndims=self._ndims, epsilon=self.epsilon,
                                      use_scale=self.scale, use_bias=self.center))


class Embedding(Layer):
    """``Embedding(input_dim, output_dim)``: integer ids -> rows of the ``embeddings`` table
    (``uniform(-0.05, 0.05)`` by default); float ids are cast to int32 as Keras does."""
    _weight_order = (("params", "embedding"),)

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        for what, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"Embedding '{self.name}': {what} expected a positive int, got "
                                  f"{v!r}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = _init.get(embeddings_initializer)

    def _make_module(self):
        return _IdsEmbedding(self.input_dim, self.output_dim,
                             embedding_init=self.embeddings_initializer)


@dataclasses.dataclass(frozen=True, repr=False)
class _IdsEmbedding(core.Embedding):
    """The core Embedding (same params), casting non-integer ids to int32 as Keras does."""

    @property
    def name(self) -> str:
        return "embedding"

    def apply(self, params, state, x, *, key=None, train=False):
        if not jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.int32)
        return core.Embedding.apply(self, params, state, x, key=key, train=train)


# ------------------------------------------------------------------ pooling
class _Pool(Layer):
    _rank = 2
    _kind = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        cls, n = f"{type(self).__name__} '{self.name}'", self._rank
        self.pool_size = _tuple(cls, "pool_size", pool_size, n)
        self.strides = self.pool_size if strides is None else _tuple(cls, "strides", strides, n)
        self.padding = _padding(cls, padding)
        self.channels_first = _data_format(cls, data_format)

    def _make_module(self):
        cls = core.MaxPool if self._kind == "max" else core.AvgPool
        return KerasOp(cls(self.pool_size, strides=self.strides, padding=self.padding),
                       float_input=self._kind == "avg", channels_first=self.channels_first)


class MaxPooling1D(_Pool):
    _rank, _kind = 1, "max"


class MaxPooling2D(_Pool):
    _rank, _kind = 2, "max"


class AveragePooling1D(_Pool):
    """Average pooling; with ``padding='same'`` the padded cells are not counted (as Keras)."""
    _rank, _kind = 1, "avg"


class AveragePooling2D(_Pool):
    """Average pooling; with ``padding='same'`` the padded cells are not counted (as Keras)."""
    _rank, _kind = 2, "avg"


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, \
    AveragePooling2D


class _GlobalPool(Layer):
    _rank = 2
    _kind = "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.channels_first = _data_format(f"{type(self).__name__} '{self.name}'", data_format)
        self.keepdims = keepdims

    def _make_module(self):
        cls = core.GlobalAvgPool if self._kind == "avg" else core.GlobalMaxPool
        return KerasOp(_RankChecked(cls(keepdims=self.keepdims), self._rank + 2),
                       float_input=self._kind == "avg", channels_first=self.channels_first)


@dataclasses.dataclass(frozen=True, repr=False)
class _RankChecked(Module):
    inner: Any
    rank: int

    @property
    def name(self):
        return self.inner.name

    def init(self, key, spec):
        return self.inner.init(key, spec)

    def apply(self, params, state, x, *, key=None, train=False):
        if x.ndim != self.rank:
            raise ShapeError(format_error(
                type(self.inner).__name__, f"input rank expected {self.rank}, got {x.ndim} "
                                           f"(input {tuple(x.shape)})"))
        return self.inner.apply(params, state, x, key=key, train=train)


class GlobalAveragePooling1D(_GlobalPool):
    _rank, _kind = 1, "avg"


class GlobalAveragePooling2D(_GlobalPool):
    _rank, _kind = 2, "avg"


class GlobalMaxPooling1D(_GlobalPool):
    _rank, _kind = 1, "max"


class GlobalMaxPooling2D(_GlobalPool):
    _rank, _kind = 2, "max"


# ------------------------------------------------------------------ shape and misc layers
class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.channels_first = _data_format(f"Flatten '{self.name}'", data_format)

    def _make_module(self):
        return KerasOp(core.Flatten(), float_input=False, channels_first=self.channels_first)


class Reshape(Layer):
    """Reshape each example to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or not all(
                isinstance(d, int) and (d > 0 or d == -1) for d in self.target_shape):
            raise ConfigError(f"Reshape '{self.name}': target_shape expected positive ints and "
                              f"at most one -1, got {self.target_shape}")

    def _make_module(self):
        return core.Reshape(self.target_shape)


class Dropout(Layer):
    """Zeroes inputs with probability ``rate`` in training (``fit``) and scales the rest by
    ``1 / (1 - rate)``; the identity in ``evaluate``/``predict``."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"Dropout '{self.name}': rate expected a number in [0, 1), got "
                              f"{rate!r}")
        self.rate = float(rate)

    def _make_module(self):
        return core.Dropout(self.rate)


class Activation(Layer):
    """Applies an activation given by name (``'relu'``) or function."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _act.get(activation)

    def _make_module(self):
        return Apply(self.activation, _act.serialize(self.activation))


class ReLU(Layer):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ConfigError(f"ReLU '{self.name}': max_value expected >= 0, got {max_value!r}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def _make_module(self):
        mv, ns, th = self.max_value, self.negative_slope, self.threshold
        return Apply(lambda x: _act.relu(x, ns, mv, th), "re_lu")


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def _make_module(self):
        ns = self.negative_slope
        return Apply(lambda x: jax.nn.leaky_relu(x, ns), "leaky_re_lu")


class ELU(Layer):
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def _make_module(self):
        a = self.alpha
        return Apply(lambda x: jax.nn.elu(x, a), "elu")


class Softmax(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def _make_module(self):
        axis = self.axis
        return Apply(lambda x: jax.nn.softmax(x, axis=axis), "softmax")


class Rescaling(Layer):
    """``x * scale + offset`` in float32 (e.g. ``Rescaling(1 / 255)`` on uint8 images)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def _make_module(self):
        s, o = self.scale, self.offset
        return Apply(lambda x: x * s + o, "rescaling", float_input=True)


class Lambda(Layer):
    """Wraps a function of the input (traced into the compiled step; no weights)."""

    def __init__(self, function, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise ConfigError(f"Lambda '{self.name}': function expected a callable, got "
                              f"{function!r}")
        self.function = function

    def _make_module(self):
        return Apply(self.function, "lambda")


class _Merge(Layer):
    _op = "add"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def _make_module(self):
        return Merge(self._op)


class Add(_Merge):
    _op = "add"


class Subtract(_Merge):
    _op = "subtract"


class Multiply(_Merge):
    _op = "multiply"


class Average(_Merge):
    _op = "average"


class Maximum(_Merge):
    _op = "maximum"


class Minimum(_Merge):
    _op = "minimum"


class Concatenate(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def _make_module(self):
        return Merge("concatenate", self.axis)


# ------------------------------------------------------------------ inputs
def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """A symbolic input: ``keras.Input(shape=(28, 28, 1))`` (the batch axis left out)."""
    if batch_shape is not None:
        shape, batch_size = tuple(batch_shape)[1:], tuple(batch_shape)[0]
    if shape is None:
        raise ConfigError("Input: shape expected a tuple of sizes (without the batch axis), got "
                          "None")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d is None or (isinstance(d, int) and d <= 0) for d in shape):
        raise ConfigError(f"Input: shape expected known positive sizes (variable sizes are not "
                          f"supported; the batch axis is left out), got {shape}")
    return KerasTensor((batch_size,) + shape, dtype or "float32",
                       name=name or unique_name("input_layer"))


class InputLayer:
    """``InputLayer(shape=...)`` (or ``input_shape=``) as the first entry of a Sequential."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None,
                 batch_shape=None):
        self.output = Input(shape if shape is not None else input_shape, batch_size, dtype,
                            name, batch_shape)
        self.name = self.output.name
