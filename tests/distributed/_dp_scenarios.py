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
