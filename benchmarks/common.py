"""Shared helpers of the benchmarks: MNIST data, machine facts, timing and report writing."""
from __future__ import annotations

import json
import os
import platform
import time

import jax
import numpy as np


def mnist(limit=None):
    """Bundled MNIST as float32 NHWC standardised images and int32 labels."""
    from functorch_lite.datasets import load_mnist
    from nets.mnist import prepare
    (xt, yt), (xs, ys) = load_mnist()
    if limit:
        xt, yt = xt[:limit], yt[:limit]
    return (prepare(xt), yt.astype(np.int32)), (prepare(xs), ys.astype(np.int32))


def cpu_model(cpuinfo: str | None = None) -> str:
    """The processor's model name and widest vector unit, from ``cpuinfo`` (the text of
    ``/proc/cpuinfo``, read when not given; the architecture where it names no model): machines
    of one size differ (a 2-core Xeon with AVX-512, an AMD EPYC with AVX2 at a third of its matmul
    rate), and every ratio in a report belongs to one of them."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    name, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name is None:
            name = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = set(value.split())
    if name is None:
        return platform.processor() or platform.machine()
    simd = next((f for f in ("avx512f", "avx2", "avx", "asimd") if f in flags), None)
    return f"{name} ({simd})" if simd else name


def machine() -> dict:
    import optax
    return {"python": platform.python_version(), "jax": jax.__version__, "optax": optax.__version__,
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count()}


def block(tree):
    jax.tree_util.tree_map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, tree)
    return tree


def median(xs):
    return float(np.median(np.asarray(xs)))


def write_report(name: str, rows: list[dict], extra: dict | None = None, out_dir: str | None = None):
    """Write ``benchmarks/results/<name>.md`` and ``.json`` and print the markdown table."""
    out_dir = out_dir or os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out_dir, exist_ok=True)
    cols = list(rows[0].keys()) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    md = "\n".join(lines)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
               "rows": rows, **(extra or {})}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(payload, f, indent=2)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(f"# {name}\n\n{json.dumps(payload['machine'])}\n\n{md}\n")
    print(md)
    return md
