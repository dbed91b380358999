"""One process of a 2-process JAX job on localhost, started by test_multiprocess.py.

    FL_COORDINATOR_ADDRESS=localhost:PORT FL_NUM_PROCESSES=2 FL_PROCESS_ID=i \
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    python tests/distributed/_mp_worker.py DATA.npz OUT_DIR

Joins the job with ``initialize_from_env`` (the documented launch recipe), then trains on the
4 devices of the job (2 per process) and writes what it got to ``OUT_DIR/result_<i>.npz``; the
parent test compares with single-process training on the same global batches.
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from functorch_lite import distributed as fld  # noqa: E402

assert fld.initialize_from_env() is True   # before anything touches the devices

import jax  # noqa: E402

import functorch_lite as fl  # noqa: E402
from _adapter_loops import keras_fit, torch_loop  # noqa: E402  (this script's folder)


class Batches:
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def mlp():
    return fl.Sequential([fl.Dense(16), fl.relu, fl.Dense(3)])


def flat(prefix, tree):
    return {f"{prefix}/{jax.tree_util.keystr(k)}": v
            for k, v in jax.tree_util.tree_leaves_with_path(fld.to_host(tree))}


def main(data_path, out_dir):
    pid = jax.process_index()
    assert jax.process_count() == 2, jax.process_count()
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    data = np.load(data_path)
    x, y = data["x"], data["y"]
    dist = fld.DataParallel()
    out = {}

    # 1. the global dataset on every process: fit shards each global batch over the 4 devices
    h = fl.fit(mlp(), "cross_entropy", "adam", (x, y), epochs=2, batch_size=32, verbose=0,
               distribution=dist, validation_data=(x[:30], y[:30]))
    out.update(flat("global", h.params))
    out["global_loss"] = np.asarray(h.history["loss"])
    out["global_val_loss"] = np.asarray(h.history["val_loss"])

    # 2. per-host data: each process loads only its contiguous share and yields local batches
    sl = fld.process_slice(len(x))
    lx, ly = x[sl], y[sl]
    lb = int(data["local_batch"])
    local = Batches([(lx[i:i + lb], ly[i:i + lb]) for i in range(0, len(lx), lb)])
    h = fl.fit(mlp(), "cross_entropy", "sgd", local, epochs=2, batch_size=2 * lb, verbose=0,
               distribution=dist)
    out.update(flat("local", h.params))

    # 3. inference on the job: evaluate (replicated sums) and predict (all-gathered output)
    ts = h.train_state
    ev = fl.evaluate(mlp(), ts, (x, y), batch_size=32, loss="cross_entropy", distribution=dist)
    out["eval"] = np.asarray([ev["loss"], ev["accuracy"]])
    out["predict"] = fl.predict(mlp(), ts, x[:21], batch_size=8, distribution=dist)

    # 4. FSDP across the two processes: the 'model' axis pairs one device of each process, so
    #    each process holds half of every sharded param (and XLA all-gathers across processes)
    devs = np.array(jax.devices(), dtype=object).reshape(2, 2).T.ravel()
    fsdp = fld.DataParallel(fld.make_mesh(2, 2, devices=list(devs)), param_axis="model",
                            min_shard_size=0)
    h = fl.fit(mlp(), "cross_entropy", "adam", (x, y), epochs=1, batch_size=32, verbose=0,
               distribution=fsdp)
    k = h.params["0_dense"]["kernel"]
    assert not k.is_fully_addressable and not k.sharding.is_fully_replicated, k.sharding
    assert {s.data.shape for s in k.addressable_shards} == {(6, 8)}
    assert {(s.index[1].start, s.index[1].stop) for s in k.addressable_shards} == {(8 * pid, 8 * pid + 8)}
    out.update(flat("fsdp", h.params))

    # 5. the Keras-like adapter under keras.distribution (the global dataset on every process)
    out.update({f"keras/{i}": w for i, w in enumerate(keras_fit(x, y))})

    # 6. the torch-like adapter: DistributedDataParallel on each process's local batches
    import functorch_lite.torch as torch
    assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 2
    assert torch.distributed.get_rank() == pid
    sd = torch_loop(lambda net: torch.nn.parallel.DistributedDataParallel(net),
                    [(lx[i:i + lb], ly[i:i + lb]) for i in range(0, len(lx) - lb + 1, lb)])
    out.update({f"torch/{k[len('module.'):]}": v for k, v in sd.items()})

    np.savez(os.path.join(out_dir, f"result_{pid}.npz"), **out)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
