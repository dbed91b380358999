"""Steady-state training throughput of ``nets.cnn`` and ``nets.mlp`` through ``fl.fit`` against a
hand-written raw JAX + optax jitted step of the same network, in the same process.

    python -m benchmarks.mnist_train [--epochs 3] [--limit 12800]

Both sides get the same advantages: data resident on the device, one permutation gather per
epoch, the batch sliced inside the compiled step, the state donated.  Throughput is the median
over the epochs after the first (which includes compilation), in samples/s.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import functorch_lite as fl
import nets

from .common import block, median, mnist, write_report


# ---------------------------------------------------------------- raw JAX baselines
def _dense_init(key, fan_in, fan_out):
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return {"w": jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -lim, lim),
            "b": jnp.zeros((fan_out,), jnp.float32)}


def _conv_init(key, kh, kw, cin, cout):
    lim = np.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
    return {"w": jax.random.uniform(key, (kh, kw, cin, cout), jnp.float32, -lim, lim),
            "b": jnp.zeros((cout,), jnp.float32)}


def raw_mlp():
    def init(key):
        k = jax.random.split(key, 3)
        return [_dense_init(k[0], 784, 512), _dense_init(k[1], 512, 512), _dense_init(k[2], 512, 10)]

    def apply(p, x):
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ p[0]["w"] + p[0]["b"])
        x = jax.nn.relu(x @ p[1]["w"] + p[1]["b"])
        return x @ p[2]["w"] + p[2]["b"]
    return init, apply


def raw_cnn():
    def init(key):
        k = jax.random.split(key, 4)
        return [_conv_init(k[0], 3, 3, 1, 32), _conv_init(k[1], 3, 3, 32, 64),
                _dense_init(k[2], 3136, 128), _dense_init(k[3], 128, 10)]

    def pool(x):  # 2x2/2 max pool as reshape + max
        n, h, w, c = x.shape
        return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    def conv(x, p):
        y = jax.lax.conv_general_dilated(x, p["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + p["b"]

    def apply(p, x):
        x = pool(jax.nn.relu(conv(x, p[0])))
        x = pool(jax.nn.relu(conv(x, p[1])))
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ p[2]["w"] + p[2]["b"])
        return x @ p[3]["w"] + p[3]["b"]
    return init, apply


def run_raw(init, apply, x, y, batch_size, epochs, lr=1e-3, seed=0):
    tx = optax.adam(lr)
    params = init(jax.random.key(seed))
    opt_state = tx.init(params)

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

    def step(carry, xs, ys, i):
        p, o = carry
        l, g = jax.value_and_grad(loss_fn)(p, xs[i], ys[i])
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), l
    step = jax.jit(step, donate_argnums=0)

    xd, yd = jax.device_put(x), jax.device_put(y)
    rng = np.random.default_rng(seed)
    steps = len(x) // batch_size
    times, carry = [], (params, opt_state)
    for _ in range(epochs):
        t0 = time.perf_counter()
        idx = jnp.asarray(rng.permutation(len(x))[: steps * batch_size])
        xs = xd[idx].reshape((steps, batch_size) + x.shape[1:])
        ys = yd[idx].reshape((steps, batch_size))
        for i in range(steps):
            carry, l = step(carry, xs, ys, i)
        block(carry)
        times.append(time.perf_counter() - t0)
    return times, steps * batch_size


class _EpochTimer(fl.Callback):
    def __init__(self):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        block(self.trainer.train_state)
        self.times.append(time.perf_counter() - self.t0)


def run_fit(model, x, y, batch_size, epochs, lr=1e-3, seed=0):
    n = (len(x) // batch_size) * batch_size  # same number of full steps as the raw loop
    timer = _EpochTimer()
    fl.fit(model, "cross_entropy", optax.adam(lr), (x[:n], y[:n]), epochs=epochs,
           batch_size=batch_size, seed=seed, verbose=0, callbacks=[timer])
    return timer.times, n


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=12800, help="training examples per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)
    (x, y), _ = mnist(args.limit)
    rows = []
    for name, model, raw in (("mlp", nets.mlp(), raw_mlp()), ("cnn", nets.cnn(), raw_cnn())):
        # Interleave the two so that machine noise hits both alike.
        t_raw, n = run_raw(*raw, x, y, args.batch_size, args.epochs)
        t_fit, _ = run_fit(model, x, y, args.batch_size, args.epochs)
        raw_sps, fit_sps = n / median(t_raw[1:]), n / median(t_fit[1:])
        rows.append({"model": name, "raw_jax_samples_per_s": raw_sps, "fl_fit_samples_per_s": fit_sps,
                     "ratio_fit_over_raw": fit_sps / raw_sps,
                     "first_epoch_s_raw": t_raw[0], "first_epoch_s_fit": t_fit[0]})
    write_report("mnist_train", rows, {"args": vars(args)})


if __name__ == "__main__":
    main()
