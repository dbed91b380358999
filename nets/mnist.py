"""The MNIST training job: ``python -m nets.mnist [--model cnn] [--epochs 3] ...``.

Trains on the bundled MNIST (no network needed), shows a progress bar per epoch, prints the
loss/accuracy of each epoch and the final test accuracy, and saves a checkpoint (params, state,
optimizer state) to ``--out``.  The defaults reach >= 99.0% test accuracy with the CNN in 3 epochs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np
import optax

import functorch_lite as fl
from functorch_lite.datasets import load_mnist, mnist_stats

from . import cnn, lenet5, mlp

MODELS = {"mlp": mlp, "cnn": cnn, "lenet5": lenet5}


def prepare(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1), scaled to [0, 1] and standardised."""
    mean, std = mnist_stats
    return ((x.astype(np.float32) / 255.0 - mean) / std)[..., None]


def _positive(kind):
    def parse(s):
        v = kind(s)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {s}")
        return v
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m nets.mnist", description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="cnn")
    p.add_argument("--epochs", type=_positive(int), default=3)
    p.add_argument("--batch-size", type=_positive(int), default=128)
    p.add_argument("--lr", type=_positive(float), default=1e-3, help="peak Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None,
                   help="directory with the four MNIST IDX files (default: $FUNCTORCH_LITE_DATA, "
                        "then the bundled copy)")
    p.add_argument("--out", default="runs/mnist", help="directory for the checkpoint")
    p.add_argument("--limit", type=_positive(int), default=None,
                   help="train on the first N examples only (quick runs)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_dir)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train, x_test = prepare(x_train), prepare(x_test)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)

    model = MODELS[args.model]()
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    # Adam with a cosine decay to 0 over the run: the learning rate is an array in the
    # optimizer state, so the schedule never recompiles.
    optimizer = optax.adam(optax.cosine_decay_schedule(args.lr, steps))
    print(f"functorch_lite {fl.__version__} | jax {jax.__version__} on {jax.default_backend()} | "
          f"model {args.model}: {model}")
    t0 = time.perf_counter()
    history = fl.fit(model, "cross_entropy", optimizer, (x_train, y_train), epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed, validation_data=(x_test, y_test),
                     verbose=args.verbose)
    seconds = time.perf_counter() - t0
    ts = history.train_state
    test = fl.evaluate(model, ts, (x_test, y_test), loss="cross_entropy")
    print(f"test accuracy: {test['accuracy']:.4f}  test loss: {test['loss']:.4f}  "
          f"({seconds:.1f} s, {history.compiles.count} train-step compiles)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.model}.npz")
    fl.checkpoint.save(path, {"params": ts.params, "state": ts.state, "opt_state": ts.opt_state,
                              "step": ts.step})
    print(f"checkpoint saved to {path}")
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "checkpoint": path,
            "history": history.history, "seconds": seconds}


if __name__ == "__main__":
    main(sys.argv[1:])
