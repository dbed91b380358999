"""How the MNIST CNN's convolutions are lowered on this backend, measured in one process:

    python -m benchmarks.conv_lowering [--batch 128] [--reps 7]

Variants of the same jitted Adam train step of ``nets.cnn()`` (and its parts), timed
interleaved (best of ``reps`` rounds of 20 calls each):
  default       XLA's default compiler options, ``lax.conv`` for every convolution
  library_lax   the conv options of ``functorch_lite.core.xla`` (XLA:CPU's YNNPACK dots),
                ``lax.conv`` for every convolution (FUNCTORCH_LITE_CONV_LOWERING=lax)
  library       what ships on CPU: those options, and the one-input-channel conv1 as a sum of
                9 shifted windows whose kernel derivative is one patches dot
                (``functorch_lite/layers/shifted_conv.py``)
(Tried before and not shipped: the same forward with lax.conv's own derivatives through the
custom JVP, whose kernel gradient stayed a convolution: 88 ms against 64.5 ms.)
Also the losses of the variants after 3 steps (they must agree to float rounding).
Results: ``benchmarks/results/conv_lowering.{md,json}``.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nets
from functorch_lite.core import xla
from functorch_lite.layers import shifted_conv
from functorch_lite.train.state import TrainState
from functorch_lite.train.step import make_train_step

from .common import write_report


def _time(f, reps, n=20):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            r = f()
        jax.block_until_ready(r)
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e3


def _step_runner(variant, batch):
    """A fresh train step of the CNN compiled with ``variant = (options, lowering)``."""
    options, lowering = variant
    model = nets.cnn()
    step = make_train_step(model, "cross_entropy", optax.adam(1e-3))
    fn = jax.jit(step.raw, donate_argnums=0, compiler_options=options)
    holder = [TrainState.create(model, step.tx, jax.random.key(0),
                                jax.ShapeDtypeStruct(batch[0].shape, batch[0].dtype))]

    def run():
        holder[0], logs = fn(holder[0], batch)
        return logs
    old = os.environ.get("FUNCTORCH_LITE_CONV_LOWERING")
    os.environ["FUNCTORCH_LITE_CONV_LOWERING"] = lowering      # read while tracing
    try:
        run()
    finally:
        os.environ.pop("FUNCTORCH_LITE_CONV_LOWERING")
        if old is not None:
            os.environ["FUNCTORCH_LITE_CONV_LOWERING"] = old
    return run


def _parts(variant, batch_size):
    options, lowering = variant
    k = jax.random.key(0)
    dn = ("NHWC", "HWIO", "NHWC")
    lax_conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
    cfg = ((1, 1), ((1, 1), (1, 1)), (1, 1), jax.lax.conv_dimension_numbers(
        (1, 1, 1, 1), (1, 1, 1, 1), dn))
    out = {}
    for name, cin, cout, hw in (("conv1", 1, 32, 28), ("conv2", 32, 64, 14)):
        x = jax.random.normal(k, (batch_size, hw, hw, cin))
        w = jax.random.normal(k, (3, 3, cin, cout))
        dy = jnp.ones((batch_size, hw, hw, cout))
        conv = (lambda x, w: shifted_conv.conv(x, w, cfg)) if (
            lowering == "auto" and shifted_conv.applies(x, w, groups=1, pads=cfg[1],
                                                        channels_last=True)) else lax_conv
        fns = {"fwd": (lambda x, w, dy, conv=conv: conv(x, w)),
               "kernel grad": (lambda x, w, dy, conv=conv: jax.vjp(lambda w: conv(x, w), w)[1](dy)),
               "input grad": (lambda x, w, dy, conv=conv: jax.vjp(lambda x: conv(x, w), x)[1](dy))}
        for part, f in fns.items():
            jf = jax.jit(f, compiler_options=options)
            out[f"{name} {part}"] = lambda jf=jf, x=x, w=w, dy=dy: jf(x, w, dy)
    return out


def step_args(argv):
    """``--batch`` and ``--reps`` of a step benchmark, and a random MNIST-shaped batch."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    batch = (jnp.asarray(rng.standard_normal((args.batch, 28, 28, 1), dtype=np.float32)),
             jnp.asarray(rng.integers(0, 10, args.batch).astype(np.int32)))
    return args, batch


def interleaved_steps(makers: dict, reps: int):
    """Each ``makers[name]()`` builds a fresh compiled step ``run()``: the loss after 3 steps of a
    fresh one (the variants must agree) and the times of another over ``reps`` interleaved rounds
    (load changes hit every variant alike)."""
    steps, losses = {}, {}
    for name, make in makers.items():
        steps[name] = make()
        fresh = make()                 # its first step ran compiling
        for _ in range(2):
            logs = fresh()
        losses[name] = float(logs["loss"])
    times = {name: [] for name in steps}
    for _ in range(reps):
        for name, run in steps.items():
            times[name].append(_time(run, 1))
    return times, losses


def main(argv=None):
    args, batch = step_args(argv)
    lib = xla.conv_compiler_options()
    variants = {"default": (None, "lax"), "library_lax": (lib, "lax"), "library": (lib, "auto")}
    times, losses = interleaved_steps(
        {name: (lambda o=o: _step_runner(o, batch)) for name, o in variants.items()}, args.reps)
    rows = [{"what": "train step (Adam)", **{n: round(min(t), 2) for n, t in times.items()}}]
    parts = {name: _parts(o, args.batch) for name, o in variants.items()}
    for part in parts["default"]:
        row = {"what": part}
        for name in variants:
            row[name] = round(_time(parts[name][part], args.reps), 2)
        rows.append(row)
    print("losses after 3 steps:", losses)
    write_report("conv_lowering", rows, {"unit": "ms (best of interleaved rounds)", "batch": args.batch,
                                         "losses_after_3_steps": losses, "options": lib})


if __name__ == "__main__":
    main()
