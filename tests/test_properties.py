"""Property tests (hypothesis): shapes agree with jax.eval_shape, random models build or raise
our own error types, and the file readers never crash with anything but our errors."""
import io
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import functorch_lite as fl
from functorch_lite.core.errors import CheckpointError, ConfigError, DataError, ShapeError
from functorch_lite.datasets import read_idx

OURS = (ShapeError, ConfigError)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _layer(draw):
    kind = draw(st.sampled_from(["dense", "conv", "maxpool", "avgpool", "flatten", "relu",
                                 "layernorm", "batchnorm", "dropout"]))
    if kind == "dense":
        return fl.Dense(draw(st.integers(1, 8)))
    if kind == "conv":
        return fl.Conv(draw(st.integers(1, 4)), (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                       strides=draw(st.integers(1, 2)), padding=draw(st.sampled_from(["same", "valid", 1])),
                       dilation=draw(st.integers(1, 2)))
    if kind in ("maxpool", "avgpool"):
        cls = fl.MaxPool if kind == "maxpool" else fl.AvgPool
        w = draw(st.integers(1, 3))
        return cls((w, w), strides=draw(st.sampled_from([None, 1, 2])),
                   padding=draw(st.sampled_from(["valid", "same"])))
    return {"flatten": fl.Flatten(), "relu": fl.relu, "layernorm": fl.LayerNorm(),
            "batchnorm": fl.BatchNorm(), "dropout": fl.Dropout(0.5)}[kind]


@st.composite
def models_and_shapes(draw):
    layers = [_layer(draw) for _ in range(draw(st.integers(1, 4)))]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)),
             draw(st.integers(1, 3)))
    return fl.Sequential(layers), shape


@FAST
@given(models_and_shapes())
def test_random_sequential_builds_with_eval_shape_agreeing_or_raises_our_error(ms):
    model, shape = ms
    try:
        spec = fl.output_spec(model, shape)
    except OURS:
        return
    params, state = model.init(jax.random.key(0), shape)
    y, new_state = model.apply(params, state, jnp.ones(shape), key=jax.random.key(1), train=True)
    assert y.shape == spec.shape and y.dtype == spec.dtype
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    # params never depend on the batch size
    p2, _ = model.init(jax.random.key(0), (5,) + shape[1:])
    assert jax.tree_util.tree_map(jnp.shape, p2) == jax.tree_util.tree_map(jnp.shape, params)


@FAST
@given(features=st.integers(1, 6), wrong=st.integers(1, 6), batch=st.integers(1, 4))
def test_dense_feature_mismatch_is_a_shape_error_naming_both_shapes(features, wrong, batch):
    model = fl.Sequential([fl.Dense(features), fl.Dense(3)])
    params, state = model.init(jax.random.key(0), (1, 4))
    if wrong == 4:
        return
    with pytest.raises(ShapeError, match=rf"Dense '0_dense': input last axis {wrong} != kernel in-features 4"):
        model.apply(params, state, jnp.ones((batch, wrong)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_idx_reader_raises_only_data_error_on_random_bytes(blob):
    try:
        read_idx(blob)
    except DataError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=32), st.sampled_from([b"", b"\x00\x00\x08\x01", b"PK\x03\x04"]))
def test_idx_reader_on_random_headers(tail, head):
    try:
        read_idx(head + tail)
    except DataError:
        pass


def _valid_checkpoint_bytes():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.npz")
        fl.checkpoint.save(p, {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3)})
        with open(p, "rb") as f:
            return f.read()


VALID = _valid_checkpoint_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(VALID) - 1), flip=st.integers(0, len(VALID) - 1), mode=st.sampled_from(["cut", "flip", "random"]),
       noise=st.binary(max_size=200))
def test_checkpoint_loader_raises_only_checkpoint_error_on_damaged_files(tmp_path, cut, flip, mode, noise):
    data = {"cut": VALID[:cut], "flip": VALID[:flip] + bytes([VALID[flip] ^ 0xFF]) + VALID[flip + 1:],
            "random": noise}[mode]
    p = tmp_path / "bad.npz"
    p.write_bytes(data)
    target = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3)}
    for tgt in (None, target):
        try:
            fl.checkpoint.load(str(p), target=tgt)
        except CheckpointError:
            pass
