"""Metrics: pure ``metric(predictions, targets, *, reduction='mean', ...)`` returning float32.

``reduction='none'`` gives the per-example 0/1 correctness, ``'sum'`` the number correct.
Shapes are checked at trace time; everything works under ``jax.jit``.
"""
from __future__ import annotations

import jax.numpy as jnp

from .core.errors import ConfigError, ShapeError, format_error, unknown_option
from .losses import _check_reduction, _classes_layout, _reduce, _snake

__all__ = ["accuracy", "top_k_accuracy", "binary_accuracy", "get"]


def accuracy(predictions, labels, *, axis=-1, reduction="mean"):
    """Fraction of examples whose arg-max class along ``axis`` equals the label.

    ``labels`` are class indices (shape ``predictions.shape`` without ``axis``) or one-hot
    (same shape as ``predictions``; its arg-max is the class).  Works on logits or probabilities.
    """
    _check_reduction(reduction)
    layout, axis = _classes_layout("accuracy", predictions, labels, axis)
    if layout == "dense":
        labels = jnp.argmax(labels, axis=axis)
    correct = jnp.argmax(predictions, axis=axis) == labels
    return _reduce(correct.astype(jnp.float32), reduction)


def top_k_accuracy(predictions, labels, k=5, *, axis=-1, reduction="mean"):
    """Fraction of examples whose label is among the ``k`` highest scores along ``axis``.

    Counted as "fewer than ``k`` classes score strictly higher than the label" (ties resolve
    in the label's favour, as ``tf.math.in_top_k``).  One-hot labels are accepted.
    """
    _check_reduction(reduction)
    layout, axis = _classes_layout("top_k_accuracy", predictions, labels, axis)
    num_classes = jnp.shape(predictions)[axis]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_classes:
        raise ConfigError(f"k: expected an int in [1, {num_classes}] (the number of classes), "
                          f"got {k!r}")
    if layout == "dense":
        labels = jnp.argmax(labels, axis=axis)
    label_score = jnp.take_along_axis(predictions, jnp.expand_dims(labels, axis), axis=axis)
    higher = jnp.sum(predictions > label_score, axis=axis)
    return _reduce((higher < k).astype(jnp.float32), reduction)


def binary_accuracy(predictions, targets, threshold=0.5, *, reduction="mean"):
    """Fraction of elements where ``predictions > threshold`` agrees with ``targets > 0.5``.

    ``reduction='none'`` is element-wise (Keras averages over the last axis; the mean over
    everything is the same).  Pass ``threshold=0.0`` for logits.
    """
    _check_reduction(reduction)
    ps, ts = tuple(jnp.shape(predictions)), tuple(jnp.shape(targets))
    if ps != ts:
        raise ShapeError(format_error(
            "binary_accuracy", f"targets shape expected {ps} (same as predictions), got {ts}"))
    correct = (predictions > threshold) == (jnp.asarray(targets) > 0.5)
    return _reduce(correct.astype(jnp.float32), reduction)


_METRICS = {
    "accuracy": accuracy, "acc": accuracy,
    "categorical_accuracy": accuracy, "sparse_categorical_accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy, "top_k": top_k_accuracy,
    "top_k_categorical_accuracy": top_k_accuracy,
    "sparse_top_k_categorical_accuracy": top_k_accuracy,
    "binary_accuracy": binary_accuracy,
}


def get(name_or_fn):
    """A metric function from its name (``'accuracy'``, ``'acc'``, ``'top_k'``...) or itself."""
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise ConfigError(f"metric: expected a name or a callable, got {name_or_fn!r}")
    key = _snake(name_or_fn)
    if key not in _METRICS:
        raise unknown_option("metric", name_or_fn, _METRICS)
    return _METRICS[key]
