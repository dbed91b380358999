"""``fit``: the training loop over the jitted step, with History, callbacks and a progress bar.

Each epoch draws one permutation (seeded numpy).  On XLA:CPU, numpy arrays stay on the host and
each step's batch is gathered there and fed to the plain compiled step (``_host_batches``);
elsewhere (or for jax arrays) the arrays are moved to the device once, the shuffled epoch is
gathered there in one compiled call, and every step slices its batch inside the compiled step.
Either way a step costs one dispatch.  A last partial batch runs through the plain step (one
extra compile in total, not one per epoch).  ``steps_per_execution=K`` runs K steps per compiled call
with ``lax.scan`` (measure first: it is slower for CPU convolutions).

``distribution=`` (a ``functorch_lite.distributed.DataParallel``, a Mesh, a device count or a
device list) trains data-parallel on JAX's SPMD partitioner: the epoch is placed split over the
data axis (built on the host, each device receiving its slices), the TrainState replicated (or
FSDP-sharded), and the same step body runs with sharding constraints; XLA inserts the gradient
all-reduce.  See ``functorch_lite/distributed.py`` and ``docs/distributed.md``.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..core import xla
from ..core.errors import ConfigError
from ..core.interrupts import InterruptGuard
from .state import TrainState
from .step import make_eval_step, make_predict, make_train_step

__all__ = ["Callback", "History", "fit", "evaluate", "predict", "Trainer"]


class Callback:
    """Base class of fit callbacks (Keras' hook names). ``self.trainer`` is set by fit; setting
    ``self.trainer.stop_training = True`` ends training after the current epoch (or step)."""
    trainer: Any = None

    def set_trainer(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class History(Callback):
    """Per-epoch logs: ``history.history['loss']``, ``['accuracy']``, ``['val_loss']``, ...;
    ``history.epoch`` lists the epochs run; ``history.train_state`` is the final TrainState."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.train_state: TrainState | None = None
        self.interrupted = False
        self.compiles = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    @property
    def params(self):
        return self.train_state.params

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _check_positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ConfigError(f"fit: {name} expected a positive int, got {v!r}")


def _as_arrays(data, what):
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ConfigError(f"{what}: expected a tuple (x, y) or (x, y, sample_weight) of arrays, "
                          f"got {type(data).__name__}")
    arrays = tuple(np.asarray(a) if not isinstance(a, jax.Array) else a for a in data)
    n = {a.shape[0] for a in arrays}
    if len(n) != 1:
        raise ConfigError(f"{what}: x, y (and sample_weight) must have the same number of examples, "
                          f"got {[a.shape[0] for a in arrays]}")
    return arrays


_CLASSIFICATION = ("softmax_cross_entropy", "cross_entropy", "nll_loss",
                   "sparse_categorical_crossentropy", "categorical_crossentropy")


def check_targets(model, loss, x, y):
    """Host-side check of the inputs and labels, once per ``fit`` (never per step):
    integer images going into a non-embedding model, and for classification losses
    float or out-of-range class indices and label shapes that are neither indices nor one-hot.
    Raises ShapeError/ValueError naming what was expected and what came."""
    from .. import losses as _losses
    from ..core.errors import ShapeError
    from ..core.module import output_spec
    from ..layers.embedding import Embedding
    fn = _losses.get(loss)
    x_dtype = np.dtype(getattr(x, "dtype", np.float32))
    first = model.layers[0] if hasattr(model, "layers") and len(getattr(model, "layers", ())) else model
    if np.issubdtype(x_dtype, np.integer) and not isinstance(first, Embedding):
        raise ShapeError(
            f"fit: inputs expected a floating dtype, got {x_dtype} (shape {tuple(x.shape)})\n"
            f"Hint: scale integer images first, e.g. x.astype('float32') / 255.0")
    if getattr(fn, "__name__", None) not in _CLASSIFICATION:
        return
    out = output_spec(model, jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x_dtype)).shape
    y_shape = tuple(np.shape(y))
    classes = out[-1]
    if len(y_shape) == len(out) - 1 or (len(out) == 2 and y_shape[1:] == (1,)):
        if fn.__name__ == "categorical_crossentropy":
            raise ShapeError(
                f"fit: loss 'categorical_crossentropy' expects one-hot labels of shape (N, {classes}), "
                f"got class indices of shape {y_shape}\n"
                f"Hint: use 'sparse_categorical_crossentropy', or one-hot encode the labels")
        _losses.check_labels(np.asarray(y).reshape(y_shape[0], *out[1:-1]), classes)
    elif y_shape[1:] == tuple(out[1:]):
        if fn.__name__ in ("sparse_categorical_crossentropy", "nll_loss"):
            raise ShapeError(
                f"fit: loss {fn.__name__!r} expects class indices of shape (N,), got one-hot-shaped "
                f"labels {y_shape}\nHint: use labels.argmax(-1), or a categorical loss")
    else:
        raise ShapeError(
            f"fit: labels shape {y_shape} matches neither class indices (N,) nor one-hot "
            f"(N, {classes}) for the model's output {tuple(out)}")


class Trainer:
    """The state of one ``fit`` run, shared with callbacks (``stop_training``, ``train_state``)."""

    def __init__(self, model, loss, optimizer, metrics):
        self.model = model
        self.loss = loss
        self.train_step = make_train_step(model, loss, optimizer, metrics=metrics)
        self.tx = self.train_step.tx
        self.eval_step = make_eval_step(model, loss, metrics=metrics)
        self.stop_training = False
        self.train_state: TrainState | None = None
        self.interrupt = InterruptGuard()   # fit's guard while it runs: Ctrl-C stops after a step
        self._indexed = None
        self._multi = {}
        self._sharded = {}

    def sharded(self, dist):
        """The data-parallel steps of this trainer for ``dist`` (compiled once per distribution)."""
        if dist not in self._sharded:
            self._sharded[dist] = dist.steps(self.train_step)
        return self._sharded[dist]

    # One dispatch per step: the batch is sliced out of the device-resident epoch inside the jit.
    def indexed_step(self, ts, xs, i):
        if self._indexed is None:
            raw, counter = self.train_step.raw, self.train_step.compiles

            def body(ts, xs, i):
                batch = tuple(jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False) for a in xs)
                return raw(ts, batch)
            self._indexed = xla.jit(body, convolutions=self.train_step.convolutions, donate_argnums=0)
        return self._indexed(ts, xs, i)

    def multi_step(self, ts, xs, i, k):
        if k not in self._multi:
            raw = self.train_step.raw

            def body(ts, xs, i):
                def one(ts, j):
                    batch = tuple(jax.lax.dynamic_index_in_dim(a, j, 0, keepdims=False) for a in xs)
                    return raw(ts, batch)
                return jax.lax.scan(one, ts, i + jnp.arange(k))
            self._multi[k] = xla.jit(body, convolutions=self.train_step.convolutions, donate_argnums=0)
        return self._multi[k](ts, xs, i)


class _RunningLogs:
    """Per-step logs stay on the device; every ``every`` steps (and at the end) the pending ones
    come to the host in one transfer and join size-weighted running sums."""

    def __init__(self, every: int = 25):
        self.every, self.pending, self.sums, self.weight = every, [], {}, 0.0
        self.first_nonfinite = None
        self.steps_done = 0

    def add(self, logs, sizes):
        self.pending.append((logs, sizes))
        return len(self.pending) >= self.every

    def flush(self):
        if not self.pending:
            return
        host = jax.device_get([l for l, _ in self.pending])
        for logs, (_, sizes) in zip(host, self.pending):
            w = np.asarray(sizes, np.float64)
            for k, v in logs.items():
                v = np.atleast_1d(np.asarray(v, np.float64))
                if k == "loss" and self.first_nonfinite is None and not np.all(np.isfinite(v)):
                    self.first_nonfinite = self.steps_done + int(np.argmin(np.isfinite(v))) + 1
                self.sums[k] = self.sums.get(k, 0.0) + float(np.sum(v * w))
            self.steps_done += len(w)
            self.weight += float(np.sum(w))
        self.pending = []

    def means(self) -> dict[str, float]:
        return {k: v / self.weight for k, v in self.sums.items()} if self.weight else {}


def fit(model, loss, optimizer, data, *, epochs: int = 1, batch_size: int = 32, key=None,
        seed: int = 0, metrics=("accuracy",), validation_data=None, shuffle: bool = True,
        callbacks: Sequence[Callback] = (), verbose: int = 1, steps_per_execution: int = 1,
        train_state: TrainState | None = None, initial_epoch: int = 0,
        stop_on_nan: bool = False, trainer: Trainer | None = None, distribution=None) -> History:
    """Train ``model`` and return a ``History`` (``.history`` dict, ``.train_state`` at the end).

    ``data`` is ``(x, y)`` / ``(x, y, sample_weight)`` arrays, or an iterable of such batches
    (e.g. a ``DataLoader``, re-iterated each epoch).  ``loss``, ``optimizer`` and ``metrics``
    take names (``'cross_entropy'``, ``'adam'``, ``'accuracy'``) or functions / optax
    transformations.  ``KeyboardInterrupt`` stops after the last completed step and returns the
    partial history (``history.interrupted``) with that step's weights.
    ``trainer`` reuses a ``Trainer`` (and so its compiled steps) from an earlier call; its
    loss/optimizer/metrics then take the place of those arguments.
    ``distribution`` trains data-parallel over a device mesh (``functorch_lite.distributed``):
    ``batch_size`` is the global batch and must be divisible by the number of batch shards; a last
    partial batch is padded with zero-weight rows.  Arrays are the global dataset (the same on
    every process); batches of an iterable are process-local parts of the global batch.
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("steps_per_execution", steps_per_execution)
    if trainer is None:
        trainer = Trainer(model, loss, optimizer, metrics)
    sharded = None
    if distribution is not None:
        from ..distributed import as_distribution
        dist = as_distribution(distribution, "fit: distribution")
        dist.check_batch_size(batch_size, "fit")
        sharded = trainer.sharded(dist)
    trainer.stop_training = False
    history = History()
    cbs = [history, *callbacks]
    for cb in cbs:
        cb.set_trainer(trainer)

    arrays = _as_arrays(data, "fit: data") if isinstance(data, (tuple, list)) else None
    warm = None
    if train_state is None:
        first = arrays[0] if arrays is not None else next(iter(data))[0]
        spec = jax.ShapeDtypeStruct((batch_size,) + tuple(first.shape[1:]), first.dtype)
        key = seed if key is None else key   # TrainState.create makes jax.random.key(seed)
        if sharded is None and steps_per_execution == 1 and arrays is not None \
                and _host_batches(arrays):
            warm = _FirstStepCompile.start(trainer, model, key, spec, arrays, batch_size)
            warm.lowered()
    try:
        if train_state is None:
            train_state = TrainState.create(model, trainer.tx, key, spec)
        ts = train_state if sharded is None else sharded.dist.put_state(train_state)
        trainer.train_state = ts
        first_batch = arrays if arrays is not None else next(iter(data))
        check_targets(model, trainer.loss, first_batch[0], first_batch[1])
    finally:   # also when a check fails: no compile left running behind the caller's back
        if warm is not None:
            warm.join()
    rng = np.random.default_rng(seed)
    if arrays is None:
        dev = None
    elif sharded is None and steps_per_execution == 1 and _host_batches(arrays):
        dev = arrays   # XLA:CPU: numpy batches straight into the step (see _host_batches)
    elif sharded is None:
        dev = tuple(jax.device_put(a) for a in arrays)
    else:   # the epoch is gathered on the host, each device receives only its slices
        dev = tuple(np.asarray(a) for a in arrays)

    for cb in cbs:
        cb.on_train_begin()
    guard = trainer.interrupt = InterruptGuard(
        "fit: Ctrl-C received; stopping after the current step" if verbose else None).start()
    try:
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            logs, ts = _run_epoch(trainer, ts, dev, data, rng, batch_size, shuffle,
                                  steps_per_execution, cbs, verbose, epoch, epochs, stop_on_nan,
                                  sharded)
            trainer.train_state = ts
            if validation_data is not None and not trainer.stop_training:
                val = evaluate(model, ts, validation_data, batch_size=max(batch_size, 256),
                               loss=loss, metrics=metrics, _eval_step=trainer.eval_step,
                               distribution=None if sharded is None else sharded.dist)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if verbose == 2 or (verbose == 1 and validation_data is not None):
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            guard.check()
            if trainer.stop_training:
                break
    except KeyboardInterrupt:
        history.interrupted = True
        ts = trainer.train_state
        if any(l.is_deleted() for l in jax.tree_util.tree_leaves(ts) if isinstance(l, jax.Array)):
            print("fit: interrupted twice, inside a step that had consumed (donated) the weights: "
                  "they are lost; restart from the last checkpoint")
        elif verbose:
            print(f"fit: interrupted; keeping the weights of the last completed step "
                  f"({int(ts.step)}) and the history so far")
    finally:
        guard.stop()
        history.interrupted |= guard.pending   # a Ctrl-C after the last step: still reported
        trainer.interrupt = InterruptGuard()
    trainer.train_state = ts
    history.train_state = ts
    history.compiles = trainer.train_step.compiles
    for cb in cbs:
        cb.on_train_end({})
    return history


class _FirstStepCompile:
    """Compiles ``step`` for the first host batch on a background thread; an AOT warm-up whose
    executable lands in the jit's own cache, so the first real call only runs it.

    The trace and lowering (Python, under the GIL) go first and alone: fit waits for them
    (``lowered()``) before it lowers and compiles the state's init, which then runs while XLA
    compiles the step (C++, GIL released).  A fresh MNIST CNN fit's first step (batch 128,
    2 cores, 4 runs each): 2.05-2.19 s in sequence, 1.74-1.84 s so.  Any failure here is left
    for the real call to raise; a thread-local JAX setting (``with jax.default_device``) the
    thread does not see only costs a second compile, never a wrong result (the warm-up's
    outputs are never used)."""

    def __init__(self, step, state_shapes, batch):
        self._step, self._args = step, (state_shapes, batch)
        self._lowered = threading.Event()
        self._thread = threading.Thread(target=self._compile, name="fit: first step's compile",
                                        daemon=True)
        self._thread.start()

    def _compile(self):
        try:
            lowered = self._step.lower(*self._args)
        except Exception:   # the first call traces (and reports) it again
            return
        finally:
            self._lowered.set()
        try:
            lowered.compile()
        except Exception:
            pass

    def lowered(self):
        self._lowered.wait()

    def join(self):
        self._thread.join()

    @classmethod
    def start(cls, trainer, model, key, spec, arrays, batch_size):
        n = len(arrays[0])
        batch = tuple(jax.ShapeDtypeStruct((min(batch_size, n),) + a.shape[1:], a.dtype)
                      for a in arrays)
        return cls(trainer.train_step, TrainState.shapes(model, trainer.tx, key, spec), batch)


def _host_batches(arrays) -> bool:
    """Whether fit feeds numpy batches, gathered per step on the host, to the plain step, instead
    of slicing a device-resident epoch inside the compiled step.  On XLA:CPU (host memory is
    device memory, and the step runs synchronously in the dispatching call) that measured
    2.86 -> 2.69 ms per MNIST MLP step alone, the CNN's the same (36.1 vs 35.9 ms); elsewhere the
    device-resident epoch saves a host-to-device copy per step.  In fit, same process, 25,600
    examples: MLP 3.27 -> 2.82 ms per step (median), CNN 36.4 vs 36.7 ms."""
    return jax.default_backend() == "cpu" and all(isinstance(a, np.ndarray) for a in arrays)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _epoch_batches(arrays, idx, steps, batch_size):
    """The shuffled epoch as ``(steps, batch, ...)`` arrays: one compiled gather (eager indexing
    dispatched several ops per array, ~0.2 ms per MLP step of a 100-step epoch)."""
    return tuple(a[idx].reshape((steps, batch_size) + a.shape[1:]) for a in arrays)


def _run_epoch(trainer, ts, dev, data, rng, batch_size, shuffle, k, cbs, verbose, epoch, epochs,
               stop_on_nan, sharded=None):
    run = _RunningLogs(every=1 if stop_on_nan else 25)
    bar = None
    if dev is not None:
        n = dev[0].shape[0]
        steps, rem = divmod(n, batch_size)
        total = steps + (rem > 0)
    else:
        total = len(data) if hasattr(data, "__len__") else None
    if verbose == 1:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"Epoch {epoch + 1}/{epochs}", unit="step", leave=True,
                   dynamic_ncols=True)
    want_batch_cb = any(type(cb).on_train_batch_end is not Callback.on_train_batch_end or
                        type(cb).on_train_batch_begin is not Callback.on_train_batch_begin for cb in cbs)

    def after(i, ts_new, logs, size, count=1):
        nonlocal ts
        ts = ts_new
        trainer.train_state = ts
        if run.add(logs, [size] * count):
            run.flush()
            if stop_on_nan and run.first_nonfinite is not None:
                trainer.stop_training = True
                trainer.nan_step = int(ts.step) - run.steps_done + run.first_nonfinite
                if verbose:
                    print(f"fit: non-finite loss at step {trainer.nan_step} of epoch {epoch + 1}; "
                          f"stopping (stop_on_nan=True)")
            if bar is not None:
                bar.set_postfix({kk: f"{v:.4f}" for kk, v in run.means().items()}, refresh=False)
        if want_batch_cb:
            for cb in cbs:
                cb.on_train_batch_end(i, {kk: float(np.asarray(v).ravel()[-1]) for kk, v in logs.items()})
        if bar is not None:
            bar.update(count)
        trainer.interrupt.check()   # Ctrl-C during this step: stop now that it is complete

    try:
        if dev is not None:
            idx = rng.permutation(n) if shuffle else np.arange(n)
            if sharded is None and isinstance(dev[0], np.ndarray):   # host batches (_host_batches)
                full, multi = None, None

                def indexed(ts, _, i):
                    rows = idx[int(i) * batch_size:(int(i) + 1) * batch_size]
                    return trainer.train_step(ts, tuple(a[rows] for a in dev))
            elif sharded is None:
                full = _epoch_batches(dev, idx[: steps * batch_size].astype(np.int32), steps, batch_size)
                indexed, multi = trainer.indexed_step, trainer.multi_step
            else:
                full = sharded.dist.epoch_batches(dev, idx, steps, batch_size) if steps else None
                indexed, multi = sharded.indexed, sharded.multi
            i = 0
            while i < steps and not trainer.stop_training:
                for cb in cbs if want_batch_cb else ():
                    cb.on_train_batch_begin(i)
                if k > 1 and i + k <= steps:
                    ts_new, logs = multi(ts, full, np.int32(i), k)   # a numpy scalar: no eager op
                    after(i + k - 1, ts_new, logs, batch_size, count=k)
                    i += k
                else:
                    ts_new, logs = indexed(ts, full, np.int32(i))
                    after(i, ts_new, logs, batch_size)
                    i += 1
            if rem and not trainer.stop_training:
                if sharded is None:
                    rows = idx[steps * batch_size:]
                    tail = tuple(a[rows] if isinstance(a, np.ndarray) else a[jnp.asarray(rows)]
                                 for a in dev)
                    ts_new, logs = trainer.train_step(ts, tail)
                else:   # padded with zero-weight rows to a multiple of the shard count
                    tail, _ = sharded.dist.global_batch(tuple(a[idx[steps * batch_size:]] for a in dev))
                    ts_new, logs = sharded.step(ts, tail)
                after(steps, ts_new, logs, rem)
        else:
            for i, batch in enumerate(data):
                if trainer.stop_training:
                    break
                for cb in cbs if want_batch_cb else ():
                    cb.on_train_batch_begin(i)
                if sharded is None:   # numpy and jax arrays go into the step as they are
                    batch = tuple(b if isinstance(b, (np.ndarray, jax.Array)) else jnp.asarray(b)
                                  for b in batch)
                    ts_new, logs = trainer.train_step(ts, batch)
                    after(i, ts_new, logs, int(batch[0].shape[0]))
                else:   # a process-local part of the global batch
                    batch, size = sharded.dist.host_local_batch_to_global(tuple(batch))
                    ts_new, logs = sharded.step(ts, batch)
                    after(i, ts_new, logs, size)
        run.flush()
        if bar is not None:
            bar.set_postfix({kk: f"{v:.4f}" for kk, v in run.means().items()})
    finally:
        if bar is not None:
            bar.close()
    return run.means(), ts


def evaluate(model, train_state_or_params, data, *, batch_size: int = 256, loss=None,
             metrics=("accuracy",), state=None, _eval_step=None,
             distribution=None) -> dict[str, float]:
    """Average loss and metrics of ``model`` over ``data = (x, y)`` in inference mode.
    Takes a TrainState, or params (with ``state=`` for stateful models).  With ``distribution``
    each batch is split over the devices (padded with zero-weight rows; the sums stay exact)."""
    _check_positive_int("batch_size", batch_size)
    if isinstance(train_state_or_params, TrainState):
        params, st = train_state_or_params.params, train_state_or_params.state
    else:
        params, st = train_state_or_params, ({} if state is None else state)
    step = _eval_step or make_eval_step(model, loss, metrics=metrics)
    arrays = _as_arrays(data, "evaluate: data")
    n = arrays[0].shape[0]
    totals = None
    dist = _distribution(distribution, "evaluate")
    if dist is not None:
        params, st = dist.put_state(params), dist.put_state(st)
    for s in range(0, n, batch_size):
        if dist is None:
            batch = tuple(jnp.asarray(a[s:s + batch_size]) for a in arrays)
        else:
            batch, _ = dist.global_batch(tuple(np.asarray(a[s:s + batch_size]) for a in arrays))
        sums = step(params, st, batch)
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals.pop("count"))
    return {k: float(v) / count for k, v in totals.items()}


def _distribution(distribution, what):
    if distribution is None:
        return None
    from ..distributed import as_distribution
    return as_distribution(distribution, f"{what}: distribution")


def predict(model, train_state_or_params, x, *, batch_size: int = 256, state=None,
            distribution=None):
    """Model outputs for ``x`` in inference mode, batched, as one numpy array.  With
    ``distribution`` each batch is split over the devices (padded, and the padding dropped)."""
    _check_positive_int("batch_size", batch_size)
    if isinstance(train_state_or_params, TrainState):
        params, st = train_state_or_params.params, train_state_or_params.state
    else:
        params, st = train_state_or_params, ({} if state is None else state)
    step = make_predict(model)
    dist = _distribution(distribution, "predict")
    if dist is not None:
        from ..distributed import pad_batch, to_host
        params, st = dist.put_state(params), dist.put_state(st)
        outs = []
        for s in range(0, x.shape[0], batch_size):
            padded, n = pad_batch((np.asarray(x[s:s + batch_size]),) * 2, dist.num_shards)
            outs.append(to_host(step(params, st, dist.shard_batch(padded[0])))[:n])
        return np.concatenate(outs, axis=0)
    outs = [step(params, st, jnp.asarray(x[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]
    return np.concatenate(jax.device_get(outs), axis=0)
