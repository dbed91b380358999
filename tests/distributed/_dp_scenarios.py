"""Data-parallel scenarios on 4 forced host devices, run in a subprocess by test_data_parallel.py.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/distributed/_dp_scenarios.py OUT.json [NAME ...]

Every scenario trains the same model twice from the same initial TrainState on the same global
batches: once on one device (plain ``fit`` / a plain jitted step, the independent reference) and
once data-parallel, and asserts equal parameters (float tolerance).  Results: {name: "ok" |
traceback} in OUT.json.
"""
import json
import os
import sys
import time
import traceback

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=4").strip()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)   # the repository's own ``nets`` package

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import functorch_lite as fl  # noqa: E402
from functorch_lite import distributed as fld  # noqa: E402
from functorch_lite.core.errors import ConfigError  # noqa: E402
from functorch_lite.train import TrainState  # noqa: E402

TOL = dict(rtol=2e-5, atol=2e-6)


def toy(n, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, classes)).astype(np.float32)
    return x, (x @ w).argmax(-1).astype(np.int32)


def images(n, seed=1, size=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


def mlp():
    return fl.Sequential([fl.Dense(16), fl.relu, fl.Dense(3)])


def copy(tree):
    """A single-device host-independent copy (fit donates the TrainState it is given)."""
    return jax.tree_util.tree_map(lambda a: jnp.array(np.asarray(a)) if not jnp.issubdtype(
        a.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(jnp.array(jax.random.key_data(a))), tree)


def initial(model, tx, spec, seed=0):
    return TrainState.create(model, optax_tx(tx), jax.random.key(seed), spec)


def optax_tx(tx):
    return fl.optim.get(tx)


def assert_trees_close(a, b, **tol):
    la, lb = jax.tree_util.tree_leaves(fld.to_host(a)), jax.tree_util.tree_leaves(fld.to_host(b))
    assert len(la) == len(lb) and la, (len(la), len(lb))
    for u, v in zip(la, lb):
        np.testing.assert_allclose(u, v, **(tol or TOL))


def assert_trees_differ(a, b):
    la, lb = jax.tree_util.tree_leaves(fld.to_host(a)), jax.tree_util.tree_leaves(fld.to_host(b))
    assert any(not np.allclose(u, v) for u, v in zip(la, lb))


def fit_both(model, data, dist, *, tx="adam", loss="cross_entropy", spec=None, **kw):
    """Train from the same initial state on one device and data-parallel; return both histories."""
    first = data[0] if isinstance(data, tuple) else next(iter(data))[0]
    spec = spec or (1,) + tuple(first.shape[1:])
    ts0 = initial(model, tx, spec)
    tx_ = optax_tx(tx)
    h1 = fl.fit(model, loss, tx_, data, train_state=copy(ts0), verbose=0, **kw)
    h2 = fl.fit(model, loss, tx_, data, train_state=copy(ts0), verbose=0, distribution=dist, **kw)
    assert_trees_differ(h1.params, ts0.params)            # training happened at all
    return h1, h2


def check_replicated(tree, ndev):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert leaf.sharding.is_fully_replicated, leaf.sharding
        assert len(leaf.sharding.device_set) == ndev, leaf.sharding


# ------------------------------------------------------------------------------ scenarios
def scenario_fit_mlp_with_padded_tail():
    assert jax.device_count() == 4
    x, y = toy(202)                            # 3 batches of 64 + a tail of 10 (padded to 12)
    h1, h2 = fit_both(mlp(), (x, y), fld.DataParallel(), epochs=3, batch_size=64,
                      validation_data=(x[:50], y[:50]))
    assert_trees_close(h1.params, h2.params)
    assert_trees_close(h1.train_state.opt_state, h2.train_state.opt_state)
    check_replicated(h2.train_state.params, 4)
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h1.history[k], h2.history[k], rtol=1e-5)
    assert h2.compiles.count == 2, h2.compiles.reasons      # full batches + the padded tail
    assert "(12, 6)" in h2.compiles.reasons[1], h2.compiles.reasons
    assert int(h2.train_state.step) == 3 * 4


def scenario_fit_cnn_dropout_mesh_from_jax_make_mesh():
    from nets.cnn import cnn
    x, y = images(64)                           # 2 batches of 32 (the padded tail: MLP scenario)
    mesh = jax.make_mesh((4,), ("data",))       # Explicit axes by default in this JAX
    h1, h2 = fit_both(cnn(dropout=0.25), (x, y), mesh, epochs=2, batch_size=32)
    assert_trees_close(h1.params, h2.params, rtol=1e-4, atol=1e-5)
    check_replicated(h2.params, 4)


def scenario_fit_batchnorm_state_on_two_of_four_devices():
    model = fl.Sequential([fl.Dense(16), fl.BatchNorm(), fl.relu, fl.Dense(3)])
    x, y = toy(128, seed=3)
    devs = jax.devices()[:2]
    h1, h2 = fit_both(model, (x, y), devs, epochs=2, batch_size=32, tx="sgd")
    assert_trees_close(h1.params, h2.params)
    assert_trees_close(h1.train_state.state, h2.train_state.state)   # BN running mean/var
    check_replicated(h2.train_state.state, 2)


def scenario_fit_steps_per_execution_device_count():
    x, y = toy(200, seed=4)
    h1, h2 = fit_both(mlp(), (x, y), 4, epochs=2, batch_size=32, steps_per_execution=2)
    assert_trees_close(h1.params, h2.params)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)


class Batches:
    """An iterable of batches (not a tuple/list, which fit would take as arrays)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def scenario_fit_iterable_batches_with_odd_batch():
    x, y = toy(102, seed=5)
    batches = Batches([(x[:40], y[:40]), (x[40:80], y[40:80]), (x[80:], y[80:])])   # 40, 40, 22
    dist = fld.DataParallel()
    (gx, gy, gw), n = dist.host_local_batch_to_global((x[:22], y[:22]))
    assert n == 22 and gx.shape == (24, 6) and gx.addressable_shards[0].data.shape == (6, 6)
    np.testing.assert_array_equal(np.asarray(gx)[:22], x[:22])
    np.testing.assert_array_equal(np.asarray(gw), [1] * 22 + [0] * 2)
    h1, h2 = fit_both(mlp(), batches, dist, epochs=2, batch_size=40)
    assert_trees_close(h1.params, h2.params)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)


def scenario_fsdp_params_sharded_over_model_axis():
    dist = fld.DataParallel(fld.make_mesh(2, 2), param_axis="model", min_shard_size=0)
    assert dist.num_shards == 4 and dist.batch_axes == ("data", "model")
    x, y = toy(136, seed=6)
    h1, h2 = fit_both(mlp(), (x, y), dist, epochs=2, batch_size=32)
    assert_trees_close(h1.params, h2.params)
    k = h2.params["0_dense"]["kernel"]                       # (6, 16): split on the 16
    assert k.sharding.spec == jax.sharding.PartitionSpec(None, "model"), k.sharding
    assert k.addressable_shards[0].data.shape == (6, 8)
    moments = [a for a in jax.tree_util.tree_leaves(h2.train_state.opt_state) if a.shape == (6, 16)]
    assert len(moments) == 2                                   # adam's mu and nu follow the params
    assert all(m.addressable_shards[0].data.shape == (6, 8) for m in moments)
    b = h2.params["2_dense"]["bias"]                          # (3,): nothing divisible -> replicated
    assert b.sharding.is_fully_replicated


def scenario_compiled_step_contains_the_gradient_all_reduce():
    model, dist = mlp(), fld.DataParallel()
    x, y = toy(64)
    trainer = fl.train.Trainer(model, "cross_entropy", "sgd", ("accuracy",))
    ts = dist.put_state(initial(model, "sgd", (1, 6)))
    batch = dist.shard_batch((x, y))
    assert batch[0].addressable_shards[0].data.shape == (16, 6)
    hlo = trainer.sharded(dist)._step.lower(ts, batch).compile().as_text()
    assert "all-reduce" in hlo
    single = trainer.train_step._fn.lower(initial(model, "sgd", (1, 6)), (x, y)).compile().as_text()
    assert "all-reduce" not in single


def scenario_hand_written_step_on_shard_batch_and_replicate():
    """The torch-adapter pattern: its own jit(value_and_grad) + update, arrays placed by
    shard_batch/replicate, no sharding code in the step; SGD on single device as reference."""
    model = mlp()
    x, y = toy(96, seed=7)
    params0 = model.init(jax.random.key(0), (1, 6))[0]

    @jax.jit
    def step(p, xb, yb):
        def loss(p):
            logits = model.apply(p, {}, xb)[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        g = jax.grad(loss)(p)
        return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)

    dist = fld.DataParallel()
    p1, p2 = params0, fld.replicate(params0, dist.mesh)
    for i in range(0, 96, 32):
        p1 = step(p1, x[i:i + 32], y[i:i + 32])
        xb, yb = fld.shard_batch((x[i:i + 32], y[i:i + 32]), dist)
        p2 = step(p2, xb, yb)
    assert_trees_close(p1, p2)
    assert_trees_differ(p1, params0)
    check_replicated(p2, 4)


def scenario_evaluate_and_predict_with_distribution():
    model = mlp()
    x, y = toy(50, seed=8)                 # batches of 16 + a tail of 2 (padded to 4)
    ts = initial(model, "adam", (1, 6))
    e1 = fl.evaluate(model, ts, (x, y), batch_size=16, loss="cross_entropy")
    e2 = fl.evaluate(model, ts, (x, y), batch_size=16, loss="cross_entropy", distribution=4)
    assert e1.keys() == e2.keys() and "loss" in e1
    for k in e1:
        np.testing.assert_allclose(e1[k], e2[k], rtol=1e-6)
    p1 = fl.predict(model, ts, x, batch_size=16)
    p2 = fl.predict(model, ts, x, batch_size=16, distribution=fld.DataParallel())
    assert p2.shape == (50, 3)
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-6)


def scenario_errors_that_need_several_devices():
    dist = fld.DataParallel()
    x, y = toy(64)
    with pytest.raises(ConfigError, match=r"fit: batch size 30 is not divisible by the 4 "
                                          r"data-parallel shards of DataParallel\(mesh=\{'data': 4\}"
                                          r"(.|\n)*Hint: use a multiple of 4, e.g. 28 or 32"):
        fl.fit(mlp(), "cross_entropy", "adam", (x, y), batch_size=30, verbose=0, distribution=dist)
    with pytest.raises(ConfigError, match=r"shard_batch: batch size 6 is not divisible by the 4 "
                                          r"(.|\n)*e.g. 4 or 8"):
        fld.shard_batch((x[:6], y[:6]), dist)
    with pytest.raises(ConfigError, match=r"batch size 2 is not divisible(.|\n)*e.g. 4$"):
        dist.check_batch_size(2)
    with pytest.raises(ConfigError, match=r"host_local_batch_to_global: process-local batch size 6 "
                                          r"is not divisible by the 4 batch shards this process holds"):
        fld.host_local_batch_to_global((x[:6], y[:6]), dist, pad=False)
    with pytest.raises(ConfigError, match=r"data_parallel_mesh: devices=5 expected a count in "
                                          r"\[1, 4\] \(this job has 4 devices\)"):
        fl.fit(mlp(), "cross_entropy", "adam", (x, y), batch_size=32, verbose=0, distribution=5)
    with pytest.raises(ConfigError, match=r"make_mesh: data x model = 3 x 2 = 6 expected to equal "
                                          r"the number of devices, 4"):
        fld.make_mesh(3, 2)
    with pytest.raises(ConfigError, match=r"DataParallel: axis 'data' is not an axis of the mesh; "
                                          r"expected one of \['a', 'b'\]"):
        fld.DataParallel(fld.make_mesh(2, 2, axis_names=("a", "b")))
    # a 2-D mesh without param_axis: the batch splits over 'data' only, replicated over 'model'
    d2 = fld.DataParallel(fld.make_mesh(2, 2))
    assert d2.num_shards == 2
    xb = d2.shard_batch(x[:6])
    assert xb.addressable_shards[0].data.shape == (3, 6)


# ---------------------------------------------------------------- the Keras-like adapter
def keras_model(keras, seed=0, dropout=0.2):
    """A small Keras model, the same initial weights for the same seed (set_random_seed)."""
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dropout(dropout), keras.layers.Dense(3)])
    m.compile(optimizer="adam", metrics=["accuracy"],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def assert_weights_close(m1, m2, **tol):
    w1, w2 = m1.get_weights(), m2.get_weights()
    assert len(w1) == len(w2) == 4
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, **(tol or TOL))


def scenario_keras_fit_under_set_distribution_equals_single_device():
    import functorch_lite.keras as keras
    kd = keras.distribution
    x, y = toy(200, seed=9)        # 180 training rows after validation_split: 5 x 32 + 20
    assert kd.list_devices() == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
    # each model is built right before its fit: then both draw the same seeds (set_random_seed)
    # for the initial weights, the shuffles and the dropout masks
    m1 = keras_model(keras)
    w0 = m1.get_weights()
    h1 = m1.fit(x, y, batch_size=32, epochs=2, validation_split=0.1, verbose=0)   # shuffled
    dist = kd.DataParallel(devices=kd.list_devices())
    assert dist.batch_dim_name == "batch" and dist.device_mesh.shape == (4,)
    kd.set_distribution(dist)
    try:
        assert kd.distribution() is dist
        m2 = keras_model(keras)
        h2 = m2.fit(x, y, batch_size=32, epochs=2, validation_split=0.1, verbose=0)
        assert_weights_close(m1, m2)
        assert any(not np.allclose(a, b) for a, b in zip(w0, m1.get_weights()))
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(h1.history[k], h2.history[k], rtol=1e-5, err_msg=k)
        check_replicated(m2.params, 4)                   # weights replicated on the 4 devices
        check_replicated(m2._k.opt["opt_state"], 4)      # and Adam's moments
        np.testing.assert_allclose(m1.evaluate(x, y, verbose=0), m2.evaluate(x, y, verbose=0),
                                   rtol=1e-6)
        p2 = m2.predict(x[:50], batch_size=10, verbose=0)   # batches of 10 padded to 12
        np.testing.assert_allclose(m1.predict(x[:50], batch_size=10, verbose=0), p2,
                                   rtol=1e-5, atol=1e-6)
        # single batches of 30 rows: padded to 32 with zero-weight rows, the same step
        r2 = m2.train_on_batch(x[:30], y[:30], return_dict=True)
        t2 = m2.test_on_batch(x[30:60], y[30:60], return_dict=True)
    finally:
        kd.set_distribution(None)
    r1 = m1.train_on_batch(x[:30], y[:30], return_dict=True)
    t1 = m1.test_on_batch(x[30:60], y[30:60], return_dict=True)
    assert_weights_close(m1, m2)
    for a, b in ((r1, r2), (t1, t2)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)


def scenario_keras_scope_device_mesh_padded_tail_and_errors():
    import functorch_lite.keras as keras
    from functorch_lite.distributed import DataParallel as FlDataParallel
    kd = keras.distribution
    x, y = toy(90, seed=10)        # batches of 16 and a tail of 10, padded to 12 on 4 devices
    m1 = keras_model(keras, 1, 0.0)
    m1.fit(x, y, batch_size=16, epochs=2, verbose=0)
    mesh = kd.DeviceMesh((2,), ["replicas"], devices=kd.list_devices()[2:])
    dist = kd.DataParallel(device_mesh=mesh)
    with dist.scope():
        assert kd.distribution() is dist
        m2 = keras_model(keras, 1, 0.0)
        m2.fit(x, y, batch_size=16, epochs=2, verbose=0)
        with pytest.raises(ConfigError, match=r"fit: batch size 15 is not divisible by the 2 "
                                              r"data-parallel shards of DataParallel\(mesh="
                                              r"\{'replicas': 2\}(.|\n)*Hint: use a multiple of "
                                              r"2, e.g. 14 or 16"):
            m2.fit(x, y, batch_size=15, epochs=1, verbose=0)
    assert kd.distribution() is None
    assert_weights_close(m1, m2)
    check_replicated(m2.params, 2)
    assert {d.id for leaf in jax.tree_util.tree_leaves(m2.params)
            for d in leaf.sharding.device_set} == {2, 3}
    # a functorch_lite.distributed.DataParallel is accepted as it is (FSDP-style sharding)
    m3 = keras_model(keras, 1, 0.0)
    kd.set_distribution(FlDataParallel(fld.make_mesh(2, 2), param_axis="model", min_shard_size=0))
    try:
        m3.fit(x, y, batch_size=16, epochs=2, verbose=0)
    finally:
        kd.set_distribution(None)
    assert_weights_close(m1, m3)
    with pytest.raises(ConfigError, match=r"DeviceMesh: shape \(3,\) expected 3 devices, got 4"):
        kd.DeviceMesh((3,), ["batch"])
    with pytest.raises(ConfigError, match=r"DeviceMesh: device 'gpu:0' expected one of "
                                          r"\['cpu:0', 'cpu:1', 'cpu:2', 'cpu:3'\]"):
        kd.DataParallel(devices=["gpu:0"])


# ---------------------------------------------------------------- the torch-like adapter
def torch_net(torch, nn):
    """A small CNN with BatchNorm and dropout (no conv bias before the BatchNorm: its gradient
    is 0 up to rounding, which Adam would turn into noise-driven updates)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 6 * 6, 3))


def torch_loop(torch, F, model, x, y, steps, batch=32, opt="adam"):
    torch.manual_seed(1)           # the same dropout masks
    o = (torch.optim.Adam(model.parameters(), lr=0.01) if opt == "adam" else
         torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    losses = []
    for i in range(steps):
        xb = torch.from_numpy(x[i * batch:(i + 1) * batch])
        yb = torch.from_numpy(y[i * batch:(i + 1) * batch])
        o.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        o.step()
        losses.append(loss.item())
    return losses, o


def torch_data(n=96, seed=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def assert_state_dicts_close(sd1, sd2, prefix="module."):
    assert [prefix + k for k in sd1] == list(sd2)
    for k, v in sd1.items():
        np.testing.assert_allclose(v.numpy(), sd2[prefix + k].numpy(), err_msg=k, **TOL)


def scenario_torch_data_parallel_loop_equals_single_device():
    import copy
    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F
    x, y = torch_data()
    net = torch_net(torch, nn)
    single, dp = copy.deepcopy(net), nn.DataParallel(copy.deepcopy(net))
    torch.compile_log().reset()
    l1, _ = torch_loop(torch, F, single, x, y, 3)
    assert torch.compile_log().by_kind == {"step": 1}
    torch.compile_log().reset()
    l2, opt = torch_loop(torch, F, dp, x, y, 3)
    assert torch.compile_log().by_kind == {"step": 1}, torch.compile_log().reasons  # one compile
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    assert_state_dicts_close(single.state_dict(), dp.state_dict())   # params and BN buffers
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in
               zip(net.state_dict().values(), single.state_dict().values()))
    check_replicated([p._node.value for p in dp.parameters()], 4)
    check_replicated([b._node.value for b in dp.buffers()], 4)
    check_replicated([v for s in opt._arrays.values() for v in s.values()], 4)   # Adam's state
    # the input is split over the 4 devices along the batch
    xb = dp._scatter(torch.from_numpy(x[:32]))._node.value
    assert xb.sharding.spec == jax.sharding.PartitionSpec("data", None, None, None)
    assert {s.data.shape for s in xb.addressable_shards} == {(8, 1, 8, 8)}
    # inference: the same outputs, split over the devices
    single.eval()
    dp.eval()
    with torch.no_grad():
        o1, o2 = single(torch.from_numpy(x[:8])), dp(torch.from_numpy(x[:8]))
        np.testing.assert_allclose(o1.numpy(), o2.numpy(), **TOL)
        assert len(o2._value().sharding.device_set) == 4


def scenario_torch_compiled_step_contains_the_gradient_all_reduce():
    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F
    from functorch_lite.torch import graph
    seen = []
    original = graph._compile

    def spy(key, diff_is, const_is, update):
        fn = original(key, diff_is, const_is, update)

        def run(*args):
            seen.append((fn, args))
            return fn(*args)
        return run
    x, y = torch_data(64)
    graph._CACHE.clear()           # compile again (an earlier scenario cached this graph)
    graph._compile = spy
    try:
        for model in (torch_net(torch, nn), nn.DataParallel(torch_net(torch, nn))):
            torch_loop(torch, F, model, x, y, 1)
    finally:
        graph._compile = original
    (f1, a1), (f2, a2) = seen[-2:]
    assert "all-reduce" not in f1.lower(*a1).compile().as_text()
    hlo = f2.lower(*a2).compile().as_text()
    assert "all-reduce" in hlo          # XLA's gradient all-reduce inside the one compiled step


def scenario_torch_device_ids_dataloader_ddp_and_errors():
    import copy
    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F
    from functorch_lite.torch.utils.data import DataLoader, TensorDataset
    x, y = toy(100, seed=13)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def loop(model):
        o = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        for _ in range(2):
            for xb, yb in DataLoader(data, batch_size=32, drop_last=True):   # 3 x 32, no tail
                o.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                o.step()
        return o
    single = copy.deepcopy(net)
    loop(single)
    dp2 = nn.DataParallel(copy.deepcopy(net), device_ids=[1, 3])
    opt = loop(dp2)
    assert_state_dicts_close(single.state_dict(), dp2.state_dict())
    assert {d.id for p in dp2.parameters() for d in p._node.value.sharding.device_set} == {1, 3}
    check_replicated([v for s in opt._arrays.values() for v in s.values()], 2)
    ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(net))   # one process: its batch is global
    loop(ddp)
    assert_state_dicts_close(single.state_dict(), ddp.state_dict())
    # load_state_dict puts single-device values in: the next forward replicates them again
    dp2.module.load_state_dict(net.state_dict())
    dp2(torch.from_numpy(x[:4]))
    check_replicated([p._node.value for p in dp2.parameters()], 2)
    dp = nn.DataParallel(copy.deepcopy(net))
    with pytest.raises(ConfigError, match=r"DataParallel: input size 30 along dim 0 is not "
                                          r"divisible by the 4 devices of DataParallel\(mesh="
                                          r"\{'data': 4\}, axis='data'\)\nHint: use a batch size "
                                          r"that is a multiple of 4, e.g. 28 or 32 \(DataLoader"
                                          r"\(..., drop_last=True\) drops a last partial batch\)"):
        dp(torch.from_numpy(x[:30]))
    with pytest.raises(ConfigError, match=r"DistributedDataParallel: process-local input size 6 "
                                          r"is not divisible by the 4 devices of this process"):
        ddp(torch.from_numpy(x[:6]))
    with pytest.raises(ConfigError, match=r"DataParallel: device_ids expected indices in \[0, 4\) "
                                          r"of jax.devices\(\) or jax devices, got 4"):
        nn.DataParallel(copy.deepcopy(net), device_ids=[0, 4])
    with pytest.raises(ConfigError, match=r"DataParallel: expected device_ids or distribution, "
                                          r"not both"):
        nn.DataParallel(net, device_ids=[0], distribution=2)


SCENARIOS = {k[len("scenario_"):]: v for k, v in globals().items() if k.startswith("scenario_")}


def main(argv):
    out, names = argv[0], argv[1:] or list(SCENARIOS)
    results = {}
    for name in names:
        t = time.perf_counter()
        try:
            SCENARIOS[name]()
            results[name] = "ok"
        except BaseException:  # noqa: BLE001 - report everything to the parent test
            results[name] = traceback.format_exc()
        results[name + ":seconds"] = round(time.perf_counter() - t, 2)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
