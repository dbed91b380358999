"""Two processes on this machine form one JAX job (``jax.distributed.initialize`` on localhost
through ``initialize_from_env``, gloo CPU collectives, 2 forced devices each) and train to the
same parameters as one process on the same global batches."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import distributed as fld

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIMEOUT = 240
TOL = dict(rtol=2e-5, atol=2e-6)


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
    return {f"{prefix}/{jax.tree_util.keystr(k)}": np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _loops():
    """tests/distributed/_adapter_loops.py (the workers import it from their folder)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_adapter_loops",
                                                  os.path.join(HERE, "_adapter_loops.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(tmp_path, data_path):
    port = free_port()
    procs = []
    for pid in range(2):
        env = dict(os.environ, FL_COORDINATOR_ADDRESS=f"localhost:{port}", FL_NUM_PROCESSES="2",
                   FL_PROCESS_ID=str(pid), FL_INIT_TIMEOUT="120", JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
        log = open(tmp_path / f"log_{pid}.txt", "w")
        procs.append((subprocess.Popen([sys.executable, os.path.join(HERE, "_mp_worker.py"),
                                        str(data_path), str(tmp_path)], cwd=ROOT, env=env,
                                       stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [p.wait(timeout=TIMEOUT) for p, _ in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    logs = "\n".join(f"--- process {i}\n" + (tmp_path / f"log_{i}.txt").read_text()[-4000:]
                     for i in range(2))
    assert codes is not None, f"the 2-process job did not finish in {TIMEOUT}s\n{logs}"
    assert codes == [0, 0], f"exit codes {codes}\n{logs}"
    return [dict(np.load(tmp_path / f"result_{i}.npz")) for i in range(2)]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mp")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(202, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 3))).argmax(-1).astype(np.int32)
    np.savez(tmp / "data.npz", x=x, y=y, local_batch=16)
    return x, y, run_job(tmp, tmp / "data.npz")


def assert_same(ref, got, prefix):
    keys = [k for k in ref if k.startswith(prefix + "/")]
    assert keys and set(keys) == {k for k in got if k.startswith(prefix + "/")}
    for k in keys:
        np.testing.assert_allclose(got[k], ref[k], err_msg=k, **TOL)


def test_both_processes_end_with_identical_parameters(job):
    _, _, (r0, r1) = job
    assert r0.keys() == r1.keys()
    for k in r0:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)


def test_global_arrays_fit_equals_one_process_on_the_same_global_batches(job):
    x, y, results = job
    h = fl.fit(mlp(), "cross_entropy", "adam", (x, y), epochs=2, batch_size=32, verbose=0,
               validation_data=(x[:30], y[:30]))
    ref = flat("global", h.params)
    for r in results:
        assert_same(ref, r, "global")
        np.testing.assert_allclose(r["global_loss"], h.history["loss"], rtol=1e-5)
        np.testing.assert_allclose(r["global_val_loss"], h.history["val_loss"], rtol=1e-5)


def test_per_host_data_fit_equals_one_process_on_the_concatenated_batches(job):
    x, y, results = job
    # each process loads its contiguous half (process_slice) and yields batches of 16; the
    # global batch is process 0's batch then process 1's (the odd last one: 5 + 5 rows)
    s0, s1 = fld.process_slice(202, 0, 2), fld.process_slice(202, 1, 2)
    assert (s0, s1) == (slice(0, 101), slice(101, 202))
    glob = [(np.concatenate([x[s0][i:i + 16], x[s1][i:i + 16]]),
             np.concatenate([y[s0][i:i + 16], y[s1][i:i + 16]])) for i in range(0, 101, 16)]
    h = fl.fit(mlp(), "cross_entropy", "sgd", Batches(glob), epochs=2, batch_size=32, verbose=0)
    ref = flat("local", h.params)
    for r in results:
        assert_same(ref, r, "local")
    ev = fl.evaluate(mlp(), h.train_state, (x, y), batch_size=32, loss="cross_entropy")
    pred = fl.predict(mlp(), h.train_state, x[:21], batch_size=8)
    for r in results:
        np.testing.assert_allclose(r["eval"], [ev["loss"], ev["accuracy"]], rtol=1e-5)
        np.testing.assert_allclose(r["predict"], pred, **TOL)


def test_fsdp_across_processes_equals_one_process(job):
    x, y, results = job
    h = fl.fit(mlp(), "cross_entropy", "adam", (x, y), epochs=1, batch_size=32, verbose=0)
    ref = flat("fsdp", h.params)
    for r in results:
        assert_same(ref, r, "fsdp")


def test_keras_under_keras_distribution_equals_one_process(job):
    keras_fit = _loops().keras_fit
    x, y, results = job
    ref = keras_fit(x, y, distributed=False)
    for r in results:
        got = [r[f"keras/{i}"] for i in range(len(ref))]
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, **TOL)


def test_torch_distributed_data_parallel_equals_one_process_on_the_concatenated_batches(job):
    torch_loop = _loops().torch_loop
    x, y, results = job
    s0, s1 = fld.process_slice(202, 0, 2), fld.process_slice(202, 1, 2)
    glob = [(np.concatenate([x[s0][i:i + 16], x[s1][i:i + 16]]),
             np.concatenate([y[s0][i:i + 16], y[s1][i:i + 16]])) for i in range(0, 96, 16)]
    ref = torch_loop(lambda net: net, glob)
    for r in results:
        assert {k for k in r if k.startswith("torch/")} == {f"torch/{k}" for k in ref}
        for k, v in ref.items():
            np.testing.assert_allclose(r[f"torch/{k}"], v, err_msg=k, **TOL)
