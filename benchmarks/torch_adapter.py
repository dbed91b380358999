"""The familiar PyTorch training loop on three engines, in one run:

* ``functorch_lite.torch``: the loop unchanged (import lines aside); each step is one compiled,
  cached XLA call (forward, loss, backward and the Adam update fused);
* real PyTorch 2.13, eager, on the CPU: the same loop, with its ``DataLoader`` over a
  ``TensorDataset`` (the familiar loop) and, for reference, over pre-batched tensors;
* ``functorch_lite.fit`` on the same network (core layers in the same NCHW layout, optax Adam),
  and, for the CNN, also in the core's native NHWC layout (the strongest functional anchor).

    python -m benchmarks.torch_adapter [--epochs 3] [--limit 12800] [--batch-size 64]

Models: the CNN of tests/torch/test_mnist_script.py (conv5x5(16)-pool-conv5x5(32)-pool-fc128-fc10)
and an MLP (784-256-10).  Throughput is the median, in samples/s, over the epochs after the
first (which includes compilation) of ``--repeats`` interleaved runs of every engine.  The compile count of the torch-style loop after its first
step is printed (the target is 0).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .common import median, write_report


def _data(limit):
    from functorch_lite.datasets import load_mnist
    (x, y), _ = load_mnist()
    x, y = x[:limit], y[:limit]
    x = ((x.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]   # NCHW, as torchvision gives
    return x, y.astype(np.int64)


# ----------------------------------------------------------------------------- the models

def torch_cnn(nn, F, torch):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 5, 1)
            self.conv2 = nn.Conv2d(16, 32, 5, 1)
            self.fc1 = nn.Linear(512, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc2(F.relu(self.fc1(x)))
    return Net()


def torch_mlp(nn, F, torch):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def core_cnn():
    import functorch_lite as fl
    kw = dict(layout="channels_first", kernel_init="torch", bias_init="torch_bias")
    dense = dict(kernel_layout="oi", kernel_init="torch", bias_init="torch_bias")
    return fl.Sequential([fl.Conv(16, (5, 5), **kw), fl.relu, fl.MaxPool((2, 2), layout="channels_first"),
                          fl.Conv(32, (5, 5), **kw), fl.relu, fl.MaxPool((2, 2), layout="channels_first"),
                          fl.Flatten(), fl.Dense(128, **dense), fl.relu, fl.Dense(10, **dense)])


def core_cnn_nhwc():
    """The same CNN in the core's native channels-last layout (data given as NHWC)."""
    import functorch_lite as fl
    return fl.Sequential([fl.Conv(16, (5, 5), kernel_init="torch", bias_init="torch_bias"),
                          fl.relu, fl.MaxPool((2, 2)),
                          fl.Conv(32, (5, 5), kernel_init="torch", bias_init="torch_bias"),
                          fl.relu, fl.MaxPool((2, 2)), fl.Flatten(),
                          fl.Dense(128, kernel_init="torch", bias_init="torch_bias"), fl.relu,
                          fl.Dense(10, kernel_init="torch", bias_init="torch_bias")])


def core_mlp():
    import functorch_lite as fl
    dense = dict(kernel_layout="oi", kernel_init="torch", bias_init="torch_bias")
    return fl.Sequential([fl.Flatten(), fl.Dense(256, **dense), fl.relu, fl.Dense(10, **dense)])


# ----------------------------------------------------------------------------- the loops

def torch_loop(torch, model, loader, epochs, lr):
    """The familiar loop; returns per-epoch seconds (synchronised on the last loss)."""
    F = torch.nn.functional
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    times, after_first = [], None
    for _ in range(epochs):
        t0 = time.perf_counter()
        for data, target in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(data), target)
            loss.backward()
            opt.step()
            if after_first is None and hasattr(torch, "compile_count"):
                after_first = torch.compile_count()
        last = loss.item()
        times.append(time.perf_counter() - t0)
    return times, last, after_first


def run_ours(make, x, y, batch_size, epochs, lr):
    import functorch_lite.torch as torch
    from functorch_lite.torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    model = make(torch.nn, torch.nn.functional, torch)
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size,
                        shuffle=True)
    start = torch.compile_count()
    times, last, after_first = torch_loop(torch, model, loader, epochs, lr)
    return times, last, {"compiles_total": torch.compile_count() - start,
                         "compiles_after_first_step": torch.compile_count() - after_first}


def run_pytorch(make, x, y, batch_size, epochs, lr, prebatched=False, threads=1):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = make(torch.nn, torch.nn.functional, torch)
    xt, yt = torch.tensor(x), torch.tensor(y)
    if prebatched:
        class Batches:
            def __iter__(self):
                perm = torch.randperm(len(xt))
                for i in range(0, len(xt) - batch_size + 1, batch_size):
                    idx = perm[i:i + batch_size]
                    yield xt[idx], yt[idx]
        loader = Batches()
    else:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt),
                                             batch_size=batch_size, shuffle=True)
    times, last, _ = torch_loop(torch, model, loader, epochs, lr)
    return times, last


def run_fit(make, x, y, batch_size, epochs, lr):
    import jax
    import optax

    import functorch_lite as fl

    class Timer(fl.Callback):
        def __init__(self):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            jax.block_until_ready(self.trainer.train_state.params)
            self.times.append(time.perf_counter() - self.t0)
    timer = Timer()
    hist = fl.fit(make(), "cross_entropy", optax.adam(lr), (x, y.astype(np.int32)), epochs=epochs,
                  batch_size=batch_size, verbose=0, metrics=(), callbacks=[timer])
    return timer.times, hist.history["loss"][-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=12800, help="training examples per epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each engine, interleaved; timings pooled (first epochs dropped)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="PyTorch intra-op threads (1 is its fastest setting on a shared 2-core "
                         "machine: its thread pool spins when the cores are busy)")
    args = ap.parse_args(argv)
    x, y = _data(args.limit)
    n = (len(x) // args.batch_size) * args.batch_size
    x, y = x[:n], y[:n]
    rows, extra = [], {"args": vars(args)}
    makers = {"mlp": (torch_mlp, core_mlp), "cnn": (torch_cnn, core_cnn)}
    for name in args.models.split(","):
        make_torch, make_core = makers[name]
        timed = {"ours": [], "pt": [], "ptb": [], "fit": [], "fit_nhwc": []}
        first_ours, first_compiles = [], None
        for _ in range(args.repeats):   # interleaved, so that machine noise hits all alike
            t_ours, loss_ours, compiles = run_ours(make_torch, x, y, args.batch_size, args.epochs, args.lr)
            t_pt, loss_pt = run_pytorch(make_torch, x, y, args.batch_size, args.epochs, args.lr,
                                        threads=args.torch_threads)
            t_ptb, _ = run_pytorch(make_torch, x, y, args.batch_size, args.epochs, args.lr,
                                   prebatched=True, threads=args.torch_threads)
            t_fit, loss_fit = run_fit(make_core, x, y, args.batch_size, args.epochs, args.lr)
            runs = [("ours", t_ours), ("pt", t_pt), ("ptb", t_ptb), ("fit", t_fit)]
            if name == "cnn":
                t_nhwc, _ = run_fit(core_cnn_nhwc, np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                    y, args.batch_size, args.epochs, args.lr)
                runs.append(("fit_nhwc", t_nhwc))
            for k, t in runs:
                timed[k] += t[1:] if len(t) > 1 else t
            first_ours.append(t_ours[0])
            first_compiles = first_compiles or compiles   # the later repeats hit the cache
        sps = {k: n / median(t) for k, t in timed.items() if t}
        sps.setdefault("fit_nhwc", sps["fit"])   # the MLP has no layout
        rows.append({
            "model": name,
            "fl_torch_samples_per_s": sps["ours"],
            "pytorch_eager_samples_per_s": sps["pt"],
            "pytorch_eager_prebatched_samples_per_s": sps["ptb"],
            "fl_fit_samples_per_s": sps["fit"],
            "fl_fit_nhwc_samples_per_s": sps["fit_nhwc"],
            "ours_over_fit": sps["ours"] / sps["fit"],
            "ours_over_fit_nhwc": sps["ours"] / sps["fit_nhwc"],
            "ours_over_pytorch": sps["ours"] / sps["pt"],
            "ours_over_pytorch_prebatched": sps["ours"] / sps["ptb"],
            "first_epoch_s_ours": first_ours[0],
            "compiles_total_ours": first_compiles["compiles_total"],
            "compiles_after_first_step": first_compiles["compiles_after_first_step"],
            "final_loss_ours": loss_ours, "final_loss_pytorch": loss_pt, "final_loss_fit": loss_fit,
        })
        print(f"{name}: compiles in the torch-style loop: {first_compiles['compiles_total']} in "
              f"total, {first_compiles['compiles_after_first_step']} after the first step")
    write_report("torch_adapter", rows, extra)


if __name__ == "__main__":
    main()
