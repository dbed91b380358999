"""``keras.callbacks``: Callback, History, EarlyStopping, ModelCheckpoint,
LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN, CSVLogger.

Callbacks run inside :func:`functorch_lite.train.fit`, which calls, in this order:
``on_train_begin``; per epoch ``on_epoch_begin(epoch)``, per step ``on_train_batch_begin(i)`` /
``on_train_batch_end(i, logs)``, then (after validation) ``on_epoch_end(epoch, logs)`` with
``loss``, the metrics and ``val_*``; finally ``on_train_end``.  Callbacks are called in the order
given, then the History.  ``self.model`` is the Keras model (its weights are the running ones;
set ``self.model.stop_training = True`` to stop after the current epoch, or step from a batch
hook).  Batch hooks cost one device-to-host transfer per step, so the base class leaves them
undefined and ``fit`` only syncs per step when a callback overrides one.
"""
from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np

from ..core.errors import ConfigError, unknown_option
from ..train import Callback as _CoreCallback

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger"]


class Callback(_CoreCallback):
    """Base class of Keras callbacks: override ``on_train_begin/end``, ``on_epoch_begin/end``,
    ``on_train_batch_begin/end``, ``on_test_begin/end``, ``on_predict_begin/end``."""

    model = None
    params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...


class History(Callback):
    """What ``fit`` returns: ``history.history`` maps each log name to its per-epoch values;
    ``history.epoch`` lists the epochs run; ``history.params`` the fit parameters;
    ``history.interrupted`` is True when Ctrl-C stopped ``fit`` (after a completed step, whose
    weights the model keeps; the history then holds the completed epochs)."""

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []
        self.interrupted = False

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


_MAX_WORDS = ("acc", "accuracy", "auc", "precision", "recall")


def _monitor_op(name, monitor, mode):
    modes = ("auto", "min", "max")
    if mode not in modes:
        raise unknown_option(f"{name}: mode", mode, modes)
    if mode == "auto":
        base = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if any(base == w or base.endswith("_" + w) for w in _MAX_WORDS) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs (Keras 3 semantics, including ``baseline``, ``start_from_epoch`` and
    ``restore_best_weights``: the best epoch's weights are put back when training ends)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = _monitor_op("EarlyStopping", monitor, mode)
        self.min_delta = abs(min_delta) * (1 if self.mode == "max" else -1)
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = None
        self.best_weights = None

    def _better(self, value, ref):
        if ref is None:
            return True
        v = value - self.min_delta
        return v > ref if self.mode == "max" else v < ref

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored(self, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _monitored(cb, logs):
    value = (logs or {}).get(cb.monitor)
    if value is None:
        warnings.warn(f"{type(cb).__name__} is conditioned on '{cb.monitor}', which is not "
                      f"available; available: {sorted(logs or {})}", stacklevel=3)
        return None
    return float(value)


class ModelCheckpoint(Callback):
    """Save the weights at the end of every epoch (or only when ``monitor`` improves, with
    ``save_best_only``) to ``filepath``, which may hold ``{epoch}`` and log names
    (``'ckpt-{epoch:02d}-{val_loss:.2f}.weights.h5'``).  Files are written atomically (a
    temporary file renamed over the target).  Only weights are saved, whatever
    ``save_weights_only`` says; ``save_freq`` must be ``'epoch'``."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ConfigError(f"ModelCheckpoint: save_freq expected 'epoch', got {save_freq!r} "
                              f"(saving every N batches is not supported)")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_op("ModelCheckpoint", monitor, mode)
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ConfigError(f"ModelCheckpoint: filepath '{self.filepath}' names {e} which is "
                              f"not in the logs {sorted(logs)}") from None
        if self.save_best_only:
            current = _monitored(self, logs)
            if current is None:
                return
            better = self.best is None or (current > self.best if self.mode == "max"
                                           else current < self.best)
            if not better:
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                prev = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {prev} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        self.model.save_weights(path)


class LearningRateScheduler(Callback):
    """At each epoch start set the learning rate to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``); the value is logged as ``learning_rate``.  No recompilation: the rate
    is an array in the optimizer state."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = _keras_optimizer(self)
        lr = float(opt.learning_rate)
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = float(new)
        if not math.isfinite(new):
            raise ConfigError(f"LearningRateScheduler: the schedule returned {new!r} for epoch "
                              f"{epoch}; expected a finite float")
        opt.learning_rate = new
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(_keras_optimizer(self).learning_rate)


def _keras_optimizer(cb):
    from .optimizers import Optimizer
    opt = cb.model.optimizer
    if not isinstance(opt, Optimizer):
        raise ConfigError(f"{type(cb).__name__}: expected the model compiled with a keras "
                          f"optimizer (a name or keras.optimizers.*), got {opt!r}")
    return opt


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by
    ``min_delta`` for ``patience`` epochs (then wait ``cooldown`` epochs), down to ``min_lr``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ConfigError(f"ReduceLROnPlateau: factor expected < 1.0, got {factor!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.mode = _monitor_op("ReduceLROnPlateau", monitor, mode)
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self._reset()

    def _reset(self):
        self.best = -np.inf if self.mode == "max" else np.inf
        self.wait = self.cooldown_counter = 0

    def _better(self, a, b):
        return a > b + self.min_delta if self.mode == "max" else a < b - self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        opt = _keras_optimizer(self)
        if logs is not None:
            logs["learning_rate"] = float(opt.learning_rate)
        current = _monitored(self, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class TerminateOnNaN(Callback):
    """Stop training right after a step whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write one CSV row per epoch (``epoch`` then the logs, sorted by name) to ``filename``;
    ``append=True`` continues an existing file without repeating the header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = None
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        self._header = not (self.append and os.path.exists(self.filename) and
                            os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                          delimiter=self.sep)
            if self._header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None
