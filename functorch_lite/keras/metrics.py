"""Keras metrics: per-example functions ``fn(y_true, y_pred)`` and ``Metric`` classes.

In ``fit``/``evaluate`` a metric is a per-example function averaged over the epoch (or the
evaluated data), computed inside the compiled step.  The classes also work on their own with
Keras's stateful API (``update_state`` / ``result`` / ``reset_state``).  ``'accuracy'`` (or
``'acc'``) in ``compile`` resolves as Keras 3 does, from the shapes of the targets and the
model outputs: binary accuracy when the model has one output unit (or the loss is a binary
cross-entropy), sparse categorical accuracy when the targets are class indices, categorical
accuracy when they are one-hot; the logs keep the name given (``'accuracy'``).
"""
from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError, ShapeError, unknown_option
from . import losses as _losses

__all__ = ["Metric", "MeanMetricWrapper", "SparseCategoricalAccuracy", "CategoricalAccuracy",
           "BinaryAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "MeanSquaredError", "MeanAbsoluteError", "sparse_categorical_accuracy",
           "categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "get", "resolve", "METRICS"]


def _sparse_labels(fn, y_true, y_pred):
    yt, yp = jnp.shape(y_true), jnp.shape(y_pred)
    if len(yt) == len(yp) and yt and yt[-1] == 1 and yp[-1] != 1:
        y_true = jnp.squeeze(y_true, -1)
    if tuple(jnp.shape(y_true)) != tuple(yp[:-1]):
        raise ShapeError(f"{fn}: y_true expected class indices of shape {tuple(yp[:-1])}, got "
                         f"{tuple(yt)} (y_pred {tuple(yp)})")
    return jnp.asarray(y_true).astype(jnp.int32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred) == y_true`` (class indices), per example."""
    y_true = _sparse_labels("sparse_categorical_accuracy", y_true, y_pred)
    return (jnp.argmax(y_pred, axis=-1) == y_true).astype(jnp.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` (one-hot targets), per example."""
    if jnp.shape(y_true) != jnp.shape(y_pred):
        raise ShapeError(f"categorical_accuracy: y_true expected one-hot of shape "
                         f"{tuple(jnp.shape(y_pred))}, got {tuple(jnp.shape(y_true))}")
    return (jnp.argmax(y_pred, axis=-1) == jnp.argmax(y_true, axis=-1)).astype(jnp.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Element-wise ``(y_pred > threshold) == y_true`` (as Keras 3; the metric averages)."""
    y_true = _losses.match_rank(y_true, y_pred)
    if jnp.shape(y_true) != jnp.shape(y_pred):
        raise ShapeError(f"binary_accuracy: y_true shape {tuple(jnp.shape(y_true))} does not "
                         f"match y_pred shape {tuple(jnp.shape(y_pred))}")
    hit = (y_pred > threshold).astype(jnp.float32) == jnp.asarray(y_true, jnp.float32)
    return hit.astype(jnp.float32)


def _in_top_k(y_pred, labels, k):
    score = jnp.take_along_axis(y_pred, labels[..., None], axis=-1)
    return (jnp.sum(y_pred > score, axis=-1) < k).astype(jnp.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    if jnp.shape(y_true) != jnp.shape(y_pred):
        raise ShapeError(f"top_k_categorical_accuracy: y_true expected one-hot of shape "
                         f"{tuple(jnp.shape(y_pred))}, got {tuple(jnp.shape(y_true))}")
    return _in_top_k(y_pred, jnp.argmax(y_true, axis=-1), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(y_pred, _sparse_labels("sparse_top_k_categorical_accuracy", y_true, y_pred),
                     k)


class Metric:
    """Base class: a per-example function and the stateful Keras API on the host."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype
        self.reset_state()

    def values(self, y_true, y_pred):
        raise NotImplementedError

    def reset_state(self):
        self._total, self._count = 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        v = np.asarray(self.values(jnp.asarray(y_true), jnp.asarray(y_pred)), np.float64)
        w = np.ones_like(v) if sample_weight is None else np.broadcast_to(
            np.asarray(sample_weight, np.float64).reshape(v.shape[:1] + (1,) * (v.ndim - 1)),
            v.shape)
        self._total += float(np.sum(v * w))
        self._count += float(np.sum(w))

    def result(self):
        return jnp.asarray(self._total / self._count if self._count else 0.0, jnp.float32)

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def core(self):
        """The metric as a core function ``fn(predictions, targets, *, reduction)`` with one
        value per example for ``reduction='none'``."""
        def fn(predictions, targets, *, reduction="mean"):
            per = self.values(targets, predictions)
            if per.ndim > 1:
                per = jnp.mean(per.reshape(per.shape[0], -1), axis=1)
            per = per.astype(jnp.float32)
            if reduction == "none":
                return per
            return jnp.sum(per) if reduction == "sum" else jnp.mean(per)
        fn.__name__ = self.name
        return fn

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class MeanMetricWrapper(Metric):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over all examples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self.fn, self.fn_kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype)

    def values(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_kwargs)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(_losses.mean_absolute_error, name, dtype)


METRICS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": _losses.mean_squared_error, "mse": _losses.mean_squared_error,
    "mean_absolute_error": _losses.mean_absolute_error, "mae": _losses.mean_absolute_error,
    "mean_absolute_percentage_error": _losses.mean_absolute_percentage_error,
    "mape": _losses.mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": _losses.mean_squared_logarithmic_error,
    "msle": _losses.mean_squared_logarithmic_error,
    "kl_divergence": _losses.kl_divergence, "kld": _losses.kl_divergence,
    "poisson": _losses.poisson, "hinge": _losses.hinge, "squared_hinge": _losses.squared_hinge,
    "binary_crossentropy": _losses.binary_crossentropy,
    "categorical_crossentropy": _losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": _losses.sparse_categorical_crossentropy,
}
_CLASSES = {c.__name__: c for c in (SparseCategoricalAccuracy, CategoricalAccuracy,
                                    BinaryAccuracy, TopKCategoricalAccuracy,
                                    SparseTopKCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError)}
_ACCURACY = ("accuracy", "acc")


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def get(identifier) -> Metric:
    """A Metric from a name (not ``'accuracy'``: see :func:`resolve`), a Metric, or a function
    ``fn(y_true, y_pred)`` returning per-example values."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        fn = METRICS.get(identifier.lower())
        if fn is None:
            raise unknown_option("metric", identifier, list(METRICS) + list(_ACCURACY))
        return MeanMetricWrapper(fn, name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ConfigError(f"metric: expected a name, a keras Metric or a function (y_true, y_pred), "
                      f"got {identifier!r}")


def resolve(identifier, loss, y_shape, output_shape) -> Metric:
    """A compile ``metrics=`` entry as a Metric; ``'accuracy'``/``'acc'`` picks binary, sparse
    or categorical accuracy from the shapes of ``y`` and the model output (Keras 3's rule;
    binary also when the loss is a binary cross-entropy)."""
    if not (isinstance(identifier, str) and identifier.lower() in _ACCURACY):
        return get(identifier)
    y_shape, output_shape = tuple(y_shape), tuple(output_shape)
    binary = output_shape[-1] == 1 or isinstance(loss, _losses.BinaryCrossentropy)
    sparse = len(y_shape) < len(output_shape) or (y_shape[-1] == 1 and output_shape[-1] > 1)
    if binary:
        return BinaryAccuracy(name=identifier)
    if sparse:
        return SparseCategoricalAccuracy(name=identifier)
    return CategoricalAccuracy(name=identifier)
