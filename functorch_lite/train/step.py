"""The jitted train and eval steps: value_and_grad -> optax update -> metrics, compiled once."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optim as _optim
from ..core import xla
from ..core.errors import ConfigError
from .state import TrainState

__all__ = ["CompileCounter", "make_train_step", "make_eval_step", "make_predict", "resolve_metrics"]


def _signature(args) -> tuple:
    return tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree_util.tree_leaves(args)
                 if hasattr(a, "shape"))


class CompileCounter:
    """Counts how often a jitted function was traced (= compiled) and says why.

    ``record(args)`` is called from inside the traced body; each new signature is a compile.
    """

    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.reasons: list[str] = []
        self._last = None

    def record(self, *args):
        sig = _signature(args)
        if self._last is None:
            why = "first call"
        else:
            diff = [f"{a} -> {b}" for a, b in zip(self._last, sig) if a != b]
            why = "input shapes/dtypes changed: " + ("; ".join(diff) if diff else "tree structure changed")
        self.count += 1
        self.reasons.append(why)
        self._last = sig

    def __repr__(self):
        return f"CompileCounter({self.name!r}, count={self.count}, reasons={self.reasons})"


def resolve_metrics(metrics) -> list[tuple[str, Callable]]:
    """``['accuracy', fn, ...]`` or ``{'name': fn}`` -> list of (name, fn)."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        return [(n, _metrics.get(f)) for n, f in metrics.items()]
    out = []
    for m in ([metrics] if isinstance(metrics, (str,)) or callable(metrics) else metrics):
        name = m if isinstance(m, str) else getattr(m, "__name__", "metric")
        out.append((name, _metrics.get(m)))
    return out


def _per_example(values):
    """Per-example values from an unreduced loss/metric: element-wise losses (e.g. mse on
    (N, 1) targets) are averaged over every axis but the batch axis, so the mean over examples
    equals the loss's own ``reduction='mean'``."""
    return values if values.ndim <= 1 else values.reshape(values.shape[0], -1).mean(axis=1)


def _weighted_mean(values, weights):
    values = _per_example(values)
    if weights is None:
        return jnp.mean(values)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def _split_batch(batch):
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return batch
    raise ValueError(f"batch: expected (x, y) or (x, y, sample_weight), got a tuple of {len(batch)}")


def _batch_len(x):
    return x.shape[0] if hasattr(x, "shape") else type(x).__name__


def _apply_in_pieces(model, params, state, x, key, chunks):
    """``model.apply(params, state, x, train=True)``, the batch run as ``chunks`` equal pieces
    whose outputs are joined again (``chunks`` from ``xla.train_chunks``: only for per-example
    models, which return the state they were given)."""
    if chunks == 1:
        return model.apply(params, state, x, key=key, train=True)
    n = x.shape[0] // chunks
    outs = [model.apply(params, state, x[i * n:(i + 1) * n], key=key, train=True)[0]
            for i in range(chunks)]
    return jax.tree_util.tree_map(lambda *p: jnp.concatenate(p), *outs), state


def _objective(model, loss_fn, chunks=None):
    """The loss of a batch as a function of params: (params, state, batch, key) -> (loss, aux).

    ``chunks``: into how many pieces the batch goes through the model (None: as
    ``xla.train_chunks`` chooses for the batch size); the loss is the whole batch's."""
    def objective(params, state, batch, key):
        x, y, w = _split_batch(batch)
        if chunks is None:
            k = xla.train_chunks(model, x.shape[0]) if hasattr(x, "shape") else 1
        elif not hasattr(x, "shape") or x.shape[0] % chunks:
            raise ValueError(f"make_train_step: chunks={chunks} expected to divide the batch "
                             f"size, got a batch of {_batch_len(x)} examples")
        else:
            k = chunks
        pred, new_state = _apply_in_pieces(model, params, state, x, key, k)
        per = loss_fn(pred, y, reduction="none")
        return _weighted_mean(per, w), (pred, new_state)
    return objective


def make_train_step(model, loss, optimizer, *, metrics=("accuracy",), jit: bool = True,
                    donate: bool = True, chunks: int | None = None):
    """Build ``train_step(ts, batch) -> (ts, logs)``: value_and_grad with aux, one optax update,
    metrics on the batch, jitted once with the TrainState donated.  ``batch`` is ``(x, y)`` or
    ``(x, y, sample_weight)``; ``logs`` holds the batch ``loss`` and each metric.

    ``chunks``: run each batch through the model in this many equal pieces inside the one step
    (same update up to float rounding); ``None`` lets ``core.xla.train_chunks`` choose (on CPU,
    per-example convolutional models in pieces of 32 examples; everything else whole).

    The returned function has ``.compiles`` (a CompileCounter) and ``.tx`` (the optax optimizer).
    """
    loss_fn = _losses.get(loss)
    tx = _optim.get(optimizer)
    metric_fns = resolve_metrics(metrics)
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)
                               or chunks < 1):
        raise ValueError(f"make_train_step: chunks expected a positive int or None, got "
                         f"{chunks!r}")
    if chunks is not None and chunks > 1 and not xla.splittable(model):
        raise ConfigError(
            f"make_train_step: chunks={chunks} expected a model that computes every example on "
            f"its own and draws no randomness (each layer per_example, no Dropout), got "
            f"{type(model).__name__} (a BatchNorm's statistics, a Dropout's mask or an unknown "
            f"function would change with the pieces)")
    objective = _objective(model, loss_fn, chunks)
    counter = CompileCounter("train_step")

    def train_step(ts: TrainState, batch):
        counter.record(batch)
        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (value, (pred, new_state)), grads = grad_fn(ts.params, ts.state, batch, ts.step_key())
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        x, y, w = _split_batch(batch)
        logs = {"loss": value}
        for name, fn in metric_fns:
            logs[name] = _weighted_mean(fn(pred, y, reduction="none"), w)
        return TrainState(params, new_state, opt_state, ts.step + 1, ts.rng), logs

    if not jit:
        return _Step(train_step, counter, tx, train_step, xla.uses_convolution(model))
    return _compiled(model, train_step, counter, tx, donate_argnums=0 if donate else ())


def _compiled(model, body, counter, tx, **jit_kwargs):
    """``body`` jitted with the compiler options chosen for ``model`` (core/xla.py)."""
    conv = xla.uses_convolution(model)
    return _Step(xla.jit(body, convolutions=conv, **jit_kwargs), counter, tx, body, conv)


class _Step:
    """A jitted step with its compile counter, the optax optimizer, the raw (unjitted) body and
    whether the model has convolutions (jit ``raw`` again with ``xla.jit(..., convolutions=)``)."""

    def __init__(self, fn, counter, tx, raw, convolutions=False):
        self._fn, self.compiles, self.tx, self.raw = fn, counter, tx, raw
        self.convolutions = convolutions

    def __call__(self, *args):
        return self._fn(*args)

    def lower(self, *args):
        return self._fn.lower(*args)


def make_eval_step(model, loss, *, metrics=("accuracy",)):
    """``eval_step(params, state, batch) -> sums``: the summed loss and metrics of a batch and
    its example count (sums, so partial batches average exactly); inference mode."""
    loss_fn = _losses.get(loss) if loss is not None else None
    metric_fns = resolve_metrics(metrics)
    counter = CompileCounter("eval_step")

    def eval_step(params, state, batch):
        counter.record(batch)
        x, y, w = _split_batch(batch)
        pred, _ = model.apply(params, state, x, train=False)
        w = jnp.ones((x.shape[0],), jnp.float32) if w is None else w
        sums = {"count": jnp.sum(w)}
        if loss_fn is not None:
            sums["loss"] = jnp.sum(_per_example(loss_fn(pred, y, reduction="none")) * w)
        for name, fn in metric_fns:
            sums[name] = jnp.sum(_per_example(fn(pred, y, reduction="none")) * w)
        return sums

    return _compiled(model, eval_step, counter, None)


def make_predict(model):
    """``predict(params, state, x) -> y`` in inference mode, jitted."""
    counter = CompileCounter("predict")

    def predict(params, state, x):
        counter.record(x)
        return model.apply(params, state, x, train=False)[0]

    return _compiled(model, predict, counter, None)
