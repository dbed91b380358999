"""compile / fit / evaluate / predict / train_on_batch for Keras models, on functorch_lite.train.

``fit`` builds (or reuses) a :class:`functorch_lite.train.Trainer` over the model's core module
(the same jitted, donated train step and one-dispatch indexed step as the functional ``fit``),
makes a ``TrainState`` from the model's weights and optimizer state, and runs
:func:`functorch_lite.train.fit`.  The Trainer is kept on the model, so calling ``fit`` again
(or ``evaluate``, ``train_on_batch``) compiles nothing new for the same shapes; one more
compilation happens for a last partial batch, once.  Under ``keras.distribution.set_distribution``
(``distribution.py``) every entry point passes the distribution on: the batch is split over the
devices, the weights and optimizer state replicated.  While ``fit`` runs, the model's weights are
the running TrainState's (callbacks that read or write weights see the current ones).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core.errors import ConfigError, ShapeError
from ..train import Trainer, TrainState
from ..train import evaluate as _evaluate
from ..train.fit import _host_batches
from ..train import fit as _fit
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _opt
from ._base import _assign_into, next_key, next_seed, to_array

__all__ = ["TrainingMixin"]


def _verbose(v):
    if v == "auto":
        return 1
    if v not in (0, 1, 2):
        raise ConfigError(f"verbose: expected 'auto', 0, 1 or 2, got {v!r}")
    return int(v)


def _batch_size(b, what):
    if b is None:
        return 32
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b <= 0:
        raise ConfigError(f"{what}: batch_size expected a positive int, got {b!r}")
    return int(b)


class _EpochBatches:
    """The training arrays as an iterable of batches, re-shuffled per epoch.

    On XLA:CPU numpy arrays stay on the host and each batch is gathered there (the functional
    fit's ``_host_batches``: the plain step takes numpy batches fastest there).  Elsewhere each
    epoch gathers the permuted examples on the device in one op and each step takes its batch
    out with one small compiled slice.  The last partial batch has its own shape: one more
    compilation of the step, once.
    """

    def __init__(self, arrays, batch_size, shuffle, seed):
        self.host = _host_batches(arrays)
        self.arrays = tuple(arrays) if self.host else tuple(jax.device_put(a) for a in arrays)
        self.n = int(self.arrays[0].shape[0])
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.steps, rem = divmod(self.n, batch_size)
        cut = self.steps * batch_size

        def gather(arrays, idx):
            if idx is not None:
                arrays = tuple(a[idx] for a in arrays)
            full = tuple(a[:cut].reshape((self.steps, batch_size) + a.shape[1:]) for a in arrays)
            return full, (tuple(a[cut:] for a in arrays) if rem else None)
        self._gather = jax.jit(gather)
        self._take = jax.jit(lambda full, i: tuple(a[i] for a in full))
        self._epoch = None

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        # A new permutation only after a complete pass: fit's look at the first batch (its
        # target check) shares the first epoch's, so the shuffles are those of the functional
        # fit with the same seed (and of fit under a keras.distribution).
        if self.host:
            if self._epoch is None:
                self._epoch = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            idx, b = self._epoch, self.batch_size
            for s in range(0, self.n, b):
                yield tuple(a[idx[s:s + b]] for a in self.arrays)
            self._epoch = None
            return
        if self._epoch is None:
            idx = jnp.asarray(self.rng.permutation(self.n)) if self.shuffle else None
            self._epoch = self._gather(self.arrays, idx)
        full, tail = self._epoch
        for i in range(self.steps):
            yield self._take(full, i)
        if tail is not None:
            yield tail
        self._epoch = None


def _is_batches(x):
    return (x is not None and not isinstance(x, (np.ndarray, jax.Array, list, tuple))
            and hasattr(x, "__iter__"))


class TrainingMixin:
    """The Keras training API of :class:`Model` (see the module docstring)."""

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, steps_per_execution=1,
                jit_compile="auto", run_eagerly=False):
        """Configure training: ``optimizer`` a name (``'adam'``, ``'sgd'``, ``'rmsprop'``...), a
        ``keras.optimizers`` object or an optax transformation; ``loss`` a name, a
        ``keras.losses`` object or ``fn(y_true, y_pred)``; ``metrics`` a list of names
        (``'accuracy'``), Metric objects or functions; ``steps_per_execution`` steps per
        compiled call.  Compiling again resets the optimizer state."""
        opt = _opt.get(optimizer)
        tx = opt.tx if isinstance(opt, _opt.Optimizer) else opt
        if isinstance(opt, _opt.Optimizer):
            opt._model = self
        loss_obj = None if loss is None else _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, _metrics.Metric)) or callable(metrics):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ConfigError("compile: metrics as a dict (per output) is not supported; "
                              "expected a list")
        metrics = list(metrics)
        for m in metrics:  # unknown names fail here, not at fit
            if not (isinstance(m, str) and m.lower() in ("accuracy", "acc")):
                _metrics.get(m)
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) \
                or steps_per_execution <= 0:
            raise ConfigError(f"compile: steps_per_execution expected a positive int, got "
                              f"{steps_per_execution!r}")
        if jit_compile not in ("auto", True):
            raise ConfigError(f"compile: jit_compile expected 'auto' or True (functorch_lite.keras "
                              f"always compiles with XLA), got {jit_compile!r}")
        if run_eagerly:
            raise ConfigError("compile: run_eagerly=True is not supported (functorch_lite.keras "
                              "always compiles with XLA)\nHint: debug the pure function "
                              "model.apply_fn(model.params, model.state, x) outside jit instead")
        self._k.compiled = {"optimizer": opt, "tx": tx, "loss": loss_obj, "metrics": metrics,
                            "steps_per_execution": steps_per_execution}
        self._k.trainer = None
        self._k.trainer_key = None
        self._k.opt = None

    @property
    def optimizer(self):
        c = self._k.compiled
        return None if c is None else c["optimizer"]

    @property
    def loss(self):
        c = self._k.compiled
        return None if c is None else c["loss"]

    @property
    def compiled(self) -> bool:
        return self._k.compiled is not None

    @property
    def history(self):
        return getattr(self._k, "history", None)

    @property
    def stop_training(self) -> bool:
        live = self._k.live
        return bool(live.stop_training if live is not None else self._k.stop)

    @stop_training.setter
    def stop_training(self, value):
        self._k.stop = bool(value)
        if self._k.live is not None:
            self._k.live.stop_training = bool(value)

    def _opt_state_live(self):
        live = self._k.live
        if live is not None and live.train_state is not None:
            return live.train_state.opt_state
        return None if self._k.opt is None else self._k.opt["opt_state"]

    def _iterations(self) -> int:
        live = self._k.live
        if live is not None and live.train_state is not None:
            return int(live.train_state.step)
        return 0 if self._k.opt is None else int(self._k.opt["step"])

    # ------------------------------------------------------------------ preparing data
    def _compiled(self, what):
        c = self._k.compiled
        if c is None:
            raise ConfigError(f"{what}: you must call model.compile(optimizer=..., loss=...) "
                              f"before model.{what}()")
        if c["loss"] is None:
            raise ConfigError(f"{what}: the model was compiled without a loss; pass "
                              f"compile(loss=...), e.g. loss='sparse_categorical_crossentropy'")
        return c

    def _prepare(self, x, y, sample_weight, what, check_values=True):
        """Arrays checked against the model and the loss; builds the model on first use."""
        c = self._compiled(what)
        if x is None or y is None:
            raise ConfigError(f"{what}: expected x and y arrays, got "
                              f"{'x=None' if x is None else 'y=None'}")
        if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape") and np.ndim(x[0]) > 1:
            raise ConfigError(f"{what}: x expected one array (models with several inputs are not "
                              f"supported by fit/evaluate), got a {type(x).__name__} of "
                              f"{len(x)} arrays")
        x, y = to_array(x, "x"), to_array(y, "y")
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ShapeError(f"{what}: x and y expected the same number of examples (first "
                             f"axis), got x {tuple(x.shape)} and y {tuple(y.shape)}")
        w = None
        if sample_weight is not None:
            w = to_array(sample_weight, "sample_weight").astype(np.float32) \
                if not isinstance(sample_weight, jax.Array) else sample_weight
            if tuple(w.shape) != (x.shape[0],):
                raise ShapeError(f"{what}: sample_weight expected shape ({x.shape[0]},), got "
                                 f"{tuple(w.shape)}")
        self._ensure_built(x)
        self._check_input(x, what)
        out = self._output_spec(2)
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise ConfigError(f"{what}: models with several outputs are not supported by "
                              f"fit/evaluate")
        loss = c["loss"]
        if check_values:
            loss.check_targets(y, (x.shape[0],) + tuple(out.shape[1:]))
        if isinstance(loss, _losses.SparseCategoricalCrossentropy) and \
                np.issubdtype(np.dtype(y.dtype), np.floating):
            y = np.asarray(y).astype(np.int32)
        ys = jax.ShapeDtypeStruct((2,) + tuple(y.shape[1:]), y.dtype)
        try:
            jax.eval_shape(loss.core(), out, ys)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{what}: loss '{loss.name}' on model outputs "
                          f"{(None,) + tuple(out.shape[1:])} and y {tuple(y.shape)}: {e}") from None
        return x, y, w, out

    def _float_ids(self, x):
        """Integer inputs as float32 (the layers cast them anyway), except for a Sequential
        that starts with an Embedding: the training loop then sees the dtype the model takes."""
        from .layers import Embedding
        layers = self.layers
        if np.issubdtype(np.dtype(x.dtype), np.integer) and not (
                layers and isinstance(layers[0], Embedding)):
            return x.astype(np.float32) if not isinstance(x, jax.Array) else x.astype(jnp.float32)
        return x

    def _trainer(self, y, out):
        """The Trainer for the compiled loss/optimizer and the metrics resolved for y's shape
        (cached on the model: its compiled steps are reused)."""
        c = self._k.compiled
        ms = [_metrics.resolve(m, c["loss"], (None,) + tuple(y.shape[1:]), out.shape)
              for m in c["metrics"]]
        key = tuple((m.name, type(m).__name__, getattr(m, "fn_kwargs", None).__repr__())
                    for m in ms)
        if self._k.trainer is None or self._k.trainer_key != key:
            names = [m.name for m in ms]
            dup = sorted({n for n in names if names.count(n) > 1 or n == "loss"})
            if dup:
                raise ConfigError(f"compile: metric names must be unique and not 'loss', got "
                                  f"{dup} twice")
            self._k.loss_fn = c["loss"].core()
            self._k.trainer = Trainer(self.module, self._k.loss_fn, c["tx"],
                                      {m.name: m.core() for m in ms})
            self._k.trainer_key = key
        return self._k.trainer

    def _train_state(self, trainer):
        params, state = self._weights_tree()
        if self._k.opt is None:
            opt_state = trainer.tx.init(params)
            opt = self.optimizer
            if isinstance(opt, _opt.Optimizer) and not callable(opt._lr) and \
                    _opt._has_lr(opt_state):
                opt_state.hyperparams["learning_rate"] = jnp.asarray(opt._lr, jnp.float32)
            self._k.opt = {"opt_state": opt_state, "step": jnp.zeros((), jnp.int32),
                           "rng": next_key()}
        o = self._k.opt
        return TrainState(params, state, o["opt_state"], o["step"], o["rng"])

    def _store(self, ts):
        if self._k.home is not None:  # part of another model: write into its tree
            params, state = self._weights_tree()
            _assign_into({"params": params, "state": state},
                         {"params": ts.params, "state": ts.state})
        else:
            self._k.root = {"params": ts.params, "state": ts.state}
        self._k.opt = {"opt_state": ts.opt_state, "step": ts.step, "rng": ts.rng}

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, sample_weight=None,
            initial_epoch=0):
        """Train for ``epochs`` and return a ``History`` (``.history``: ``loss``, each metric,
        ``val_*``).  ``validation_split`` holds out the last fraction of x/y (before
        shuffling); ``verbose`` 1 shows a progress bar per epoch, 2 one line per epoch, 0
        nothing.  ``x`` may also be an iterable of ``(x, y)`` batches (with ``y=None``)."""
        from . import callbacks as _cb
        dist = _distribution()
        epoch_seed = None
        verbose = _verbose(verbose)
        batch_size = _batch_size(batch_size, "fit")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
            raise ConfigError(f"fit: epochs expected a positive int, got {epochs!r}")
        if _is_batches(x):
            if y is not None or validation_split:
                raise ConfigError("fit: with x an iterable of (x, y) batches, y and "
                                  "validation_split expected None/0")
            first = next(iter(x))
            fx, fy, _, out = self._prepare(first[0], first[1], None, "fit")
            data, val = x, None
            steps = len(x) if hasattr(x, "__len__") else None
        else:
            x, y, w, out = self._prepare(x, y, sample_weight, "fit")
            fy = y
            if validation_split:
                if validation_data is not None:
                    raise ConfigError("fit: expected validation_split or validation_data, not both")
                if isinstance(validation_split, bool) or \
                        not isinstance(validation_split, (int, float)) or \
                        not 0 < validation_split < 1:
                    raise ConfigError(f"fit: validation_split expected a number in (0, 1), got "
                                      f"{validation_split!r}")
                n = x.shape[0]
                split = int(math.floor(n * (1.0 - validation_split)))
                if split in (0, n):
                    raise ConfigError(f"fit: validation_split={validation_split} leaves no "
                                      f"{'training' if split == 0 else 'validation'} examples "
                                      f"out of {n}")
                validation_data = (x[split:], y[split:]) + ((w[split:],) if w is not None else ())
                x, y = x[:split], y[:split]
                w = None if w is None else w[:split]
            x = self._float_ids(x)
            data = (x, y) if w is None else (x, y, w)
            if self._k.compiled["steps_per_execution"] == 1:
                epoch_seed = next_seed()
                if dist is None:   # with a distribution, fit shards the epoch from the arrays
                    data = _EpochBatches(data, batch_size, bool(shuffle), epoch_seed)
            steps = -(-x.shape[0] // batch_size)
            val = None
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                    raise ConfigError("fit: validation_data expected a tuple (x_val, y_val) or "
                                      "(x_val, y_val, sample_weight_val)")
                vx, vy, vw, _ = self._prepare(validation_data[0], validation_data[1],
                                              validation_data[2] if len(validation_data) == 3
                                              else None, "fit (validation_data)")
                val = (self._float_ids(vx), vy) + ((vw,) if vw is not None else ())
        trainer = self._trainer(fy, out)
        history = _cb.History()
        cbs = list(callbacks or []) + [history]
        for cb in cbs:
            if not isinstance(cb, _cb.Callback):
                raise ConfigError(f"fit: callbacks expected keras.callbacks.Callback objects, got "
                                  f"{cb!r}")
            cb.set_model(self)
            cb.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        ts = self._train_state(trainer)
        self._k.stop = False
        self._k.live = trainer
        trainer.train_state = ts
        seed = next_seed()
        if dist is not None and epoch_seed is not None:
            seed = epoch_seed   # the same shuffles as _EpochBatches draws without a distribution
        try:
            core = _fit(self.module, self._k.loss_fn, trainer.tx, data, epochs=epochs, batch_size=batch_size,
                        seed=seed, validation_data=val, shuffle=bool(shuffle), callbacks=cbs,
                        verbose=verbose, steps_per_execution=self._k.compiled["steps_per_execution"],
                        train_state=ts, initial_epoch=initial_epoch, trainer=trainer, distribution=dist)
        finally:
            final = trainer.train_state
            self._k.live = None
            self._store(final)
        history.interrupted = core.interrupted   # Ctrl-C: the weights of the last completed step
        self._k.history = history
        return history

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) in inference mode: a scalar without metrics, else
        ``[loss, *metrics]`` (or a dict with ``return_dict=True``)."""
        verbose = _verbose(verbose)
        batch_size = _batch_size(batch_size, "evaluate")
        x, y, w, out = self._prepare(x, y, sample_weight, "evaluate")
        trainer = self._trainer(y, out)
        for cb in callbacks or ():
            cb.set_model(self)
            cb.on_test_begin()
        params, state = self._weights_tree()
        data = (x, y) if w is None else (x, y, w)
        res = _evaluate(self.module, params, data, batch_size=batch_size, state=state,
                        _eval_step=trainer.eval_step, distribution=_distribution())
        logs = {"loss": res.pop("loss"), **res}
        for cb in callbacks or ():
            cb.on_test_end(logs)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return _flatten(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Model outputs in inference mode as one numpy array, ``batch_size`` (32) at a time;
        the last partial batch is padded, so every call reuses one compiled function."""
        batch_size = _batch_size(batch_size, "predict")
        x = to_array(x, "x")
        self._ensure_built(x)
        self._check_input(x, "predict")
        for cb in callbacks or ():
            cb.set_model(self)
            cb.on_predict_begin()
        params, state = self._weights_tree()
        fn = self._eager_fn(False)
        dist = _distribution()
        padded = batch_size
        if dist is not None:   # batches padded to a multiple of the shards, then split
            padded = -(-batch_size // dist.num_shards) * dist.num_shards
            params, state = dist.put_state(params), dist.put_state(state)
        n = x.shape[0]
        outs = []
        for s in range(0, n, batch_size):
            xb = x[s:s + batch_size]
            m = xb.shape[0]
            if m < padded:
                pad = [(0, padded - m)] + [(0, 0)] * (xb.ndim - 1)
                xb = np.pad(np.asarray(xb), pad) if not isinstance(xb, jax.Array) else jnp.pad(xb, pad)
            xb = jnp.asarray(xb) if dist is None else dist.shard_batch(xb)
            y, _ = fn(params, state, xb, None)
            outs.append(jax.tree_util.tree_map(lambda a, m=m: a[:m], y))
        outs = jax.device_get(outs) if dist is None else _to_host(outs)
        result = jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *outs)
        for cb in callbacks or ():
            cb.on_predict_end()
        return result

    # ------------------------------------------------------------------ single batches
    def train_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """One training step on this batch (the compiled step is reused for the same shape);
        returns the batch loss (and metrics)."""
        x, y, w, out = self._prepare(x, y, sample_weight, "train_on_batch")
        trainer = self._trainer(y, out)
        ts = self._train_state(trainer)
        dist = _distribution()
        if dist is None:
            batch = tuple(jnp.asarray(a) for a in ((x, y) if w is None else (x, y, w)))
            ts, logs = trainer.train_step(ts, batch)
        else:   # padded with zero-weight rows to a multiple of the shards, split over them
            batch, _ = dist.global_batch(tuple(_to_host((x, y) if w is None else (x, y, w))))
            ts, logs = trainer.sharded(dist).step(dist.put_state(ts), batch)
        self._store(ts)
        return _flatten({k: float(v) for k, v in jax.device_get(logs).items()}, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch in inference mode."""
        x, y, w, out = self._prepare(x, y, sample_weight, "test_on_batch")
        trainer = self._trainer(y, out)
        params, state = self._weights_tree()
        dist = _distribution()
        if dist is None:
            batch = tuple(jnp.asarray(a) for a in ((x, y) if w is None else (x, y, w)))
        else:
            params, state = dist.put_state(params), dist.put_state(state)
            batch, _ = dist.global_batch(tuple(_to_host((x, y) if w is None else (x, y, w))))
        sums = jax.device_get(trainer.eval_step(params, state, batch))
        count = float(sums.pop("count"))
        logs = {"loss": float(sums.pop("loss")) / count}
        logs.update({k: float(v) / count for k, v in sums.items()})
        return _flatten(logs, return_dict)

    def predict_on_batch(self, x):
        x = to_array(x, "x")
        self._ensure_built(x)
        self._check_input(x, "predict_on_batch")
        params, state = self._weights_tree()
        return np.asarray(self._eager_fn(False)(params, state, jnp.asarray(x), None)[0])


def _distribution():
    """The current ``keras.distribution`` as a ``functorch_lite.distributed.DataParallel``."""
    from .distribution import _current
    return _current()


def _to_host(tree):
    from ..distributed import to_host
    return to_host(tree)


def _flatten(logs, return_dict):
    if return_dict:
        return dict(logs)
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
