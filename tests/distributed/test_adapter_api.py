"""The adapters' distribution entry points on this process's single device: Keras 3's
``keras.distribution`` names, the torch ``nn.DataParallel`` wrapper and ``torch.distributed``'s
``init_process_group``, and their error messages.  Several devices: test_data_parallel.py;
several processes: test_multiprocess.py."""
import copy

import jax
import numpy as np
import pytest

import functorch_lite.keras as keras
import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
from functorch_lite import distributed as fld
from functorch_lite.core.errors import ConfigError

kd = keras.distribution


def _toy(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x @ rng.normal(size=(6, 3))).argmax(-1).astype(np.int32)


# ------------------------------------------------------------------ keras.distribution
def test_keras_distribution_names_and_state():
    assert kd.list_devices() == [f"cpu:{d.id}" for d in jax.devices()]
    assert kd.list_devices("cpu") == kd.list_devices()
    dist = kd.DataParallel()
    assert isinstance(dist, kd.Distribution) and dist.batch_dim_name == "batch"
    assert dist.device_mesh.shape == (jax.device_count(),)
    assert dist.device_mesh.axis_names == ("batch",)
    assert dist.functorch_distribution == fld.DataParallel(axis="batch", mesh=fld.data_parallel_mesh(axis="batch"))
    assert dist.get_variable_layout(None).spec == jax.sharding.PartitionSpec()
    assert dist.get_data_layout((8, 6)).spec == jax.sharding.PartitionSpec("batch", None)
    assert repr(dist.device_mesh) == f"<DeviceMesh shape=({jax.device_count()},), axis_names=['batch']>"
    assert kd.distribution() is None
    with dist.scope():
        assert kd.distribution() is dist
    assert kd.distribution() is None


def test_keras_fit_under_a_one_device_distribution_equals_plain_fit():
    x, y = _toy(70)

    def run(dist):
        keras.utils.set_random_seed(3)
        m = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
        m.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        with (dist.scope() if dist is not None else _null()):
            m.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return m.get_weights()
    for a, b in zip(run(None), run(kd.DataParallel(devices=kd.list_devices()[:1]))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_keras_distribution_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"list_devices: device_type expected 'cpu', 'gpu' or "
                                          r"'tpu', got 'xpu'"):
        kd.list_devices("xpu")
    with pytest.raises(ConfigError, match=r"DeviceMesh: shape and axis_names expected non-empty"):
        kd.DeviceMesh((), [])
    with pytest.raises(ConfigError, match=r"DeviceMesh: shape and axis_names expected the same "
                                          r"length, got shape=\(1,\), axis_names=\['a', 'b'\]"):
        kd.DeviceMesh((1,), ["a", "b"])
    with pytest.raises(ConfigError, match=r"DeviceMesh: devices expected jax devices or names "
                                          r"from list_devices\(\), got float 1.5"):
        kd.DeviceMesh((1,), ["batch"], devices=[1.5])
    with pytest.raises(ConfigError, match=r"DataParallel: expected device_mesh or devices, not both"):
        kd.DataParallel(kd.DeviceMesh((1,), ["batch"], kd.list_devices()[:1]), devices=["cpu:0"])
    with pytest.raises(ConfigError, match=r"DataParallel: device_mesh expected a keras.distribution"
                                          r".DeviceMesh, got Mesh"):
        kd.DataParallel(device_mesh=fld.data_parallel_mesh())
    with pytest.raises(ConfigError, match=r"set_distribution: expected a keras.distribution."
                                          r"DataParallel, a functorch_lite.distributed.DataParallel "
                                          r"or None, got str 'mirrored'"):
        kd.set_distribution("mirrored")
    for v in ("JOB_ADDRESSES", "NUM_PROCESSES", "PROCESS_ID"):
        monkeypatch.delenv(f"KERAS_DISTRIBUTION_{v}", raising=False)
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:2345")
    with pytest.raises(ConfigError, match=r"initialize: num_processes, process_id missing \(set "
                                          r"KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_"
                                          r"PROCESS_ID or pass them\)\nHint: pass job_addresses, "
                                          r"num_processes and process_id together"):
        kd.initialize()
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_PROCESS_ID expected in \[0, 2\)"):
        kd.initialize(num_processes=2, process_id=5)


# ------------------------------------------------------------------ torch nn.DataParallel
def _loop(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for i in range(0, len(x), 16):
        opt.zero_grad()
        F.cross_entropy(model(torch.from_numpy(x[i:i + 16])), torch.from_numpy(y[i:i + 16])).backward()
        opt.step()
    return model


def test_torch_data_parallel_on_one_device_equals_the_module_and_keeps_torch_names():
    x, y = _toy(64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    single = _loop(copy.deepcopy(net), x, y)
    dp = _loop(nn.DataParallel(copy.deepcopy(net)), x, y)
    assert list(dp.state_dict()) == [f"module.{k}" for k in single.state_dict()]
    for k, v in single.state_dict().items():
        np.testing.assert_allclose(v.numpy(), dp.state_dict()[f"module.{k}"].numpy(), rtol=1e-6)
    assert dp.device_ids == jax.devices() and dp.dim == 0
    assert repr(dp).startswith("DataParallel(\n  distribution=DataParallel(mesh={'data': 1}")
    yb = torch.from_numpy(y[:4])
    assert dp.global_batch(yb).shape == (4,) and len(dp.global_batch(yb, yb)) == 2


def test_torch_data_parallel_and_distributed_errors(monkeypatch):
    with pytest.raises(TypeError, match=r"DataParallel: module expected an nn.Module, got function"):
        nn.DataParallel(lambda x: x)
    with pytest.raises(ConfigError, match=r"DataParallel: dim expected a non-negative int, got -1"):
        nn.DataParallel(nn.Linear(2, 2), dim=-1)
    with pytest.raises(ConfigError, match=r"DistributedDataParallel: process_group expected None"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), process_group="pg")
    with pytest.raises(ConfigError, match=r"DistributedDataParallel: dim expected 0"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), dim=1)
    for v in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(v, raising=False)
    assert torch.distributed.is_available() and not torch.distributed.is_initialized()
    assert torch.distributed.get_rank() == 0 and torch.distributed.get_world_size() == 1
    with pytest.raises(ConfigError, match=r"init_process_group: MASTER_ADDR/MASTER_PORT \(or "
                                          r"init_method\), WORLD_SIZE \(or world_size\), RANK \(or "
                                          r"rank\) not set"):
        torch.distributed.init_process_group("gloo")
    with pytest.raises(ConfigError, match=r"init_process_group: init_method expected 'env://' or "
                                          r"'tcp://host:port', got 'file:///tmp/x'"):
        torch.distributed.init_process_group("gloo", init_method="file:///tmp/x")
    with pytest.raises(ConfigError, match=r"initialize_from_env: FL_PROCESS_ID expected in \[0, 2\)"):
        torch.distributed.init_process_group(init_method="tcp://localhost:1", world_size=2, rank=3)
