"""functorch_lite.distributed on this process's single device: meshes, the DataParallel
config, batch padding (exact weighted mean), per-host slicing, the launch-recipe environment
parsing, and every error message.  Several-device behaviour: test_data_parallel.py (4 forced
devices) and test_multiprocess.py (a 2-process job)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType

import functorch_lite as fl
from functorch_lite import distributed as fld
from functorch_lite.core.errors import ConfigError
from functorch_lite.train import TrainState, Trainer, make_train_step


def _toy(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x @ rng.normal(size=(6, 3))).argmax(-1).astype(np.int32)


def _mlp():
    return fl.Sequential([fl.Dense(16), fl.relu, fl.Dense(3)])


# ------------------------------------------------------------------------- meshes / config
def test_data_parallel_mesh_is_one_auto_axis_over_the_devices():
    mesh = fld.data_parallel_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == jax.device_count()
    assert mesh.axis_types == (AxisType.Auto,)
    assert fld.data_parallel_mesh(1, axis="batch").axis_names == ("batch",)


def test_data_parallel_equality_and_normalisation():
    d = fld.DataParallel()
    assert d == fld.DataParallel(devices=jax.devices()) == fld.as_distribution(jax.device_count())
    assert hash(d) == hash(fld.as_distribution(fld.data_parallel_mesh()))
    assert d != fld.DataParallel(min_shard_size=7)
    assert fld.as_distribution(None) is None and fld.as_distribution(d) is d
    assert repr(d) == f"DataParallel(mesh={{'data': {jax.device_count()}}}, axis='data')"
    # a mesh from jax.make_mesh (Explicit axes) is rebuilt with Auto axes on the same devices
    explicit = jax.make_mesh((jax.device_count(),), ("x",))
    dp = fld.DataParallel(explicit)
    assert dp.axis == "x" and dp.mesh.axis_types == (AxisType.Auto,)
    assert list(dp.mesh.devices.flat) == list(explicit.devices.flat)


def test_fit_with_a_one_device_distribution_equals_plain_fit_and_compiles_once_per_distribution():
    x, y = _toy(70)
    model = _mlp()
    h1 = fl.fit(model, "cross_entropy", "adam", (x, y), epochs=2, batch_size=32, verbose=0)
    trainer = Trainer(model, "cross_entropy", "adam", ("accuracy",))
    h2 = fl.fit(model, "cross_entropy", "adam", (x, y), epochs=2, batch_size=32, verbose=0,
                distribution=1, trainer=trainer)
    for a, b in zip(jax.tree_util.tree_leaves(h1.params), jax.tree_util.tree_leaves(h2.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)
    assert h2.compiles.count == 2, h2.compiles.reasons       # full batches + the tail of 6
    fl.fit(model, "cross_entropy", "adam", (x, y), epochs=1, batch_size=32, verbose=0,
           distribution=fld.DataParallel(), trainer=trainer)
    assert trainer.train_step.compiles.count == 2            # same distribution: no recompile
    assert list(trainer._sharded) == [fld.DataParallel()]


# --------------------------------------------------------------------------------- batches
def test_pad_batch_pads_with_zero_weight_copies_of_the_last_row():
    x, y = _toy(10)
    (px, py, pw), n = fld.pad_batch((x, y), 4)
    assert n == 10 and px.shape == (12, 6) and py.shape == (12,)
    np.testing.assert_array_equal(px[:10], x)
    np.testing.assert_array_equal(px[10:], np.repeat(x[-1:], 2, 0))
    np.testing.assert_array_equal(pw, [1] * 10 + [0] * 2)
    w = np.linspace(0.5, 1.5, 10).astype(np.float32)
    (_, _, pw2), _ = fld.pad_batch((x, y, w), 3)
    np.testing.assert_array_equal(pw2, np.r_[w, 0, 0])
    same, n = fld.pad_batch((x[:8], y[:8]), 4)
    assert n == 8 and len(same) == 2 and same[0] is x[:8].base or same[0].shape == (8, 6)


def test_a_step_on_a_padded_batch_equals_the_step_on_the_real_rows():
    x, y = _toy(10)
    model, tx = _mlp(), optax.sgd(0.5)
    ts = TrainState.create(model, tx, jax.random.key(0), (1, 6))
    step = make_train_step(model, "cross_entropy", tx, donate=False)
    t1, l1 = step(ts, (jnp.asarray(x), jnp.asarray(y)))
    padded, _ = fld.pad_batch((x, y), 8)
    t2, l2 = step(ts, tuple(jnp.asarray(a) for a in padded))
    np.testing.assert_allclose(float(l1["loss"]), float(l2["loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(l1["accuracy"]), float(l2["accuracy"]), rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(t1.params), jax.tree_util.tree_leaves(t2.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # and the padding is not a no-op: weighting the copies 1 gives a different step
    t3, _ = step(ts, (jnp.asarray(padded[0]), jnp.asarray(padded[1])))
    assert not np.allclose(t3.params["0_dense"]["kernel"], t1.params["0_dense"]["kernel"])


def test_host_local_batch_to_global_in_one_process_is_the_batch_itself():
    x, y = _toy(8)       # (padding to the shard count: test_data_parallel.py, 4 devices)
    dist = fld.DataParallel()
    batch, n = fld.host_local_batch_to_global((x, y), dist)
    assert n == 8 and len(batch) == 2
    np.testing.assert_array_equal(np.asarray(batch[0]), x)
    np.testing.assert_array_equal(np.asarray(batch[1]), y)
    assert batch[0].sharding.spec == jax.sharding.PartitionSpec("data", None)


def test_to_host_and_replicate_keep_values_and_prng_keys():
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(3)}
    rep = fld.replicate(tree, fld.DataParallel())
    assert jnp.issubdtype(rep["key"].dtype, jax.dtypes.prng_key)
    host = fld.to_host(rep)
    np.testing.assert_array_equal(host["w"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(host["key"], jax.random.key_data(jax.random.key(3)))


# --------------------------------------------------------------------------- per-host data
@pytest.mark.parametrize("n,pc", [(10, 1), (10, 2), (10, 3), (7, 7), (1000, 8)])
def test_process_slice_gives_equal_disjoint_contiguous_shares(n, pc):
    slices = [fld.process_slice(n, i, pc) for i in range(pc)]
    rows = np.concatenate([np.arange(n)[s] for s in slices])
    np.testing.assert_array_equal(rows, np.arange((n // pc) * pc))   # disjoint, in order
    assert {s.stop - s.start for s in slices} == {n // pc}


def test_process_slice_defaults_to_this_process():
    assert fld.process_slice(10) == slice(0, 10 // jax.process_count())


# ---------------------------------------------------------------------- launch recipe (env)
def _env(**kw):
    return {f"FL_{k.upper()}": str(v) for k, v in kw.items()}


def test_initialize_from_env_single_process_cases_do_not_initialise():
    assert fld.initialize_from_env(_env(coordinator_address="localhost:1234", num_processes=1,
                                        process_id=0)) is False
    assert fld.initialize_from_env({}, auto_detect=False) is False
    assert not jax.distributed.is_initialized()


def test_initialize_from_env_without_a_cluster_falls_back_to_one_process():
    # JAX's own cluster detection runs and finds nothing in a bare environment; a subprocess so
    # that nothing can be initialised in the test process
    env = {"PATH": os.environ.get("PATH", ""), "JAX_PLATFORMS": "cpu", "HOME": os.environ.get("HOME", "/tmp")}
    code = ("from functorch_lite import distributed as fld; import jax; "
            "r = fld.initialize_from_env(); print(r, jax.process_count())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "1"]


# --------------------------------------------------------------------------------- errors
def test_config_errors():
    mesh = fld.data_parallel_mesh()
    with pytest.raises(ConfigError, match=r"DataParallel: expected mesh or devices, not both"):
        fld.DataParallel(mesh, devices=1)
    with pytest.raises(ConfigError, match=r"DataParallel: mesh expected a jax.sharding.Mesh, got list"):
        fld.DataParallel(jax.devices())
    with pytest.raises(ConfigError, match=r"DataParallel: axis 'batch' is not an axis of the mesh; "
                                          r"expected one of \['data'\]"):
        fld.DataParallel(mesh, axis="batch")
    with pytest.raises(ConfigError, match=r"DataParallel: param_axis 'model' is not an axis of the "
                                          r"mesh; expected one of \['data'\]"):
        fld.DataParallel(mesh, param_axis="model")
    with pytest.raises(ConfigError, match=r"DataParallel: param_axis must differ from the data "
                                          r"axis, both are 'data'"):
        fld.DataParallel(mesh, param_axis="data")
    with pytest.raises(ConfigError, match=r"data_parallel_mesh: devices expected at least one "
                                          r"device, got an empty sequence"):
        fld.DataParallel(devices=[])
    with pytest.raises(ConfigError, match=r"data_parallel_mesh: devices expected jax.Device objects "
                                          r"\(e.g. jax.devices\(\)\), got str 'cpu:0'"):
        fld.data_parallel_mesh(["cpu:0"])
    with pytest.raises(ConfigError, match=r"data_parallel_mesh: devices contains duplicates"):
        fld.data_parallel_mesh([jax.devices()[0]] * 2)
    with pytest.raises(ConfigError, match=r"data_parallel_mesh: devices=0 expected a count in \[1, "):
        fld.data_parallel_mesh(0)
    with pytest.raises(ConfigError, match=r"make_mesh: model expected a positive int, got 0"):
        fld.make_mesh(model=0)
    with pytest.raises(ConfigError, match=r"fsdp_shardings: axis 'model' is not an axis of the "
                                          r"mesh; expected one of \['data'\]"):
        fld.fsdp_shardings({"w": jnp.zeros(4)}, mesh)
    x, y = _toy(8)
    with pytest.raises(ConfigError, match=r"fit: distribution: expected a DataParallel, a "
                                          r"jax.sharding.Mesh, a sequence of jax devices or a device "
                                          r"count, got str 'gpu'"):
        fl.fit(_mlp(), "cross_entropy", "adam", (x, y), batch_size=4, verbose=0, distribution="gpu")
    with pytest.raises(ConfigError, match=r"evaluate: distribution: expected a DataParallel"):
        fl.evaluate(_mlp(), {}, (x, y), distribution=2.0)


def test_batch_errors():
    x, y = _toy(8)
    with pytest.raises(ConfigError, match=r"pad_batch: expected a batch \(x, y\) or \(x, y, "
                                          r"sample_weight\), got tuple of 1"):
        fld.pad_batch((x,), 4)
    with pytest.raises(ConfigError, match=r"pad_batch: x, y \(and sample_weight\) must have the same "
                                          r"leading batch size, got \[\(8, 6\), \(5,\)\]"):
        fld.pad_batch((x, y[:5]), 4)


def test_process_slice_errors():
    with pytest.raises(ConfigError, match=r"process_slice: n expected an int, got 2.5"):
        fld.process_slice(2.5, 0, 1)
    with pytest.raises(ConfigError, match=r"process_slice: process_index expected in \[0, 2\), got 2 "
                                          r"\(process_count=2\)"):
        fld.process_slice(10, 2, 2)
    with pytest.raises(ConfigError, match=r"process_slice: 3 examples cannot be split over 4 processes"):
        fld.process_slice(3, 0, 4)


def test_initialize_from_env_errors():
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_COORDINATOR_ADDRESS set but "
                                          r"FL_NUM_PROCESSES, FL_PROCESS_ID missing\nHint: set all of "
                                          r"FL_COORDINATOR_ADDRESS, FL_NUM_PROCESSES, FL_PROCESS_ID"):
        fld.initialize_from_env(_env(coordinator_address="h:1"))
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_NUM_PROCESSES expected an "
                                          r"integer, got 'two'"):
        fld.initialize_from_env(_env(coordinator_address="h:1", num_processes="two", process_id=0))
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_PROCESS_ID expected in \[0, 2\) "
                                          r"with FL_NUM_PROCESSES=2, got 2"):
        fld.initialize_from_env(_env(coordinator_address="h:1", num_processes=2, process_id=2))
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_COORDINATOR_ADDRESS expected "
                                          r"host:port, got 'localhost'"):
        fld.initialize_from_env(_env(coordinator_address="localhost", num_processes=2, process_id=0))
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_LOCAL_DEVICE_IDS expected "
                                          r"comma-separated integers, got '0;1'"):
        fld.initialize_from_env(_env(coordinator_address="h:1", num_processes=2, process_id=0,
                                     local_device_ids="0;1"))
    assert not jax.distributed.is_initialized()
