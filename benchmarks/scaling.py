"""Data-parallel throughput of ``nets.cnn`` through ``fl.fit(..., distribution=...)`` on 1, 2 and 4
forced host (CPU) devices.

    python -m benchmarks.scaling [--devices 1,2,4] [--limit 8192] [--epochs 3] [--batch-size 128]

Each device count runs in its own subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=N``
must be set before JAX starts).  The 1-device process also runs plain ``fit`` without a
distribution, the single-device anchor.  Throughput is the median over the epochs after the first
(which includes compilation), in samples/s.

Honest caveat: forced host devices are not extra hardware.  All of them share this machine's CPU
cores (two here), so this measures the overhead of the SPMD partitioning (per-device programs,
the all-reduce, host-side epoch sharding), not a speed-up; real scaling needs real devices.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(n: int, limit: int, epochs: int, batch_size: int) -> list[dict]:
    import jax
    import numpy as np

    import functorch_lite as fl
    from functorch_lite import distributed as fld
    from nets.cnn import cnn

    from .common import mnist

    assert jax.device_count() == n, (jax.device_count(), n)
    (x, y), _ = mnist(limit)

    class Timer(fl.Callback):
        def __init__(self):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):   # logs reached the host: the epoch is done
            self.times.append(time.perf_counter() - self.t)

    rows = []
    runs = [("fit, no distribution", None)] if n == 1 else []
    runs.append((f"fit, DataParallel({n} devices)", fld.DataParallel()))
    for name, dist in runs:
        timer = Timer()
        h = fl.fit(cnn(), "cross_entropy", "adam", (x, y), epochs=epochs, batch_size=batch_size,
                   verbose=0, callbacks=[timer], distribution=dist)
        steady = float(np.median(timer.times[1:])) if len(timer.times) > 1 else timer.times[0]
        rows.append({"devices": n, "run": name, "samples_per_s": len(x) / steady,
                     "first_epoch_s": timer.times[0], "steady_epoch_s": steady,
                     "final_loss": h.history["loss"][-1]})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--limit", type=int, default=8192)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print("ROWS " + json.dumps(worker(args.worker, args.limit, args.epochs, args.batch_size)))
        return None

    from .common import write_report
    rows = []
    for n in (int(s) for s in args.devices.split(",")):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
                   JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--worker", str(n),
                              "--limit", str(args.limit), "--epochs", str(args.epochs),
                              "--batch-size", str(args.batch_size)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1800)
        if out.returncode:
            raise SystemExit(f"worker for {n} devices failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        rows += json.loads([l for l in out.stdout.splitlines() if l.startswith("ROWS ")][-1][5:])
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["vs_1_device_fit"] = r["samples_per_s"] / base
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return write_report("scaling", rows, extra={
        "args": vars(args), "load_average_after": load,
        "note": "forced host devices share the same CPU cores (2 on the reference machine): this "
                "measures SPMD overhead, not a speed-up"})


if __name__ == "__main__":
    main()
