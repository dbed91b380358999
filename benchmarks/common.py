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


def machine() -> dict:
    import optax
    return {"python": platform.python_version(), "jax": jax.__version__, "optax": optax.__version__,
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


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
