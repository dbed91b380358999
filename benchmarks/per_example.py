"""Per-example gradients of the MNIST CNN, batch 128: functorch_lite.per_example_grads (jit of
vmap of grad) against torch.func.vmap(grad) and a naive PyTorch loop, in one process; the first
two run in alternating blocks and their ratio is the median of the blocks' ratios.

    python -m benchmarks.per_example [--out result.json] [--malloc one_arena] [--dispatch sync]

``--malloc`` sets ``FUNCTORCH_LITE_CPU_MALLOC`` for this process before functorch_lite is
imported (``one_arena``: glibc's one malloc arena, so the 205 MB result reuses its memory instead
of being page-faulted in on every call; core/xla.py).  ``--dispatch sync`` turns JAX's
``jax_cpu_enable_async_dispatch`` off before the CPU backend starts: computations then run on the
calling thread, which allocates the result from glibc's main arena, where the thresholds keep it
(core/xla.py).  The process's settings apply to torch.func as much as to us: both run in it.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _best(f, reps=10):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000


def _interleaved(fns: dict, rounds=5, reps=4):
    """Median ms of each function over ``rounds`` alternating blocks of ``reps`` calls (the
    machine's speed drifts: a ratio between blocks that ran back to back is what holds), and
    each block's ratio of every function to the first."""
    for f in fns.values():
        f()
    per = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            per[k].append(_best(f, reps))
    first = next(iter(fns))
    ratios = {k: [b / a for a, b in zip(per[first], v)] for k, v in per.items() if k != first}
    return {k: float(np.median(v)) for k, v in per.items()}, ratios


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--malloc", choices=["1", "0", "one_arena"], default=None,
                    help="FUNCTORCH_LITE_CPU_MALLOC for this process (default: as set, else 1)")
    ap.add_argument("--dispatch", choices=["async", "sync"], default="async",
                    help="JAX's CPU dispatch (jax_cpu_enable_async_dispatch)")
    args = ap.parse_args(argv)
    if args.malloc is not None:
        os.environ["FUNCTORCH_LITE_CPU_MALLOC"] = args.malloc
    import jax
    jax.config.update("jax_cpu_enable_async_dispatch", args.dispatch == "async")
    import jax.numpy as jnp
    import functorch_lite as fl
    import nets
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    model = nets.cnn()
    params, _ = model.init(jax.random.key(0), (1, 28, 28, 1))

    def loss(p, xb, yb):
        return fl.losses.cross_entropy(model.apply(p, {}, xb)[0], yb)
    per_example = lambda p, xb, yb: fl.per_example_grads(loss, p, xb, yb)
    peg = fl.jit(per_example)
    # what fit and the adapters compile conv models with on CPU (core/xla.py)
    peg_lib = fl.jit(per_example, compiler_options=fl.core.xla.conv_compiler_options())
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    fl_lib = lambda: jax.block_until_ready(peg_lib(params, xj, yj))
    out = {"malloc": fl.core.xla.malloc_mode(), "dispatch": args.dispatch,
           "fl_per_example_xla_defaults_ms": _best(lambda: jax.block_until_ready(peg(params, xj, yj)))}
    try:
        import torch
        from torch.func import functional_call, grad, vmap
        torch.set_num_threads(os.cpu_count())

        class CNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.c1, self.c2 = torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.Conv2d(32, 64, 3, padding=1)
                self.f1, self.f2 = torch.nn.Linear(3136, 128), torch.nn.Linear(128, 10)

            def forward(self, z):
                F = torch.nn.functional
                z = F.max_pool2d(F.relu(self.c1(z)), 2)
                z = F.max_pool2d(F.relu(self.c2(z)), 2)
                return self.f2(F.relu(self.f1(torch.flatten(z, 1))))
        net = CNN()
        tp = {k: v.detach() for k, v in net.named_parameters()}
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        yt = torch.from_numpy(y)

        def tloss(p, xb, yb):
            return torch.nn.functional.cross_entropy(functional_call(net, p, (xb[None],)), yb[None])
        tpeg = vmap(grad(tloss), in_dims=(None, 0, 0))
        ms, ratios = _interleaved({"fl": fl_lib, "torch_func": lambda: tpeg(tp, xt, yt)})
        out["fl_per_example_ms"], out["torch_func_ms"] = ms["fl"], ms["torch_func"]
        out["ratio_torch_func_over_fl_per_round"] = [round(r, 3) for r in ratios["torch_func"]]

        def naive():
            for i in range(args.batch):
                net.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[i:i + 1]), yt[i:i + 1]).backward()
        out["torch_loop_ms"] = _best(naive, reps=3)
        out["ratio_torch_func_over_fl"] = float(np.median(ratios["torch_func"]))
    except ImportError:
        out["fl_per_example_ms"] = _best(fl_lib)
        out["torch"] = "not installed"
    print(json.dumps(out))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
