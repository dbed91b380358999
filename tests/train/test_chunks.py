"""A train step that runs its batch through the model in pieces (core/xla.py: train_chunks):
which models may be split, how many pieces the CPU policy picks, and that the split step
computes the same loss, metrics and update as the whole batch."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import functorch_lite as fl
import functorch_lite.keras as keras
from functorch_lite import layers as L
from functorch_lite.core import xla
from functorch_lite.core.errors import ConfigError
from functorch_lite.train.state import TrainState
from functorch_lite.train.step import make_train_step

CPU = jax.default_backend() == "cpu"


def _cnn(*extra):
    return fl.Sequential([L.Conv(4, (3, 3), padding="same"), fl.relu, L.MaxPool((2, 2)),
                          *extra, L.Flatten(), L.Dense(10)])


def _keras(*extra):
    k = keras.layers
    m = keras.Sequential([keras.Input(shape=(8, 8, 1)), k.Conv2D(4, 3, activation="relu"),
                          *extra, k.Flatten(), k.Dense(10)])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return m.module


@pytest.mark.parametrize("model, expected", [
    (_cnn(), True),
    (_cnn(L.BatchNorm()), False),                           # batch statistics
    (_cnn(fl.Lambda(lambda x: x - x.mean(0))), False),      # an unknown function
    (_cnn(L.Dropout(0.5)), True),                           # per example, but random
    (fl.Residual(L.Conv(1, 3, padding="same")), True),
    (fl.Parallel(L.Dense(3), L.Dense(3), combine=jnp.add), True),
    (fl.Parallel(L.Dense(3), L.Dense(3), combine=lambda a, b: jnp.concatenate([a, b])), False),
    (_keras(), True),
    (_keras(keras.layers.BatchNormalization()), False),
])
def test_which_models_compute_every_example_on_its_own(model, expected):
    assert model.per_example is expected


@pytest.mark.skipif(not CPU, reason="the CPU policy")
@pytest.mark.parametrize("model, batch, expected", [
    (_cnn(), 128, xla.MAX_CHUNKS), (_cnn(), 64, 2), (_cnn(), 96, min(3, xla.MAX_CHUNKS)),
    (_cnn(), 100, 2), (_cnn(), 48, 1), (_cnn(), 16, 1),
    (fl.Sequential([L.Flatten(), L.Dense(16), fl.relu, L.Dense(10)]), 128, 1),   # no conv
    (_cnn(L.BatchNorm()), 128, 1), (_cnn(L.Dropout(0.5)), 128, 1), (_keras(), 256, xla.MAX_CHUNKS),
])
def test_cpu_splits_per_example_conv_models_into_pieces_of_at_least_32(model, batch, expected):
    assert xla.train_chunks(model, batch) == expected


def test_the_environment_forces_or_refuses_the_split(monkeypatch):
    monkeypatch.setenv("FUNCTORCH_LITE_TRAIN_CHUNKS", "1")
    assert xla.train_chunks(_cnn(), 128) == 1
    monkeypatch.setenv("FUNCTORCH_LITE_TRAIN_CHUNKS", "8")
    assert xla.train_chunks(_cnn(), 128) == 8
    assert xla.train_chunks(_cnn(), 12) == 6            # the largest count <= 8 dividing 12
    assert xla.train_chunks(_cnn(L.BatchNorm()), 128) == 1
    for bad in ("0", "four"):
        monkeypatch.setenv("FUNCTORCH_LITE_TRAIN_CHUNKS", bad)
        with pytest.raises(ValueError, match="FUNCTORCH_LITE_TRAIN_CHUNKS expected a positive int"):
            xla.train_chunks(_cnn(), 128)
    monkeypatch.delenv("FUNCTORCH_LITE_TRAIN_CHUNKS")
    monkeypatch.setenv("FUNCTORCH_LITE_CPU_CONV_LIBRARY", "0")   # XLA's defaults everywhere
    assert xla.train_chunks(_cnn(), 128) == 1


def _steps(model, chunks, batch, n=2):
    step = make_train_step(model, "cross_entropy", optax.sgd(0.1), chunks=chunks)
    ts = TrainState.create(model, step.tx, jax.random.key(0),
                           jax.ShapeDtypeStruct(batch[0].shape, batch[0].dtype))
    logs = []
    for _ in range(n):
        ts, lg = step(ts, batch)
        logs.append(lg)
    return ts, logs, step


@pytest.mark.parametrize("lowering", ["lax", "auto"])
@pytest.mark.parametrize("weighted", [False, True])
def test_a_split_step_makes_the_whole_batchs_update(weighted, lowering, monkeypatch):
    # 'auto': on CPU the one-channel conv is layers/shifted_conv.py's sum of shifted windows
    monkeypatch.setenv("FUNCTORCH_LITE_CONV_LOWERING", lowering)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((12, 8, 8, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, 12).astype(np.int32))
    batch = (x, y, jnp.asarray(rng.random(12, dtype=np.float32))) if weighted else (x, y)
    whole, lw, _ = _steps(_cnn(), 1, batch)
    split, ls, step = _steps(_cnn(), 3, batch)
    # the pieces really are separate: three forward convolutions in the step
    if lowering == "lax":
        jaxpr = jax.make_jaxpr(step.raw)(whole, batch)
        assert str(jaxpr).count("conv_general_dilated") >= 3 * 2   # forward and kernel grad each
    for a, b in zip(lw, ls):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
        np.testing.assert_allclose(a["accuracy"], b["accuracy"], rtol=1e-6)
    for u, v in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(split.params)):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not CPU, reason="the CPU policy")
def test_the_default_step_of_a_cnn_is_split_on_cpu(monkeypatch):
    monkeypatch.setenv("FUNCTORCH_LITE_CONV_LOWERING", "lax")   # forward convs seen as such
    x = jnp.zeros((64, 8, 8, 1))
    batch = (x, jnp.zeros((64,), jnp.int32))
    step = make_train_step(_cnn(), "cross_entropy", "sgd")
    ts = TrainState.create(_cnn(), step.tx, jax.random.key(0), jax.ShapeDtypeStruct(x.shape, x.dtype))
    forward = [e for e in jax.make_jaxpr(step.raw)(ts, batch).jaxpr.eqns
               if e.primitive.name == "conv_general_dilated" and e.outvars[0].aval.shape[-1] == 4
               and e.outvars[0].aval.shape[1:3] == (8, 8)]
    assert [e.outvars[0].aval.shape[0] for e in forward] == [32, 32]


def test_explicit_pieces_are_checked():
    with pytest.raises(ValueError, match="chunks expected a positive int or None, got 0"):
        make_train_step(_cnn(), "cross_entropy", "sgd", chunks=0)
    with pytest.raises(ConfigError, match="chunks=2 expected a model that computes every example"):
        make_train_step(_cnn(L.BatchNorm()), "cross_entropy", "sgd", chunks=2)
    x = jnp.zeros((10, 8, 8, 1))
    with pytest.raises(ValueError, match="chunks=4 expected to divide the batch size, got a batch "
                                         "of 10 examples"):
        _steps(_cnn(), 4, (x, jnp.zeros((10,), jnp.int32)), n=1)


def test_the_mnist_cnn_steps_gradient_is_jax_grads():
    """The step fit compiles for the MNIST CNN (on CPU: in pieces, with the conv library and the
    one-channel conv's sum of shifted windows) takes jax.grad's gradient of the plain loss: SGD
    with rate 1 moves every parameter by exactly it.  (A max pool whose mask compared a value
    recomputed in one XLA fusion with the pooled output of another sent conv1's gradient to the
    wrong positions in this step.)"""
    import nets
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 28, 28, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, 64).astype(np.int32))
    model = nets.cnn()
    step = make_train_step(model, "cross_entropy", optax.sgd(1.0))
    ts = TrainState.create(model, step.tx, jax.random.key(0), jax.ShapeDtypeStruct(x.shape, x.dtype))
    before = jax.tree_util.tree_map(np.asarray, ts.params)
    after, _ = step(ts, (x, y))
    want = jax.jit(jax.grad(lambda p: fl.losses.cross_entropy(model.apply(p, {}, x)[0], y)))(before)
    for (path, b), a, g in zip(jax.tree_util.tree_leaves_with_path(before),
                               jax.tree_util.tree_leaves(after.params), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(b - np.asarray(a), np.asarray(g), rtol=1e-4, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
