"""Training throughput of ``functorch_lite.keras`` ``model.fit`` against (a) the functional
``functorch_lite.fit``, (b) hand-written raw JAX + optax loops -- ``raw_jax`` slices each batch
inside the jitted step (``benchmarks.mnist_train``), ``raw_jax_batches`` passes it to the step as
an argument -- and (c) Keras 3 on its JAX backend,
on the MNIST CNN and MLP of ``benchmarks.mnist_train`` (same layers, Adam 1e-3, batch 128,
shuffled every epoch, sparse cross-entropy from logits; the Keras models also compute accuracy).

    python -m benchmarks.keras_adapter [--epochs 3] [--limit 12800] [--rounds 2]
                                       [--keras-path DIR]

Keras 3 runs in a subprocess with ``KERAS_BACKEND=jax`` (``--keras-path`` is prepended to its
``PYTHONPATH``, e.g. a ``pip install --target`` directory); when it cannot be imported that column
is skipped with a message.  Throughput is samples/s over the epochs after the first (which
compiles), median over all rounds; the rounds interleave the contenders so that machine noise
hits them alike.  Results go to ``benchmarks/results/keras_adapter.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from .common import block, median, write_report

SETUPS = ("cnn", "mlp")


def _data(limit, batch_size):
    from functorch_lite.datasets import load_mnist
    (x, y), _ = load_mnist()
    n = (min(limit, len(x)) // batch_size) * batch_size  # whole batches only, for every contender
    return (x[:n].astype("float32") / 255.0)[..., None], y[:n].astype("int32")


def build_keras_model(keras, name):
    """The same network in any Keras-like API (functorch_lite.keras or Keras 3)."""
    L = keras.layers
    if name == "cnn":
        body = [L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)]
    else:
        body = [L.Flatten(), L.Dense(512, activation="relu"), L.Dense(512, activation="relu"),
                L.Dense(10)]
    model = keras.Sequential([keras.Input(shape=(28, 28, 1))] + body)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def run_keras_like(keras, name, x, y, batch_size, epochs, sync):
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            sync(self.model, logs)  # wait for the epoch's work: dispatch is asynchronous
            times.append(time.perf_counter() - self.t0)

    model = build_keras_model(keras, name)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
              callbacks=[Timer()])
    return times


def run_adapter(name, x, y, batch_size, epochs):
    import functorch_lite.keras as keras
    return run_keras_like(keras, name, x, y, batch_size, epochs,
                          lambda m, logs: block(m.params))


def run_functional(name, x, y, batch_size, epochs):
    import nets
    from .mnist_train import run_fit
    times, _ = run_fit(nets.cnn() if name == "cnn" else nets.mlp(), x, y, batch_size, epochs)
    return times


def run_raw(name, x, y, batch_size, epochs):
    from .mnist_train import raw_cnn, raw_mlp
    from .mnist_train import run_raw as _run_raw
    times, _ = _run_raw(*(raw_cnn() if name == "cnn" else raw_mlp()), x, y, batch_size, epochs)
    return times


def run_raw_batches(name, x, y, batch_size, epochs, lr=1e-3, seed=0):
    """Raw JAX + optax with the batch passed to the jitted step as an argument (the epoch is
    permuted and reshaped on the device once; each step slices its batch outside the step)."""
    import jax
    import jax.numpy as jnp
    import optax
    from .mnist_train import raw_cnn, raw_mlp
    init, apply = raw_cnn() if name == "cnn" else raw_mlp()
    tx = optax.adam(lr)
    params = init(jax.random.key(seed))
    opt_state = tx.init(params)

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

    @jax.jit
    def epoch_batches(xd, yd, idx):
        steps = idx.shape[0] // batch_size
        return (xd[idx].reshape((steps, batch_size) + xd.shape[1:]),
                yd[idx].reshape((steps, batch_size)))

    take = jax.jit(lambda xs, ys, i: (xs[i], ys[i]))

    def step(p, o, xb, yb):
        l, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, l
    step = jax.jit(step, donate_argnums=(0, 1))
    xd, yd = jax.device_put(x), jax.device_put(y)
    rng = np.random.default_rng(seed)
    steps = len(x) // batch_size
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        xs, ys = epoch_batches(xd, yd, jnp.asarray(rng.permutation(len(x))[:steps * batch_size]))
        for i in range(steps):
            params, opt_state, _ = step(params, opt_state, *take(xs, ys, i))
        block(params)
        times.append(time.perf_counter() - t0)
    return times


def run_keras3(name, limit, batch_size, epochs, keras_path):
    """Keras 3 (JAX backend) in a subprocess; returns (times, version) or (None, why)."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (keras_path, root, env.get("PYTHONPATH"))
                                        if p)
    cmd = [sys.executable, "-m", "benchmarks.keras_adapter", "--worker-keras3", name,
           "--limit", str(limit), "--batch-size", str(batch_size), "--epochs", str(epochs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    out = json.loads(lines[-1])
    return (out["times"], out["version"]) if "times" in out else (None, out["skip"])


def _keras3_worker(name, limit, batch_size, epochs):
    try:
        import keras
    except ImportError as e:
        print(json.dumps({"skip": f"Keras 3 is not installed ({e})"}))
        return
    if not keras.__version__.startswith("3") or keras.backend.backend() != "jax":
        print(json.dumps({"skip": f"need Keras 3 on JAX, got {keras.__version__} on "
                                  f"{keras.backend.backend()}"}))
        return
    x, y = _data(limit, batch_size)
    # the epoch logs are computed from the last step's state: reading them waits for it
    times = run_keras_like(keras, name, x, y, batch_size, epochs,
                           lambda m, logs: [float(v) for v in (logs or {}).values()])
    print(json.dumps({"times": times, "version": keras.__version__}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=12800, help="training examples per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--keras-path", default=None, help="directory holding Keras 3 (PYTHONPATH)")
    ap.add_argument("--worker-keras3", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_keras3:
        return _keras3_worker(args.worker_keras3, args.limit, args.batch_size, args.epochs)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch compiles and is not timed)")
    x, y = _data(args.limit, args.batch_size)
    n = len(x)
    rows, keras3_note = [], None
    for name in args.models.split(","):
        steady = {"keras_adapter": [], "functional_fit": [], "raw_jax": [],
                  "raw_jax_batches": [], "keras3": []}
        first = {k: [] for k in steady}
        for _ in range(args.rounds):
            for label, fn in (("keras_adapter", run_adapter), ("functional_fit", run_functional),
                              ("raw_jax", run_raw), ("raw_jax_batches", run_raw_batches)):
                t = fn(name, x, y, args.batch_size, args.epochs)
                first[label].append(t[0])
                steady[label] += t[1:]
            t, info = run_keras3(name, args.limit, args.batch_size, args.epochs, args.keras_path)
            if t is None:
                keras3_note = f"Keras 3 skipped: {info}"
            else:
                keras3_note = f"Keras {info} (JAX backend)"
                first["keras3"].append(t[0])
                steady["keras3"] += t[1:]
        sps = {k: (n / median(v) if v else None) for k, v in steady.items()}
        best_raw = max(sps["raw_jax"], sps["raw_jax_batches"])
        row = {"model": name, **{f"{k}_samples_per_s": v for k, v in sps.items() if v},
               "adapter_over_best_raw": sps["keras_adapter"] / best_raw,
               "adapter_over_functional": sps["keras_adapter"] / sps["functional_fit"]}
        if sps["keras3"]:
            row["adapter_over_keras3"] = sps["keras_adapter"] / sps["keras3"]
        row.update({f"first_epoch_s_{k}": median(v) for k, v in first.items() if v})
        rows.append(row)
    print(keras3_note)
    write_report("keras_adapter", rows, {"args": {k: v for k, v in vars(args).items()
                                                  if k != "worker_keras3"},
                                         "samples_per_epoch": n, "keras3": keras3_note})


if __name__ == "__main__":
    main()
