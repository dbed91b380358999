"""Alternatives to what ships for the MNIST CNN's train step on XLA:CPU, measured in one process:

    python -m benchmarks.step_variants [--batch 128] [--reps 7]

The record behind the Performance issue's missed "60% of matmul peak" target: each row is a
change that could have made the step faster, timed interleaved with the shipped step (best of
``reps`` rounds of 20 calls).  The check column: for a step, the loss after 3 steps from the same
init (the step variants compute the same function, so the losses must agree to float rounding);
for a convolution part, its GFLOP/s; for a kernel gradient, its error against ``lax``.

Train step (``make_train_step(nets.cnn(), ...)``, the fit path, batch pieces included):
  shipped               what ``fit`` compiles (``core.xla.conv_compiler_options()``)
  relu_after_pool       Conv -> MaxPool -> relu instead of Conv -> relu -> MaxPool: the same values
                        and gradients (relu is monotone), the relu's mask at a quarter of the size
  pool_mask_recomputed  the max pool's first-maximum index without its integer remainder, which
                        XLA:CPU then recomputes for every element of the backward's mask instead
                        of writing it once per window in the forward (``layers/pool.py``)
  pool_mask_argmax      that mask from one ``argmax`` reduce over each window instead of the
                        chain of selects
  ynn_convolution       also hand the convolutions themselves to YNNPACK
                        (``LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION``)
  onednn                ``xla_cpu_use_onednn``
  concurrency_scheduler ``xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED``
  conv2_patches_kgrad   conv2 through ``layers/shifted_conv.py``'s custom JVP with ``lax.conv``
                        as its forward, so its kernel gradient is one ``patches^T @ g`` library dot
                        (which XLA:CPU runs beside the other piece's, unlike a convolution)
  pieces_1, pieces_2    the batch in 1 or 2 pieces instead of the 4 ``fit`` uses at batch 128
                        (``core.xla.train_chunks``)
conv2's parts (one batch piece: forward, input_grad, kernel_grad) with every thread of the process
pinned to one core, interleaved with the same call on all cores: what each gains from the second
core (Linux only; ``xla_cpu_multi_thread_eigen=False`` changes nothing for XLA:CPU's convolutions
in jaxlib 0.10.2: conv2's forward ran at 1.65 ms either way).  Not the whole step: with XLA's
thread pools squeezed onto one core its fusions and library dots wait on each other (2.0x the
time, where a process started on one core, so with one thread per pool, takes 1.56x)
conv2's kernel gradient alone (one batch piece: ``--batch // xla.MAX_CHUNKS`` examples,
14x14x32 -> 64):
  lax                   what ships: the transpose of ``lax.conv`` (an XLA:CPU convolution)
  patches_dot           the 9 shifted windows stacked on the channel axis, one dot with K = N*H*W
  kw_stacked_dots       the 3 horizontal shifts stacked, one dot per kernel row (K = N*H*W)
  blocked_patches_dot   ``patches_dot`` as 4 batched dots over blocks of examples, then a sum
  nine_dots             one dot per kernel offset
  winograd_f2x3         Winograd's F(2x2, 3x3) (Lavin & Gray 2015) transposed: the input's 4x4
                        tiles and the output gradient's 2x2 tiles transformed (element-wise
                        fusions), 16 dots of (C, tiles) x (tiles, F) with 2.25x fewer
                        multiply-adds than the convolution, a 3x3 transform back
  two pieces in one program  ``lax`` (and ``winograd_f2x3``, made of dots and fusions) for two
                        independent pieces in one compiled call, with nine small outputs beside
                        so that it is more than 8 thunks, which XLA:CPU's executor would run in
                        order anyway (2x the time of one: one after the other)
Results: ``benchmarks/results/step_variants.{md,json}``.
"""
from __future__ import annotations

import contextlib
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import nets
from functorch_lite import layers as L
from functorch_lite.core import Sequential, xla
from functorch_lite.layers import pool, shifted_conv
from functorch_lite.layers.activations import relu
from functorch_lite.train.state import TrainState
from functorch_lite.train.step import make_train_step

from .common import write_report
from .conv_lowering import _time, interleaved_steps, step_args


def _cnn_relu_after_pool():
    return Sequential([
        L.Conv(32, (3, 3), padding="same"), L.MaxPool((2, 2)), relu,
        L.Conv(64, (3, 3), padding="same"), L.MaxPool((2, 2)), relu,
        L.Flatten(), L.Dense(128), relu, L.Dense(10)])


def _argmax_mask(x, shape, red):
    """``pool._first_max_mask`` as one argmax over each window (its first maximum as well)."""
    keep = [i for i in range(len(shape)) if i not in red]
    xt = jnp.transpose(x.reshape(shape), keep + list(red)).reshape([shape[i] for i in keep] + [-1])
    first = jnp.argmax(xt, axis=-1).astype(jnp.int32)
    return jnp.expand_dims(first, red) == pool.window_numbers(shape, red, np.int32)


@contextlib.contextmanager
def _pool_mask(fn):
    """Trace with ``fn`` as the max pool's mask (read while tracing, restored after)."""
    old, pool._first_max_mask = pool._first_max_mask, fn
    try:
        yield
    finally:
        pool._first_max_mask = old


def _step(model, options, batch, mask=None, chunks=None):
    """A fresh jitted Adam step of ``model`` compiled with ``options`` (the batch in ``chunks``
    pieces; None: as ``fit``); returns ``run()``."""
    step = make_train_step(model, "cross_entropy", optax.adam(1e-3), jit=False, chunks=chunks)
    fn = jax.jit(step, donate_argnums=0, compiler_options=options)
    holder = [TrainState.create(model, step.tx, jax.random.key(0),
                                jax.ShapeDtypeStruct(batch[0].shape, batch[0].dtype))]

    def run():
        holder[0], logs = fn(holder[0], batch)
        return logs
    with _pool_mask(mask) if mask else contextlib.nullcontext():
        run()                          # traced and compiled here
    return run


def _step_variants(batch):
    lib = xla.conv_compiler_options() or {}
    ynn_conv = dict(lib)
    ynn_conv["xla_cpu_experimental_ynn_fusion_type"] = ",".join(
        [lib.get("xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_DOT"),
         "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"])

    def cnn(options=None, model=nets.cnn, **kw):
        """A maker of the CNN step with the shipped options plus ``options``."""
        return lambda: _step(model(), {**lib, **(options or {})} or None, batch, **kw)
    return {"shipped": cnn(),
            "relu_after_pool": cnn(model=_cnn_relu_after_pool),
            "pool_mask_recomputed": cnn(mask=functools.partial(pool._first_max_mask, once=False)),
            "pool_mask_argmax": cnn(mask=_argmax_mask),
            "ynn_convolution": lambda: _step(nets.cnn(), ynn_conv, batch),
            "onednn": cnn({"xla_cpu_use_onednn": True}),
            "concurrency_scheduler": cnn(
                {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED"}),
            "conv2_patches_kgrad": lambda: _patches_kgrad(cnn()),
            "pieces_1": cnn(chunks=1),
            "pieces_2": cnn(chunks=2)}


def _patches_kgrad(build):
    """``build()`` with every convolution traced through ``shifted_conv.conv``, whose forward is
    ``lax.conv`` where the input has more than one channel (the kernel gradient stays the
    patches dot)."""
    shifted_sum, most = shifted_conv._shifted_sum, shifted_conv.MAX_CHANNELS

    def forward(x, w, cfg):
        return shifted_sum(x, w, cfg) if x.shape[-1] <= most else shifted_conv.lax_conv(x, w, cfg)
    shifted_conv._shifted_sum, shifted_conv.MAX_CHANNELS = forward, 1 << 30
    try:
        return build()
    finally:
        shifted_conv._shifted_sum, shifted_conv.MAX_CHANNELS = shifted_sum, most


@contextlib.contextmanager
def _one_core():
    """Pin every thread of this process (XLA's pools included) to its first allowed core; after,
    every thread then alive (one started meanwhile too) gets all the cores back."""
    cores = os.sched_getaffinity(0)

    def pin(to):
        for t in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):       # a thread that ended meanwhile
                os.sched_setaffinity(int(t), to)
    pin({min(cores)})
    try:
        yield
    finally:
        pin(cores)


def _core_rows(x, dy, opts, reps):
    """conv2's parts on all cores and on one, interleaved (Linux only)."""
    if not (hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")
            and len(os.sched_getaffinity(0)) > 1):
        return []
    piece = x.shape[0]
    w = jax.random.normal(jax.random.key(3), (3, 3, 32, 64))
    inputs = {"forward": (x, w), "input_grad": (w, dy), "kernel_grad": (x, dy)}
    runs = {}
    for part, f in _conv_parts(32, 64).items():
        f = jax.jit(f, compiler_options=opts)
        runs[f"conv2 {part} ({piece} examples)"] = lambda f=f, a=inputs[part]: f(*a)
    times = {(name, one): [] for name in runs for one in (False, True)}
    for _ in range(reps):
        for name, run in runs.items():
            times[name, False].append(_time(run, 1))
            with _one_core():
                times[name, True].append(_time(run, 1))
    flops = 2 * piece * 14 * 14 * 9 * 32 * 64
    rows = []
    for (name, one), t in times.items():
        ms, all_cores = min(t), min(times[name, False])
        rows.append({"what": f"{name}: {'one core' if one else 'all cores'}", "ms": round(ms, 3),
                     "x shipped": round(ms / all_cores, 3),
                     "check": f"{flops / ms / 1e6:.0f} GFLOP/s"})
    return rows


def _conv_parts(cin, cout):
    """A 3x3 'same' convolution's three parts: ``forward(x, w)``, ``input_grad(w, dy)`` and
    ``kernel_grad(x, dy)`` (JAX's transposes of ``lax.conv``, as the train step computes them)."""
    dn = ("NHWC", "HWIO", "NHWC")

    def forward(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def input_grad(w, dy):
        x = jnp.zeros(dy.shape[:-1] + (cin,), dy.dtype)
        return jax.vjp(lambda x: forward(x, w), x)[1](dy)[0]

    def kernel_grad(x, dy):
        w = jnp.zeros((3, 3, cin, cout), x.dtype)
        return jax.vjp(lambda w: forward(x, w), w)[1](dy)[0]
    return {"forward": forward, "input_grad": input_grad, "kernel_grad": kernel_grad}


def _windows(x):
    """The 9 shifted windows of a 3x3 'same' conv's input, row-major in the kernel."""
    return shifted_conv.padded_windows(x, (3, 3), ((1, 1), ((1, 1), (1, 1)), (1, 1), None))


def _kgrad_variants(cin, cout):
    shape = (3, 3, cin, cout)

    lax_ = _conv_parts(cin, cout)["kernel_grad"]

    def patches_dot(x, dy):
        p = jnp.concatenate(_windows(x), axis=-1).reshape(-1, 9 * cin)
        return (p.T @ dy.reshape(-1, cout)).reshape(shape)

    def kw_stacked_dots(x, dy):
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        w_ = x.shape[2]
        rows = jnp.concatenate([xp[:, :, j:j + w_, :] for j in range(3)], axis=-1)
        d = dy.reshape(-1, cout)
        return jnp.stack([rows[:, i:i + x.shape[1]].reshape(-1, 3 * cin).T @ d
                          for i in range(3)]).reshape(shape)

    def blocked_patches_dot(x, dy, blocks=4):
        p = jnp.concatenate(_windows(x), axis=-1).reshape(blocks, -1, 9 * cin)
        d = dy.reshape(blocks, -1, cout)
        return lax.dot_general(p, d, (((1,), (1,)), ((0,), (0,)))).sum(0).reshape(shape)

    def nine_dots(x, dy):
        d = dy.reshape(-1, cout)
        return jnp.stack([s.reshape(-1, cin).T @ d for s in _windows(x)]).reshape(shape)
    return {"lax": lax_, "patches_dot": patches_dot, "kw_stacked_dots": kw_stacked_dots,
            "blocked_patches_dot": blocked_patches_dot, "nine_dots": nine_dots,
            "winograd_f2x3": _winograd_kgrad}


#: F(2x2, 3x3)'s kernel transform (4 x 3); its input and output transforms are in the tiles below
_WINOGRAD_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)


def _tiles(v, axis, size, combine):
    """``combine`` of the ``size`` slices of ``v`` along ``axis`` that start each 2-wide tile."""
    n = (v.shape[axis] - size + 2) // 2
    return combine([lax.slice_in_dim(v, j, j + 2 * n - 1, 2, axis) for j in range(size)])


def _winograd_kgrad(x, dy):
    """The kernel gradient of a 3x3 'same' convolution (x: (N, H, W, C), dy: (N, H, W, F)) as the
    transpose of Winograd's F(2x2, 3x3) in the kernel: sum over tiles of (B^T x B) * (A dy A^T),
    then G^T . G (odd sizes padded with zeros, which add nothing)."""
    h, w = dy.shape[1:3]
    eh, ew = h % 2, w % 2
    xp = jnp.pad(x, ((0, 0), (1, 1 + eh), (1, 1 + ew), (0, 0)))
    dyp = jnp.pad(dy, ((0, 0), (0, eh), (0, ew), (0, 0)))
    bt = lambda s: [s[0] - s[2], s[1] + s[2], s[2] - s[1], s[1] - s[3]]     # noqa: E731
    at = lambda s: [s[0], s[0] + s[1], s[0] - s[1], -s[1]]                  # noqa: E731
    v = [b for a in _tiles(xp, 1, 4, bt) for b in _tiles(a, 2, 4, bt)]
    u = [b for a in _tiles(dyp, 1, 2, at) for b in _tiles(a, 2, 2, at)]
    c, f = x.shape[-1], dy.shape[-1]
    m = jnp.stack([vi.reshape(-1, c).T @ ui.reshape(-1, f) for vi, ui in zip(v, u)])
    return jnp.einsum("ak,bl,abcf->klcf", _WINOGRAD_G, _WINOGRAD_G, m.reshape(4, 4, c, f))


def main(argv=None):
    args, batch = step_args(argv)
    times, losses = interleaved_steps(_step_variants(batch), args.reps)
    base = min(times["shipped"])
    rows = [{"what": f"train step: {n}", "ms": round(min(t), 2), "x shipped": round(min(t) / base, 3),
             "check": f"loss after 3 steps {losses[n]:.7g}"} for n, t in times.items()]

    piece = max(1, args.batch // xla.MAX_CHUNKS)
    x = jax.random.normal(jax.random.key(1), (piece, 14, 14, 32))
    dy = jax.random.normal(jax.random.key(2), (piece, 14, 14, 64))
    opts = xla.conv_compiler_options()
    rows += _core_rows(x, dy, opts, args.reps)
    kfns = {n: jax.jit(f, compiler_options=opts) for n, f in _kgrad_variants(32, 64).items()}
    ref = kfns["lax"](x, dy)
    err = {n: float(jnp.max(jnp.abs(f(x, dy) - ref)) / jnp.max(jnp.abs(ref))) for n, f in kfns.items()}
    # nine small outputs beside: XLA:CPU runs a program of at most 8 thunks in order anyway
    twos = {n: jax.jit(lambda x, dy, x2, dy2, kg=kg: (kg(x, dy), kg(x2, dy2),
                                                      [jnp.sin(x[i]) for i in range(9)]),
                       compiler_options=opts)
            for n, kg in _kgrad_variants(32, 64).items() if n in ("lax", "winograd_f2x3")}
    x2, dy2 = x + 1, dy - 1
    ktimes = {n: [] for n in kfns}
    two_times = {n: [] for n in twos}
    for _ in range(args.reps):
        for n, f in kfns.items():
            ktimes[n].append(_time(lambda f=f: f(x, dy), 1))
        for n, f in twos.items():
            two_times[n].append(_time(lambda f=f: f(x, dy, x2, dy2), 1))
    kbase = min(ktimes["lax"])
    rows += [{"what": f"conv2 kernel grad ({piece} examples): {n}", "ms": round(min(t), 3),
              "x shipped": round(min(t) / kbase, 3), "check": f"rel. err {err[n]:.1e}"}
             for n, t in ktimes.items()]
    rows += [{"what": f"conv2 kernel grad ({piece} examples): two pieces in one program, {n}",
              "ms": round(min(t), 3), "x shipped": round(min(t) / kbase, 3),
              "check": f"{min(t) / min(ktimes[n]):.2f}x one piece (2: one after the other)"}
             for n, t in two_times.items()]
    write_report("step_variants", rows, {"unit": "ms (best of interleaved rounds)",
                                         "batch": args.batch, "options": opts})


if __name__ == "__main__":
    main()
