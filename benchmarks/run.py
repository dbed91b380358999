"""The benchmark suite: one command, one report.

    python -m benchmarks.run [--models mlp cnn] [--epochs 3] [--only NAME ...] [--limit N]
                             [--skip MODEL:NAME ...] [--rounds R]

Runs each contender (benchmarks/contenders.py) in its own process, one after another, on the
bundled MNIST, then the per-example-gradient comparison and a matmul peak probe, and writes
``benchmarks/results/suite.md`` and ``suite.json`` with versions and machine.  Ratios are taken
between rows of the same run.  With ``--rounds R`` the whole list runs R times over; each
round's ratios are taken within that round (its contenders ran minutes apart, not a whole suite
apart, so the machine's slow drift in speed cancels) and the report gives their median and
range.  Anchors that are not installed (Flax, Equinox, Keras 3, PyTorch:
benchmark-only, never library dependencies) are reported as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from statistics import median

from .common import machine, write_report

ORDER = ["raw_jax_step", "raw_jax_scan", "fl_fit", "fl_fit_lax_conv", "fl_keras", "fl_torch",
         "keras3_jax", "torch_eager", "flax_nnx", "equinox"]
NEEDS = {"keras3_jax": "keras", "torch_eager": "torch", "flax_nnx": "flax", "equinox": "equinox"}


def model_flops_per_sample(model: str) -> float:
    """Training FLOPs per example (forward x 3: forward, input grads, weight grads)."""
    if model == "mlp":
        fwd = 2 * (784 * 512 + 512 * 512 + 512 * 10)
    else:
        fwd = 2 * (28 * 28 * 9 * 1 * 32 + 14 * 14 * 9 * 32 * 64 + 3136 * 128 + 128 * 10)
    return 3.0 * fwd


def matmul_gflops(n: int = 2048) -> float:
    import jax
    import jax.numpy as jnp
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _installed(mod):
    import importlib.util
    return importlib.util.find_spec(mod) is not None


def run_one(name, model, epochs, limit, timeout):
    if name in NEEDS and not _installed(NEEDS[name]):
        return {"name": name, "model": model, "skipped": f"{NEEDS[name]} not installed"}
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        cmd = [sys.executable, "-m", "benchmarks.contenders", name, "--model", model,
               "--epochs", str(epochs), "--out", out] + (["--limit", str(limit)] if limit else [])
        env = dict(os.environ, KERAS_BACKEND="jax")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"name": name, "model": model, "skipped": f"timed out after {timeout} s"}
        if p.returncode != 0 or not os.path.exists(out):
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["?"]
            return {"name": name, "model": model, "skipped": f"failed: {tail[0][:200]}"}
        with open(out) as f:
            return json.load(f)


def summarize(model, name, results, peak, rounds=1):
    """One table row for contender ``name``: medians over the rounds it completed, its ratio to
    ``fl_fit`` taken within each round (the range in ``x fl_fit per round``)."""
    mine = [r for r in results if r["name"] == name and "samples_per_s" in r]
    if not mine:
        note = next((r.get("skipped", "") for r in results if r["name"] == name), "")
        return {"model": model, "contender": name, "samples/s": "-", "x fl_fit": "-",
                "x fl_fit per round": "-", "% matmul peak": "-", "first step s": "-",
                "acc after 1 epoch": "-", "peak RSS MB": "-", "note": note}
    fit = {r["round"]: r["samples_per_s"] for r in results
           if r["name"] == "fl_fit" and "samples_per_s" in r}
    ratios = [r["samples_per_s"] / fit[r["round"]] for r in mine if r["round"] in fit]
    sps = median([r["samples_per_s"] for r in mine])
    return {"model": model, "contender": name, "samples/s": round(sps),
            "x fl_fit": round(median(ratios), 3) if ratios else "-",
            "x fl_fit per round": ", ".join(f"{q:.3f}" for q in ratios) if ratios else "-",
            "% matmul peak": round(100 * sps * model_flops_per_sample(model) / (peak * 1e9), 1),
            "first step s": round(median([r["first_step_s"] for r in mine]), 2),
            "acc after 1 epoch": round(median([r["test_accuracy_after_epoch_1"] for r in mine]), 4),
            "peak RSS MB": round(max(r["peak_rss_mb"] for r in mine)),
            "note": f"median of {len(mine)} rounds" if rounds > 1 else ""}


def _per_example(malloc: str, timeout: int, dispatch: str = "async") -> dict:
    """benchmarks/per_example.py in its own process, with FUNCTORCH_LITE_CPU_MALLOC=malloc and
    JAX's CPU dispatch ``dispatch``."""
    pe = subprocess.run([sys.executable, "-m", "benchmarks.per_example", "--malloc", malloc,
                         "--dispatch", dispatch], capture_output=True, text=True, timeout=timeout)
    out = json.loads(pe.stdout.strip().splitlines()[-1]) if pe.returncode == 0 else {"error": pe.stderr[-300:]}
    print(f"per-example gradients (CNN, batch 128, FUNCTORCH_LITE_CPU_MALLOC={malloc}, "
          f"{dispatch} dispatch):", out, flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="examples per epoch (default: all 60000)")
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--timeout", type=int, default=1200)
    ap.add_argument("--report", default="suite", help="results/<report>.md and .json")
    ap.add_argument("--skip", nargs="+", default=[], metavar="MODEL:NAME",
                    help="contenders not to run, e.g. cnn:raw_jax_scan (9 minutes on 2 cores)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the whole list this many times; ratios are taken within each round")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    peak = matmul_gflops()
    print(f"matmul peak: {peak:.0f} GFLOP/s", flush=True)
    results = []
    for rnd in range(args.rounds):
        for model in args.models:
            for name in args.only or ORDER:
                if f"{model}:{name}" in args.skip:
                    r = {"name": name, "model": model, "skipped": "--skip"}
                else:
                    r = run_one(name, model, args.epochs, args.limit, args.timeout)
                r["round"] = rnd
                print(json.dumps(r), flush=True)
                results.append(r)
    rows = [summarize(model, name, [r for r in results if r["model"] == model], peak, args.rounds)
            for model in args.models for name in (args.only or ORDER)]
    per_example = {mode: _per_example(mode, args.timeout) for mode in ("1", "one_arena")}
    per_example["sync"] = _per_example("1", args.timeout, dispatch="sync")
    write_report(args.report, rows, {"matmul_gflops": peak, "per_example": per_example["1"],
                                     "per_example_one_arena": per_example["one_arena"],
                                     "per_example_sync_dispatch": per_example["sync"], "raw": results,
                                 "args": vars(args),
                                 "flops_per_sample": {m: model_flops_per_sample(m) for m in args.models}})


if __name__ == "__main__":
    main()
