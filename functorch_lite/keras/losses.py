"""Keras losses: functions ``fn(y_true, y_pred) -> per-example values`` and ``Loss`` classes.

Argument order and semantics follow ``keras.losses`` (Keras 3): ``y_true`` first; the
cross-entropies from probabilities clip to ``[1e-7, 1 - 1e-7]`` unless ``from_logits=True``;
element-wise losses (``mse``, ``mae``, ``huber``...) average over the last axis, giving one
value per example; ``y_true`` of shape ``(N,)`` against ``y_pred`` ``(N, 1)`` is expanded (and
the reverse squeezed), as Keras does.  The cross-entropies run on the functional core's
implementations (:mod:`functorch_lite.losses`).

``Loss.__call__(y_true, y_pred, sample_weight=None)`` reduces like Keras
(``'sum_over_batch_size'``: the weighted sum divided by the number of values).  ``compile``
uses :meth:`Loss.core`, the same loss in the core's ``(predictions, targets, reduction=)``
convention, with one value per example for ``reduction='none'``.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from .. import losses as _core
from ..core.errors import ConfigError, DataError, ShapeError, unknown_option

__all__ = ["Loss", "LossFunctionWrapper", "SparseCategoricalCrossentropy",
           "CategoricalCrossentropy", "BinaryCrossentropy", "MeanSquaredError",
           "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "Huber", "LogCosh", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
           "CosineSimilarity", "sparse_categorical_crossentropy", "categorical_crossentropy",
           "binary_crossentropy", "mean_squared_error", "mean_absolute_error",
           "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "huber",
           "log_cosh", "kl_divergence", "poisson", "hinge", "squared_hinge",
           "cosine_similarity", "mse", "mae", "mape", "msle", "kld", "get", "LOSSES"]

EPSILON = _core.EPSILON
_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def match_rank(y_true, y_pred):
    """Keras's ``squeeze_or_expand_to_same_rank``: (N,) vs (N, 1) made the same rank."""
    yt, yp = jnp.ndim(y_true), jnp.ndim(y_pred)
    if yt == yp - 1 and jnp.shape(y_pred)[-1] == 1:
        y_true = jnp.expand_dims(y_true, -1)
    elif yt == yp + 1 and jnp.shape(y_true)[-1] == 1:
        y_true = jnp.squeeze(y_true, -1)
    return y_true


def _same(fn, y_true, y_pred):
    y_true = match_rank(y_true, y_pred)
    if jnp.shape(y_true) != jnp.shape(y_pred):
        raise ShapeError(f"{fn}: y_true shape {tuple(jnp.shape(y_true))} does not match y_pred "
                         f"shape {tuple(jnp.shape(y_pred))}\nHint: the targets need one value "
                         f"per model output")
    return _float(y_true).astype(jnp.result_type(y_pred)), y_pred


# ------------------------------------------------------------------ per-example functions
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Integer class indices ``y_true`` (shape of ``y_pred`` without ``axis``, or with a
    trailing 1); float indices are cast to int as Keras does.  Computed, as Keras 3 on JAX does,
    through a one-hot target (a gather's gradient is a scatter, slow on XLA:CPU)."""
    y_true = jnp.asarray(y_true)
    if jnp.issubdtype(y_true.dtype, jnp.floating) and y_true.shape != jnp.shape(y_pred):
        y_true = y_true.astype(jnp.int32)
    # the core function's checks (shapes, dtype) at trace time, without computing anything
    jax.eval_shape(lambda p, t: _core.sparse_categorical_crossentropy(
        p, t, from_logits=from_logits, axis=axis, reduction="none"), y_pred, y_true)
    ps = jnp.shape(y_pred)
    if y_true.ndim == len(ps) and y_true.shape[-1] == 1 and ps[-1] != 1:
        y_true = jnp.squeeze(y_true, -1)
    ax = axis % len(ps)
    onehot = jax.nn.one_hot(y_true, ps[ax], dtype=jnp.result_type(y_pred), axis=ax)
    return _core.categorical_crossentropy(y_pred, onehot, from_logits=from_logits, axis=axis,
                                          reduction="none")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return _core.categorical_crossentropy(y_pred, y_true, from_logits=from_logits,
                                          label_smoothing=label_smoothing, axis=axis,
                                          reduction="none")


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _same("binary_crossentropy", y_true, y_pred)
    return _core.binary_crossentropy(y_pred, y_true, from_logits=from_logits,
                                     label_smoothing=label_smoothing, axis=axis,
                                     reduction="none")


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same("mean_squared_error", y_true, y_pred)
    return jnp.mean(jnp.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _same("mean_absolute_error", y_true, y_pred)
    return jnp.mean(jnp.abs(y_pred - y_true), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _same("mean_absolute_percentage_error", y_true, y_pred)
    diff = jnp.abs((y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON))
    return 100.0 * jnp.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _same("mean_squared_logarithmic_error", y_true, y_pred)
    first = jnp.log(jnp.maximum(y_pred, EPSILON) + 1.0)
    second = jnp.log(jnp.maximum(y_true, EPSILON) + 1.0)
    return jnp.mean(jnp.square(first - second), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _same("huber", y_true, y_pred)
    err = y_pred - y_true
    a = jnp.abs(err)
    return jnp.mean(jnp.where(a <= delta, 0.5 * jnp.square(err), delta * a - 0.5 * delta ** 2),
                    axis=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _same("log_cosh", y_true, y_pred)
    d = y_pred - y_true
    return jnp.mean(d + jax.nn.softplus(-2.0 * d) - jnp.log(2.0), axis=-1)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _same("kl_divergence", y_true, y_pred)
    t, p = jnp.clip(y_true, EPSILON, 1.0), jnp.clip(y_pred, EPSILON, 1.0)
    return jnp.sum(t * jnp.log(t / p), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _same("poisson", y_true, y_pred)
    return jnp.mean(y_pred - y_true * jnp.log(y_pred + EPSILON), axis=-1)


def _hinge_labels(y_true):
    """Keras converts {0, 1} labels to {-1, 1}; other labels are used as they are."""
    binary = jnp.all((y_true == 0) | (y_true == 1))
    return jnp.where(binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    y_true, y_pred = _same("hinge", y_true, y_pred)
    return jnp.mean(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _same("squared_hinge", y_true, y_pred)
    return jnp.mean(jnp.square(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)), axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _same("cosine_similarity", y_true, y_pred)

    def l2n(v):
        return v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, axis=axis, keepdims=True), 1e-12))
    return -jnp.sum(l2n(y_true) * l2n(y_pred), axis=axis)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh


# ------------------------------------------------------------------ classes
class Loss:
    """Base class: subclasses define ``call(y_true, y_pred) -> per-example values``."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise unknown_option("reduction", reduction, [r for r in _REDUCTIONS if r])
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, y_pred)
        if sample_weight is not None:
            w = _float(sample_weight)
            while w.ndim < values.ndim:
                w = w[..., None]
            values = values * w
        if self.reduction in ("none", None):
            return values
        total = jnp.sum(values)
        return total if self.reduction == "sum" else total / max(values.size, 1)

    def core(self):
        """This loss as a core loss function ``fn(predictions, targets, *, reduction)``;
        ``reduction='none'`` gives one value per example (extra axes averaged)."""
        def fn(predictions, targets, *, reduction="mean"):
            per = self.call(targets, predictions)
            if per.ndim > 1:
                per = jnp.mean(per.reshape(per.shape[0], -1), axis=1)
            elif per.ndim == 0:
                per = jnp.broadcast_to(per, (jnp.shape(predictions)[0],))
            if self.reduction == "sum":
                per = per * per.shape[0]
            if reduction == "none":
                return per
            return jnp.sum(per) if reduction == "sum" else jnp.mean(per)
        fn.__name__ = f"keras_{self.name}"
        return fn

    def check_targets(self, y, output_shape):
        """Host-side check of the whole ``y`` array against the model's output shape, before
        anything is compiled; raises ShapeError/ValueError naming the loss and the fix."""

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class LossFunctionWrapper(Loss):
    """A ``fn(y_true, y_pred, **kwargs)`` returning per-example values as a Loss."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name or getattr(fn, "__name__", "loss"), reduction)
        self.fn, self.fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_kwargs)


def _n_classes_str(shape):
    return "(N, " + ", ".join(str(d) for d in shape[1:]) + ")" if len(shape) > 1 else "(N,)"


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(sparse_categorical_crossentropy, name, reduction,
                         from_logits=from_logits)
        self.from_logits = from_logits

    def check_targets(self, y, output_shape):
        out = tuple(output_shape)
        classes = out[-1]
        want = out[1:-1]
        ys = tuple(y.shape[1:])
        if ys == want or ys == want + (1,):
            if not np.issubdtype(y.dtype, np.number):
                raise ShapeError(f"loss '{self.name}': y expected integer class indices, got "
                                 f"dtype {y.dtype}")
            _check_class_range(self.name, y, classes)
            return
        if ys == out[1:] and classes > 1:
            raise ShapeError(
                f"loss '{self.name}': y expected integer class indices of shape "
                f"{_n_classes_str((None,) + want)}, got shape {tuple(y.shape)}, which looks "
                f"one-hot (the model outputs {_n_classes_str(out)})\nHint: use "
                f"loss='categorical_crossentropy' for one-hot labels, or pass y.argmax(axis=-1)")
        raise ShapeError(
            f"loss '{self.name}': y expected integer class indices of shape "
            f"{_n_classes_str((None,) + want)} for model outputs {_n_classes_str(out)}, got "
            f"shape {tuple(y.shape)}")


def _check_class_range(name, y, classes):
    y = np.asarray(y)
    if y.size == 0:
        return
    if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
        idx = tuple(int(i) for i in np.argwhere(y != np.round(y))[0])
        raise ShapeError(f"loss '{name}': y expected integer class indices, got {y[idx].item()!r} at "
                         f"index {idx}")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"loss '{name}': y expected class indices in [0, {classes}) (the model "
                        f"outputs {classes} classes), got {y[idx].item()!r} at index {idx} "
                        f"({int(bad.sum())} out of range)")


class CategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__(categorical_crossentropy, name, reduction, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing = from_logits, label_smoothing

    def check_targets(self, y, output_shape):
        out = tuple(output_shape)
        ys = tuple(y.shape[1:])
        if ys == out[1:]:
            return
        if out[-1] > 1 and (ys == out[1:-1] or ys == out[1:-1] + (1,)):
            raise ShapeError(
                f"loss '{self.name}': y expected one-hot targets of shape {_n_classes_str(out)}, "
                f"got shape {tuple(y.shape)}, which looks like integer class indices\nHint: use "
                f"loss='sparse_categorical_crossentropy' for class indices, or "
                f"keras.utils.to_categorical(y, {out[-1]})")
        raise ShapeError(f"loss '{self.name}': y expected shape {_n_classes_str(out)} (one-hot, "
                         f"like the model outputs), got shape {tuple(y.shape)}")


class _Elementwise(LossFunctionWrapper):
    def check_targets(self, y, output_shape):
        out = tuple(output_shape)
        ys = tuple(y.shape[1:])
        if ys == out[1:] or (ys == out[1:-1] and out[-1] == 1) or ys == out[1:] + (1,):
            return
        raise ShapeError(f"loss '{self.name}': y expected one target per model output, shape "
                         f"{_n_classes_str(out)}, got shape {tuple(y.shape)}")


class BinaryCrossentropy(_Elementwise):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__(binary_crossentropy, name, reduction, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing = from_logits, label_smoothing


def _simple(fn, default_name, doc):
    class _L(_Elementwise):
        def __init__(self, reduction="sum_over_batch_size", name=default_name):
            super().__init__(fn, name, reduction)
    _L.__doc__ = doc
    return _L


MeanSquaredError = _simple(mean_squared_error, "mean_squared_error", "Mean of squared errors.")
MeanAbsoluteError = _simple(mean_absolute_error, "mean_absolute_error", "Mean absolute error.")
MeanAbsolutePercentageError = _simple(mean_absolute_percentage_error,
                                      "mean_absolute_percentage_error", "100 * mean |err / y|.")
MeanSquaredLogarithmicError = _simple(mean_squared_logarithmic_error,
                                      "mean_squared_logarithmic_error", "MSE of log(1 + y).")
LogCosh = _simple(log_cosh, "log_cosh", "Mean of log(cosh(err)).")
KLDivergence = _simple(kl_divergence, "kl_divergence", "sum y log(y / p).")
Poisson = _simple(poisson, "poisson", "mean p - y log p.")
Hinge = _simple(hinge, "hinge", "mean max(1 - y p, 0), {0,1} labels mapped to {-1,1}.")
SquaredHinge = _simple(squared_hinge, "squared_hinge", "mean max(1 - y p, 0)^2.")
for _cls, _n in ((MeanSquaredError, "MeanSquaredError"), (MeanAbsoluteError, "MeanAbsoluteError"),
                 (MeanAbsolutePercentageError, "MeanAbsolutePercentageError"),
                 (MeanSquaredLogarithmicError, "MeanSquaredLogarithmicError"),
                 (LogCosh, "LogCosh"), (KLDivergence, "KLDivergence"), (Poisson, "Poisson"),
                 (Hinge, "Hinge"), (SquaredHinge, "SquaredHinge")):
    _cls.__name__ = _cls.__qualname__ = _n


class Huber(_Elementwise):
    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(huber, name, reduction, delta=delta)
        self.delta = delta


class CosineSimilarity(_Elementwise):
    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity"):
        super().__init__(cosine_similarity, name, reduction, axis=axis)


LOSSES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "huber": Huber, "huber_loss": Huber, "log_cosh": LogCosh, "logcosh": LogCosh,
    "kl_divergence": KLDivergence, "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence, "poisson": Poisson, "hinge": Hinge,
    "squared_hinge": SquaredHinge, "cosine_similarity": CosineSimilarity,
}
_CLASS_NAMES = {_snake_name: cls for cls in set(LOSSES.values())
                for _snake_name in [cls.__name__]}


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def get(identifier) -> Loss:
    """A Loss from a name (``'sparse_categorical_crossentropy'``, ``'mse'``,
    ``'SparseCategoricalCrossentropy'``), a Loss, or a function ``fn(y_true, y_pred)``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASS_NAMES.get(identifier) or LOSSES.get(identifier.lower())
        if cls is None:
            raise unknown_option("loss", identifier, LOSSES)
        return cls(name=identifier) if identifier in LOSSES else cls()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ConfigError(f"loss: expected a name, a keras Loss or a function (y_true, y_pred), got "
                      f"{identifier!r}")
