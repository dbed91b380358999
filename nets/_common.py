"""Shared pieces of the zoo's training entry points (``python -m nets.<name>``).

* :func:`make_parser`: the common flags ``--epochs --batch-size --lr --seed --limit --test-limit
  --data-dir --out --verbose``.
* :func:`load_images`: the bundled MNIST as float32 NHWC arrays, scaled as a model wants
  (``'standard'``: standardised with the training statistics, ``'unit'``: ``[0, 1]``,
  ``'tanh'``: ``[-1, 1]``), optionally zero-padded (in raw-pixel space) to a larger square.
* :func:`fit_classifier`: the supervised path (``functorch_lite.train.fit``) with the initial
  training loss measured before the first step, per-epoch loss lines, the test accuracy and a
  checkpoint.
* :func:`run_epochs`: the loop of the generative models' custom jitted steps: the data moves to
  the device once, each epoch is one seeded permutation gathered on the device, and each step
  slices its batch inside the compiled step (one dispatch a step; the last partial batch of an
  epoch is dropped so the step compiles once).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import functorch_lite as fl
from functorch_lite.core import InterruptGuard
from functorch_lite.datasets import load_mnist, mnist_stats

__all__ = ["positive", "make_parser", "load_images", "fit_classifier", "run_epochs",
           "save_checkpoint", "banner"]


def positive(kind):
    """An argparse type accepting only positive ``kind`` values."""
    def parse(s):
        v = kind(s)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {s}")
        return v
    return parse


def make_parser(prog: str, doc: str, *, epochs: int, batch_size: int, lr: float, out: str,
                limit: int | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the flags every zoo entry point shares."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.strip().splitlines()[0])
    p.add_argument("--epochs", type=positive(int), default=epochs)
    p.add_argument("--batch-size", type=positive(int), default=batch_size)
    p.add_argument("--lr", type=positive(float), default=lr, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=positive(int), default=limit,
                   help="train on the first N examples only (quick runs)")
    p.add_argument("--test-limit", type=positive(int), default=None,
                   help="evaluate on the first N test examples only")
    p.add_argument("--data-dir", default=None,
                   help="directory with the MNIST IDX files (default: $FUNCTORCH_LITE_DATA, then "
                        "the bundled copy)")
    p.add_argument("--out", default=out, help="directory for the checkpoint")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0: final result only, 1: a line per epoch, 2: also a progress bar")
    return p


def load_images(args, *, scale: str = "standard", pad: int = 0):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``: float32 (N, 28 + 2 pad, 28 + 2 pad, 1)
    images and int32 labels, cut to ``args.limit`` / ``args.test_limit``."""
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_dir)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if getattr(args, "test_limit", None):
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]

    def prep(x):
        x = x.astype(np.float32) / 255.0
        if pad:
            x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        if scale == "standard":
            x = (x - mnist_stats[0]) / mnist_stats[1]
        elif scale == "tanh":
            x = x * 2.0 - 1.0
        elif scale != "unit":
            raise ValueError(f"scale: expected 'standard', 'unit' or 'tanh', got {scale!r}")
        return x[..., None]
    return (prep(x_train), y_train.astype(np.int32)), (prep(x_test), y_test.astype(np.int32))


def banner(name: str, model, params=None) -> None:
    """One line: versions, backend, the model (its parameter count when ``params`` is given,
    its configuration otherwise)."""
    what = (f"{sum(p.size for p in jax.tree_util.tree_leaves(params)):,} parameters"
            if params is not None else repr(model))
    print(f"functorch_lite {fl.__version__} | jax {jax.__version__} on {jax.default_backend()} | "
          f"{name}: {what}")


def save_checkpoint(out: str, name: str, tree) -> str:
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.npz")
    fl.checkpoint.save(path, tree)
    return path


class _EpochPrinter(fl.Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.epochs} - " +
              " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items()))


def fit_classifier(name: str, model, args, train, test, *, loss="cross_entropy",
                   metrics=("accuracy",), optimizer=None) -> dict:
    """Train ``model`` with ``fl.fit`` (Adam with a cosine decay to 0 unless ``optimizer`` is
    given) and return ``{'initial_loss', 'history', 'test_loss', 'test_accuracy', 'train_state',
    'checkpoint', 'seconds'}``; ``initial_loss`` is the training-set loss before the first step,
    in inference mode (so for BatchNorm models it uses the initial running statistics 0/1 and
    can be far above the first training batches' loss: compare epochs there)."""
    x_train, y_train = train
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    tx = optimizer if optimizer is not None else optax.adam(optax.cosine_decay_schedule(args.lr, steps))
    spec = jax.ShapeDtypeStruct((args.batch_size,) + x_train.shape[1:], x_train.dtype)
    ts = fl.TrainState.create(model, tx, jax.random.key(args.seed), spec)
    if args.verbose:
        banner(name, model, ts.params)
    initial = fl.evaluate(model, ts, train, loss=loss, metrics=metrics)
    if args.verbose:
        print(f"initial training loss: {initial['loss']:.4f}")
    t0 = time.perf_counter()
    history = fl.fit(model, loss, tx, train, epochs=args.epochs, batch_size=args.batch_size,
                     seed=args.seed, metrics=metrics, train_state=ts,
                     callbacks=[_EpochPrinter(args.epochs)] if args.verbose else (),
                     verbose=1 if args.verbose == 2 else 0)
    seconds = time.perf_counter() - t0
    ts = history.train_state
    result = {"initial_loss": initial["loss"], "history": history.history, "train_state": ts,
              "seconds": seconds}
    if test is not None:
        ev = fl.evaluate(model, ts, test, loss=loss, metrics=metrics)
        result["test_loss"] = ev["loss"]
        if "accuracy" in ev:
            result["test_accuracy"] = ev["accuracy"]
        print(f"test loss: {ev['loss']:.4f}" +
              (f"  test accuracy: {ev['accuracy']:.4f}" if "accuracy" in ev else "") +
              f"  ({seconds:.1f} s, {history.compiles.count} train-step compiles)")
    result["checkpoint"] = save_checkpoint(args.out, name, {
        "params": ts.params, "state": ts.state, "opt_state": ts.opt_state, "step": ts.step})
    if args.verbose:
        print(f"checkpoint saved to {result['checkpoint']}")
    return result


def run_epochs(step: Callable, carry, arrays, *, epochs: int, batch_size: int, seed: int,
               verbose: int = 1, desc: str = "train"):
    """Run ``step(carry, batch) -> (carry, logs)`` over ``arrays`` (a tuple of arrays sharing
    their first axis) for ``epochs`` shuffled epochs of full batches.

    ``step`` is the raw (unjitted) step; it is compiled here once, with the carry donated.
    Returns ``(carry, history)`` where ``history[k]`` lists the per-epoch means of ``logs[k]``.  Randomness inside ``step`` should come
    from a key in ``carry`` (e.g. ``fold_in(key, step_count)``).
    """
    arrays = tuple(arrays)
    n = arrays[0].shape[0]
    batch_size = min(batch_size, n)
    steps = n // batch_size
    dev = tuple(jax.device_put(np.asarray(a)) for a in arrays)
    rng = np.random.default_rng(seed)

    @jax.jit
    def gather(dev, idx):
        return tuple(a[idx].reshape((steps, batch_size) + a.shape[1:]) for a in dev)

    def body(carry, epoch_data, i):
        batch = tuple(jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False) for a in epoch_data)
        return step(carry, batch)
    jitted = jax.jit(body, donate_argnums=0)

    history: dict[str, list[float]] = {}
    # Ctrl-C stops after the current step and keeps its carry (the donated one is gone by then)
    guard = InterruptGuard(f"{desc}: Ctrl-C received; stopping after the current step")
    with guard:
        for epoch in range(epochs):
            carry, stopped = _one_epoch(jitted, gather, dev, carry, rng, n, steps, batch_size,
                                        history, guard, verbose, epoch, epochs, desc)
            if stopped:
                print(f"{desc}: interrupted; keeping the weights of the last completed step "
                      f"and the history of the {len(next(iter(history.values()), []))} completed "
                      f"epochs")
                break
    return carry, history


def _one_epoch(jitted, gather, dev, carry, rng, n, steps, batch_size, history, guard, verbose,
               epoch, epochs, desc):
    idx = jnp.asarray(rng.permutation(n)[: steps * batch_size])
    epoch_data = gather(dev, idx)
    logs = []
    it = range(steps)
    if verbose == 2:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"{desc} {epoch + 1}/{epochs}", unit="step", leave=False)
    for i in it:
        carry, l = jitted(carry, epoch_data, jnp.int32(i))
        logs.append(l)
        if guard.pending:
            guard.pending = False
            return carry, True
    logs = jax.device_get(logs)
    keys = sorted(logs[0], key=lambda k: (k != "loss", k))  # 'loss' first
    means = {k: float(np.mean([l[k] for l in logs])) for k in keys}
    for k, v in means.items():
        history.setdefault(k, []).append(v)
    if verbose:
        print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in means.items()))
    return carry, False
