"""Loss functions: pure ``loss(predictions, targets, *, reduction='mean', ...)``.

Predictions come first, targets second (the torch order; the Keras adapter swaps Keras's
``(y_true, y_pred)``).  ``reduction`` is ``'mean'`` | ``'sum'`` | ``'none'``.  Shapes are checked
in Python at trace time, so every function works under ``jax.jit``; label *values* cannot be
checked under ``jit``: call :func:`check_labels` on the host.

Two families:

- torch-named (``cross_entropy``, ``nll_loss``, ``mse_loss``, ``huber_loss``, ``smooth_l1_loss``,
  ``binary_cross_entropy(_with_logits)``) follow ``torch.nn.functional``; ``reduction='none'``
  is per element (per example for the class-axis losses).  ``binary_cross_entropy`` clamps the
  logs at -100 like torch.
- Keras-named (``categorical_crossentropy``, ``sparse_categorical_crossentropy``,
  ``binary_crossentropy``) follow ``keras.losses``: probabilities are renormalised to sum 1 and
  clipped to ``[1e-7, 1 - 1e-7]``; ``binary_crossentropy`` averages over the last axis, so
  ``reduction='none'`` gives one value per example.  ``mean_squared_error`` and
  ``mean_absolute_error`` are aliases of the element-wise torch functions.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from .core.errors import ConfigError, DataError, ShapeError, format_error, unknown_option

__all__ = [
    "softmax_cross_entropy", "cross_entropy", "nll_loss",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mse", "mse_loss", "mean_squared_error", "mae", "l1_loss", "mean_absolute_error",
    "huber", "huber_loss", "smooth_l1", "smooth_l1_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "binary_crossentropy",
    "check_labels", "get", "EPSILON",
]

#: Keras's ``backend.epsilon()``: the clip used by the Keras-named losses on probabilities.
EPSILON = 1e-7

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    if reduction == "none":
        return loss
    raise unknown_option("reduction", reduction, _REDUCTIONS)


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise unknown_option("reduction", reduction, _REDUCTIONS)


def _is_int(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.integer)


def _shape_error(fn, what, hint=None):
    return ShapeError(format_error(fn, what, hint))


def _axis(fn, x, axis):
    ndim = jnp.ndim(x)
    if not -ndim <= axis < ndim:
        raise _shape_error(fn, f"axis expected in [{-ndim}, {ndim}), got {axis} "
                               f"(predictions {tuple(jnp.shape(x))})")
    return axis % ndim


def _same_shape(fn, predictions, targets):
    ps, ts = tuple(jnp.shape(predictions)), tuple(jnp.shape(targets))
    if ps != ts:
        raise _shape_error(fn, f"targets shape expected {ps} (same as predictions), got {ts}",
                           "reshape the targets (e.g. (N,) vs (N, 1)) to the predictions' shape")


def _check_smoothing(label_smoothing):
    if not isinstance(label_smoothing, jax.Array) and not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing: expected a float in [0, 1], got {label_smoothing!r}")


def _drop(shape, axis):
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


def _classes_layout(fn, predictions, labels, axis):
    """``'sparse'`` or ``'dense'`` from the labels' shape; ShapeError for anything else."""
    axis = _axis(fn, predictions, axis)
    ps, ls = tuple(jnp.shape(predictions)), tuple(jnp.shape(labels))
    sparse_shape = _drop(ps, axis)
    if ls == ps:
        return "dense", axis
    if ls == sparse_shape:
        if not _is_int(labels):
            raise _shape_error(
                fn, f"sparse labels expected an integer dtype, got {jnp.result_type(labels)} "
                    f"(labels {ls}, predictions {ps})",
                "cast class indices with labels.astype(jnp.int32)")
        return "sparse", axis
    raise _shape_error(
        fn, f"labels shape expected {sparse_shape} (class indices) or {ps} (one-hot or "
            f"probabilities), got {ls} (predictions {ps}, class axis {axis})")


def _smooth_dense(targets, num_classes, label_smoothing):
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes


def _one_hot(labels, num_classes, axis, dtype):
    return jax.nn.one_hot(labels, num_classes, dtype=dtype, axis=axis)


def softmax_cross_entropy(logits, labels, *, label_smoothing=0.0, axis=-1, reduction="mean"):
    """``torch.nn.functional.cross_entropy`` with the class axis at ``axis`` (default last).

    ``labels`` are class indices (integer, shape ``logits.shape`` without ``axis``) or one-hot /
    class probabilities (same shape as ``logits``).  ``label_smoothing`` mixes the targets with
    the uniform distribution as torch does.  ``reduction='none'`` gives one value per example.
    """
    _check_reduction(reduction)
    _check_smoothing(label_smoothing)
    layout, axis = _classes_layout("softmax_cross_entropy", logits, labels, axis)
    log_probs = jax.nn.log_softmax(logits, axis=axis)
    num_classes = jnp.shape(logits)[axis]
    if layout == "sparse":
        targets = _one_hot(labels, num_classes, axis, log_probs.dtype)
    else:
        targets = jnp.asarray(labels, log_probs.dtype)
    targets = _smooth_dense(targets, num_classes, label_smoothing)
    return _reduce(-jnp.sum(targets * log_probs, axis=axis), reduction)


cross_entropy = softmax_cross_entropy


def nll_loss(log_probs, labels, *, axis=-1, reduction="mean"):
    """``torch.nn.functional.nll_loss``: ``-log_probs[label]`` with the class axis at ``axis``."""
    _check_reduction(reduction)
    layout, axis = _classes_layout("nll_loss", log_probs, labels, axis)
    if layout != "sparse":
        raise _shape_error(
            "nll_loss", f"labels expected class indices of shape "
                        f"{_drop(jnp.shape(log_probs), axis)}, got one-hot shape "
                        f"{tuple(jnp.shape(labels))}",
            "pass labels.argmax(axis) or use softmax_cross_entropy for probability targets")
    picked = jnp.take_along_axis(log_probs, jnp.expand_dims(labels, axis), axis=axis)
    return _reduce(-jnp.squeeze(picked, axis), reduction)


def _keras_log_probs(predictions, from_logits, axis):
    if from_logits:
        return jax.nn.log_softmax(predictions, axis=axis)
    probs = predictions / jnp.sum(predictions, axis=axis, keepdims=True)
    return jnp.log(jnp.clip(probs, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(predictions, targets, *, from_logits=False, label_smoothing=0.0,
                             axis=-1, reduction="mean"):
    """``keras.losses.categorical_crossentropy`` (predictions first): one-hot/probability targets.

    From probabilities (``from_logits=False``) the predictions are renormalised to sum 1 along
    ``axis`` and clipped to ``[1e-7, 1 - 1e-7]`` before the log, as Keras does.
    """
    fn = "categorical_crossentropy"
    _check_reduction(reduction)
    _check_smoothing(label_smoothing)
    layout, axis = _classes_layout(fn, predictions, targets, axis)
    if layout == "sparse":
        raise _shape_error(
            fn, f"targets expected one-hot of shape {tuple(jnp.shape(predictions))}, got integer "
                f"class indices of shape {tuple(jnp.shape(targets))}",
            "use sparse_categorical_crossentropy for integer labels")
    log_probs = _keras_log_probs(predictions, from_logits, axis)
    targets = _smooth_dense(jnp.asarray(targets, log_probs.dtype), jnp.shape(predictions)[axis],
                            label_smoothing)
    return _reduce(-jnp.sum(targets * log_probs, axis=axis), reduction)


def sparse_categorical_crossentropy(predictions, targets, *, from_logits=False, axis=-1,
                                    reduction="mean"):
    """``keras.losses.sparse_categorical_crossentropy`` (predictions first): integer targets.

    Targets of shape ``(..., 1)`` are squeezed as in Keras.  Probabilities are renormalised and
    clipped to ``[1e-7, 1 - 1e-7]`` unless ``from_logits=True``.
    """
    fn = "sparse_categorical_crossentropy"
    _check_reduction(reduction)
    ps, ts = tuple(jnp.shape(predictions)), tuple(jnp.shape(targets))
    if len(ts) == len(ps) and ts and ts[-1] == 1 and ps[-1] != 1:
        targets = jnp.squeeze(targets, -1)
    layout, axis = _classes_layout(fn, predictions, targets, axis)
    if layout == "dense":
        raise _shape_error(
            fn, f"targets expected integer class indices of shape "
                f"{_drop(ps, axis)}, got one-hot shape {ts}",
            "use categorical_crossentropy for one-hot targets")
    log_probs = _keras_log_probs(predictions, from_logits, axis)
    picked = jnp.take_along_axis(log_probs, jnp.expand_dims(targets, axis), axis=axis)
    return _reduce(-jnp.squeeze(picked, axis), reduction)


def mse(predictions, targets, *, reduction="mean"):
    """Squared error ``(p - t)**2`` (``torch.nn.functional.mse_loss``); shapes must match."""
    _check_reduction(reduction)
    _same_shape("mse", predictions, targets)
    return _reduce(jnp.square(predictions - targets), reduction)


def mae(predictions, targets, *, reduction="mean"):
    """Absolute error ``|p - t|`` (``torch.nn.functional.l1_loss``); shapes must match."""
    _check_reduction(reduction)
    _same_shape("mae", predictions, targets)
    return _reduce(jnp.abs(predictions - targets), reduction)


mse_loss = mean_squared_error = mse
l1_loss = mean_absolute_error = mae


def _check_positive(argument, value, allow_zero=False):
    if isinstance(value, (int, float)) and (value < 0 or (value == 0 and not allow_zero)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{argument}: expected a number {bound}, got {value!r}")


def huber(predictions, targets, *, delta=1.0, reduction="mean"):
    """``torch.nn.functional.huber_loss``: ``0.5 d**2`` if ``|d| < delta`` else
    ``delta * (|d| - 0.5 delta)``."""
    _check_reduction(reduction)
    _check_positive("delta", delta)
    _same_shape("huber", predictions, targets)
    d = jnp.abs(predictions - targets)
    quad = jnp.minimum(d, delta)
    return _reduce(0.5 * quad ** 2 + delta * (d - quad), reduction)


def smooth_l1(predictions, targets, *, beta=1.0, reduction="mean"):
    """``torch.nn.functional.smooth_l1_loss``: ``huber(delta=beta) / beta``; L1 when beta=0."""
    _check_reduction(reduction)
    _check_positive("beta", beta, allow_zero=True)
    _same_shape("smooth_l1", predictions, targets)
    if isinstance(beta, (int, float)) and beta == 0:
        return _reduce(jnp.abs(predictions - targets), reduction)
    return huber(predictions, targets, delta=beta, reduction=reduction) / beta


huber_loss = huber
smooth_l1_loss = smooth_l1


def binary_cross_entropy_with_logits(logits, targets, *, pos_weight=None, reduction="mean"):
    """``torch.nn.functional.binary_cross_entropy_with_logits``, stable via ``log_sigmoid``.

    ``pos_weight`` (broadcast against the last axis like torch) weights the positive term.
    """
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(reduction)
    _same_shape(fn, logits, targets)
    targets = jnp.asarray(targets, jnp.result_type(logits))
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    if pos_weight is None:
        loss = -(targets * log_p + (1 - targets) * log_not_p)
    else:
        try:
            jnp.broadcast_shapes(jnp.shape(pos_weight), jnp.shape(logits))
        except ValueError:
            raise _shape_error(
                fn, f"pos_weight shape expected to broadcast to {tuple(jnp.shape(logits))}, "
                    f"got {tuple(jnp.shape(pos_weight))}",
                "give one weight per class along the last axis") from None
        loss = -(pos_weight * targets * log_p + (1 - targets) * log_not_p)
    return _reduce(loss, reduction)


def _clamped_log(x):
    """``max(log x, -100)`` as torch, with a finite gradient at ``x = 0``."""
    positive = x > 0
    return jnp.where(positive, jnp.maximum(jnp.log(jnp.where(positive, x, 1.0)), -100.0), -100.0)


def binary_cross_entropy(probs, targets, *, reduction="mean"):
    """``torch.nn.functional.binary_cross_entropy``: logs are clamped at -100 like torch.

    Keras's ``binary_crossentropy`` clips probabilities at 1e-7 instead; the two differ only
    for probabilities within ~1e-7 of 0 or 1.
    """
    fn = "binary_cross_entropy"
    _check_reduction(reduction)
    _same_shape(fn, probs, targets)
    targets = jnp.asarray(targets, jnp.result_type(probs))
    log_p, log_not_p = _clamped_log(probs), _clamped_log(1.0 - probs)
    return _reduce(-(targets * log_p + (1 - targets) * log_not_p), reduction)


def binary_crossentropy(predictions, targets, *, from_logits=False, label_smoothing=0.0,
                        axis=-1, reduction="mean"):
    """``keras.losses.binary_crossentropy`` (predictions first): mean over ``axis`` per example.

    Targets are smoothed towards 0.5 (``t (1 - s) + 0.5 s``); probabilities are clipped to
    ``[1e-7, 1 - 1e-7]`` unless ``from_logits=True``.
    """
    fn = "binary_crossentropy"
    _check_reduction(reduction)
    _check_smoothing(label_smoothing)
    _same_shape(fn, predictions, targets)
    axis = _axis(fn, predictions, axis)
    targets = jnp.asarray(targets, jnp.result_type(predictions))
    targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        log_p, log_not_p = jax.nn.log_sigmoid(predictions), jax.nn.log_sigmoid(-predictions)
    else:
        p = jnp.clip(predictions, EPSILON, 1.0 - EPSILON)
        log_p, log_not_p = jnp.log(p), jnp.log(1.0 - p)
    loss = -(targets * log_p + (1 - targets) * log_not_p)
    return _reduce(jnp.mean(loss, axis=axis), reduction)


def check_labels(labels, num_classes):
    """Host-side check of class indices (cannot run under ``jit``); returns them as int64 numpy.

    Raises ShapeError for non-integral values and DataError (a ValueError) for labels outside
    ``[0, num_classes)``, naming the first bad value and its index.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"num_classes: expected a positive int, got {num_classes!r}")
    try:
        arr = np.asarray(labels)
    except jax.errors.TracerArrayConversionError:
        raise ConfigError("check_labels: labels expected concrete values, got a tracer "
                          "(call it on the host, outside jit)") from None
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise ShapeError(f"labels: expected integer class indices, got dtype {arr.dtype} "
                         f"(shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ShapeError(f"labels: expected integer class indices, got non-integer value "
                             f"{arr[idx].item()!r} at index {idx} (dtype {arr.dtype})")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"labels: expected class indices in [0, {num_classes}), got "
                        f"{arr[idx].item()!r} at index {idx} ({int(bad.sum())} out of range)")
    return arr.astype(np.int64)


_LOSSES = {
    "softmax_cross_entropy": softmax_cross_entropy, "cross_entropy": cross_entropy,
    "nll_loss": nll_loss, "nll": nll_loss,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mse, "mse_loss": mse, "mean_squared_error": mse,
    "mae": mae, "l1_loss": mae, "mean_absolute_error": mae,
    "huber": huber, "huber_loss": huber, "smooth_l1": smooth_l1, "smooth_l1_loss": smooth_l1,
    "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "binary_crossentropy": binary_crossentropy,
    # torch.nn module names, snake-cased: 'CrossEntropyLoss' -> 'cross_entropy_loss'
    "cross_entropy_loss": cross_entropy, "bce_loss": binary_cross_entropy,
    "bce_with_logits_loss": binary_cross_entropy_with_logits,
}


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name).lower()


def get(name_or_fn):
    """A loss function from its name (``'mse'``, ``'CategoricalCrossentropy'``...) or itself."""
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise ConfigError(f"loss: expected a name or a callable, got {name_or_fn!r}")
    key = _snake(name_or_fn)
    if key not in _LOSSES:
        raise unknown_option("loss", name_or_fn, _LOSSES)
    return _LOSSES[key]
