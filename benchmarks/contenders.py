"""One contender of the benchmark suite, run in its own process:

    python -m benchmarks.contenders NAME --model {cnn,mlp} --epochs 3 --out result.json

Each contender trains the same network (MLP 784-512-512-10 or the MNIST CNN: two 3x3 'same'
convs 32/64, 2x2 max pools, dense 128, dense 10) with Adam(1e-3), batch 128, float32, on the
bundled MNIST, and reports: first-step latency (compile + 1 step), steady-state samples/s per
full epoch (median over the epochs after the first), test accuracy after the first epoch, peak
RSS. The torch-style and Keras-style contenders run THE SAME source text against the real
library and against functorch_lite's adapter.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

BATCH = 128


def _data(limit=None):
    from functorch_lite.datasets import load_mnist
    from nets.mnist import prepare
    (xt, yt), (xs, ys) = load_mnist()
    if limit:
        xt, yt = xt[:limit], yt[:limit]
    return (prepare(xt), yt.astype(np.int64)), (prepare(xs), ys.astype(np.int64))


class Clock:
    """Epoch times (blocking at each epoch end) and the first step's latency."""

    def __init__(self):
        self.epochs, self.first_step, self.acc_after_first = [], None, None


# ------------------------------------------------------------------ torch-style (real or adapter)
def torch_style(torch, nn, F, model_name, x, y, xs, ys, epochs, clock):
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)

        def forward(self, x):
            x = torch.flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.fc1, self.fc2 = nn.Linear(3136, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))

    torch.manual_seed(0)
    model = MLP() if model_name == "mlp" else CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    steps = len(x) // BATCH
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(x)))
        t0 = time.perf_counter()
        for i in range(steps):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            data, target = xt[idx], yt[idx]
            opt.zero_grad()
            loss = F.cross_entropy(model(data), target)
            loss.backward()
            opt.step()
            if clock.first_step is None:
                loss.item()
                clock.first_step = time.perf_counter() - t0
        loss.item()
        clock.epochs.append(time.perf_counter() - t0)
        if epoch == 0:
            model.eval()
            correct = 0
            with torch.no_grad():
                xe = torch.from_numpy(np.ascontiguousarray(xs.transpose(0, 3, 1, 2)))
                for s in range(0, len(xs), 1000):
                    pred = model(xe[s:s + 1000]).argmax(dim=1)
                    correct += int((pred == torch.from_numpy(ys[s:s + 1000])).sum().item())
            clock.acc_after_first = correct / len(xs)
    return model


def run_torch(real: bool, model_name, x, y, xs, ys, epochs, clock):
    if real:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        torch.set_num_threads(os.cpu_count())
    else:
        import functorch_lite.torch as torch
        import functorch_lite.torch.nn as nn
        import functorch_lite.torch.nn.functional as F
    torch_style(torch, nn, F, model_name, x, y, xs, ys, epochs, clock)


# ------------------------------------------------------------------ keras-style (real or adapter)
def run_keras(real: bool, model_name, x, y, xs, ys, epochs, clock):
    if real:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras
    else:
        import functorch_lite.keras as keras
    L = keras.layers

    def build():
        keras.utils.set_random_seed(0) if hasattr(keras.utils, "set_random_seed") else None
        if model_name == "mlp":
            model = keras.Sequential([keras.Input(shape=(28, 28, 1)), L.Flatten(),
                                      L.Dense(512, activation="relu"),
                                      L.Dense(512, activation="relu"), L.Dense(10)])
        else:
            model = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                                      L.Conv2D(32, 3, padding="same", activation="relu"),
                                      L.MaxPooling2D(2),
                                      L.Conv2D(64, 3, padding="same", activation="relu"),
                                      L.MaxPooling2D(2),
                                      L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    # First-step latency: a fresh model's fit of exactly one batch (build, trace, compile, one
    # step), as for the functional fit.  The timed fit has epoch-level hooks only: a hook after
    # every batch makes both Keras 3 and the adapter bring that batch's logs to the host before
    # the next step starts (Keras 3 dispatches batch hooks asynchronously only when no callback
    # overrides them), which no plain Keras script pays.
    t0 = time.perf_counter()
    build().fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    clock.first_step = time.perf_counter() - t0
    model = build()
    n = (len(x) // BATCH) * BATCH

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            clock.epochs.append(time.perf_counter() - self.t0)
            if epoch == 0:
                clock.acc_after_first = float(self.model.evaluate(xs, ys, batch_size=1000, verbose=0)[1])
    model.fit(x[:n], y[:n], batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[T()])


# ------------------------------------------------------------------ functional core and raw JAX
def run_fl_fit(model_name, x, y, xs, ys, epochs, clock):
    import jax
    import optax
    import functorch_lite as fl
    import nets
    model = nets.mlp() if model_name == "mlp" else nets.cnn()
    n = (len(x) // BATCH) * BATCH
    # First-step latency: a fresh fit of exactly one step (trace + compile + run).
    t0 = time.perf_counter()
    h = fl.fit(model, "cross_entropy", optax.adam(1e-3), (x[:BATCH], y[:BATCH]), batch_size=BATCH, verbose=0)
    jax.block_until_ready(h.train_state.params)
    clock.first_step = time.perf_counter() - t0

    class T(fl.Callback):   # epoch-level hooks only: fit then never syncs inside an epoch
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            jax.block_until_ready(self.trainer.train_state.params)
            clock.epochs.append(time.perf_counter() - self.t0)
            if epoch == 0:
                clock.acc_after_first = fl.evaluate(model, self.trainer.train_state, (xs, ys),
                                                    batch_size=1000)["accuracy"]
    fl.fit(model, "cross_entropy", optax.adam(1e-3), (x[:n], y[:n]), epochs=epochs, batch_size=BATCH,
           verbose=0, callbacks=[T()])


def run_raw(model_name, x, y, xs, ys, epochs, clock, scan=False):
    import jax
    import jax.numpy as jnp
    import optax
    from .mnist_train import raw_cnn, raw_mlp
    init, apply = raw_mlp() if model_name == "mlp" else raw_cnn()
    tx = optax.adam(1e-3)
    params = init(jax.random.key(0))
    carry = (params, tx.init(params))

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

    def one(carry, xb, yb):
        p, o = carry
        l, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), l

    step = jax.jit(lambda c, xs_, ys_, i: one(c, xs_[i], ys_[i]), donate_argnums=0)
    epoch_scan = jax.jit(lambda c, xs_, ys_: jax.lax.scan(lambda c, b: one(c, *b), c, (xs_, ys_)),
                         donate_argnums=0)
    xd, yd = jax.device_put(x), jax.device_put(y.astype(np.int32))
    steps = len(x) // BATCH
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        idx = jnp.asarray(rng.permutation(len(x))[: steps * BATCH])
        xe = xd[idx].reshape((steps, BATCH) + x.shape[1:])
        ye = yd[idx].reshape((steps, BATCH))
        if scan:
            carry, l = epoch_scan(carry, xe, ye)
            jax.block_until_ready(l)
            if clock.first_step is None:
                clock.first_step = time.perf_counter() - t0   # the whole first epoch, compile included
        else:
            for i in range(steps):
                carry, l = step(carry, xe, ye, i)
                if clock.first_step is None:
                    jax.block_until_ready(l)
                    clock.first_step = time.perf_counter() - t0
        jax.block_until_ready(carry)
        clock.epochs.append(time.perf_counter() - t0)
        if epoch == 0:
            logits = jax.jit(apply)(carry[0], jnp.asarray(xs))
            clock.acc_after_first = float((np.asarray(logits).argmax(-1) == ys).mean())


# ------------------------------------------------------------------ anchors: Flax NNX, Equinox
def run_flax(model_name, x, y, xs, ys, epochs, clock):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1, self.l2, self.l3 = nnx.Linear(784, 512, rngs=rngs), nnx.Linear(512, 512, rngs=rngs), nnx.Linear(512, 10, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(x.shape[0], -1)
            return self.l3(jax.nn.relu(self.l2(jax.nn.relu(self.l1(x)))))

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(1, 32, (3, 3), padding="SAME", rngs=rngs)
            self.c2 = nnx.Conv(32, 64, (3, 3), padding="SAME", rngs=rngs)
            self.l1, self.l2 = nnx.Linear(3136, 128, rngs=rngs), nnx.Linear(128, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.max_pool(jax.nn.relu(self.c1(x)), (2, 2), (2, 2))
            x = nnx.max_pool(jax.nn.relu(self.c2(x)), (2, 2), (2, 2))
            return self.l2(jax.nn.relu(self.l1(x.reshape(x.shape[0], -1))))

    model = (MLP if model_name == "mlp" else CNN)(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    xd, yd = jax.device_put(x), jax.device_put(y.astype(np.int32))
    steps = len(x) // BATCH
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        idx = jnp.asarray(rng.permutation(len(x))[: steps * BATCH])
        xe, ye = xd[idx], yd[idx]
        for i in range(steps):
            loss = step(model, optimizer, xe[i * BATCH:(i + 1) * BATCH], ye[i * BATCH:(i + 1) * BATCH])
            if clock.first_step is None:
                jax.block_until_ready(loss)
                clock.first_step = time.perf_counter() - t0
        jax.block_until_ready(loss)
        clock.epochs.append(time.perf_counter() - t0)
        if epoch == 0:
            clock.acc_after_first = float((np.asarray(nnx.jit(lambda m, a: m(a))(model, jnp.asarray(xs))).argmax(-1) == ys).mean())


def run_equinox(model_name, x, y, xs, ys, epochs, clock):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax
    k = jax.random.split(jax.random.key(0), 4)
    if model_name == "mlp":
        net = eqx.nn.MLP(784, 10, 512, 2, activation=jax.nn.relu, key=k[0])
        fwd = lambda m, xb: jax.vmap(m)(xb.reshape(xb.shape[0], -1))
    else:
        net = [eqx.nn.Conv2d(1, 32, 3, padding=1, key=k[0]), eqx.nn.Conv2d(32, 64, 3, padding=1, key=k[1]),
               eqx.nn.Linear(3136, 128, key=k[2]), eqx.nn.Linear(128, 10, key=k[3])]
        pool = eqx.nn.MaxPool2d(2, 2)

        def one(m, img):  # img (1, 28, 28) channels-first, as Equinox expects
            h = pool(jax.nn.relu(m[0](img)))
            h = pool(jax.nn.relu(m[1](h)))
            return m[3](jax.nn.relu(m[2](h.reshape(-1))))
        fwd = lambda m, xb: jax.vmap(lambda im: one(m, im))(jnp.transpose(xb, (0, 3, 1, 2)))
    tx = optax.adam(1e-3)
    opt_state = tx.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit(donate="all-except-first")
    def step(xb, net, opt_state, yb):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(fwd(m, xb), yb).mean()
        loss, grads = eqx.filter_value_and_grad(loss_fn)(net)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), opt_state, loss

    xd, yd = jax.device_put(x), jax.device_put(y.astype(np.int32))
    steps = len(x) // BATCH
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        idx = jnp.asarray(rng.permutation(len(x))[: steps * BATCH])
        xe, ye = xd[idx], yd[idx]
        for i in range(steps):
            net, opt_state, loss = step(xe[i * BATCH:(i + 1) * BATCH], net, opt_state, ye[i * BATCH:(i + 1) * BATCH])
            if clock.first_step is None:
                jax.block_until_ready(loss)
                clock.first_step = time.perf_counter() - t0
        jax.block_until_ready(loss)
        clock.epochs.append(time.perf_counter() - t0)
        if epoch == 0:
            logits = eqx.filter_jit(fwd)(net, jnp.asarray(xs))
            clock.acc_after_first = float((np.asarray(logits).argmax(-1) == ys).mean())


def run_fl_fit_lax_conv(*a):
    """``fl_fit`` with every convolution left to ``lax.conv`` (layers/shifted_conv.py off): the
    A/B of the CPU conv lowering, in the same suite run."""
    os.environ["FUNCTORCH_LITE_CONV_LOWERING"] = "lax"
    run_fl_fit(*a)


CONTENDERS = {
    "raw_jax_step": lambda *a: run_raw(*a, scan=False),
    "raw_jax_scan": lambda *a: run_raw(*a, scan=True),
    "fl_fit": run_fl_fit,
    "fl_fit_lax_conv": run_fl_fit_lax_conv,
    "fl_keras": lambda *a: run_keras(False, *a),
    "fl_torch": lambda *a: run_torch(False, *a),
    "keras3_jax": lambda *a: run_keras(True, *a),
    "torch_eager": lambda *a: run_torch(True, *a),
    "flax_nnx": run_flax,
    "equinox": run_equinox,
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(CONTENDERS))
    ap.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    (x, y), (xs, ys) = _data(args.limit)
    clock = Clock()
    t0 = time.perf_counter()
    CONTENDERS[args.name](args.model, x, y, xs, ys, args.epochs, clock)
    n = (len(x) // BATCH) * BATCH
    steady = clock.epochs[1:] or clock.epochs
    result = {"name": args.name, "model": args.model, "epochs": args.epochs, "examples_per_epoch": n,
              "first_step_s": clock.first_step, "epoch_s": clock.epochs,
              "samples_per_s": n / float(np.median(steady)),
              "test_accuracy_after_epoch_1": clock.acc_after_first,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "wall_s": time.perf_counter() - t0}
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
