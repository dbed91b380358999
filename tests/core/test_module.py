"""The core contract: init/apply, specs, output_spec, without_state, hashing/repr, error format."""
import dataclasses

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core import errors
from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import (CheckpointError, ConfigError, DataError, ShapeError,
                                        TreeMismatchError, format_error, scope, unknown_option)
from functorch_lite.core.module import (Module, Stateless, as_spec, check_rank, has_state, module_name,
                                        output_spec, without_state)
from functorch_lite.layers import (AvgPool, BatchNorm, Conv, Dense, Dropout, Embedding, Flatten,
                                   GlobalAvgPool, MaxPool)
from functorch_lite.layers.activations import relu


def _mlp():  # (N, 2, 3) -> (N, 3); kernels (6, 6) and (6, 3), the shapes most tests here reuse
    return Sequential([Flatten(), Dense(6), relu, Dense(3)])


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), tree)


def test_init_returns_params_and_state_dicts():
    params, state = Dense(3).init(jax.random.key(0), (2, 6))
    assert isinstance(params, dict) and state == {}
    params, state = BatchNorm().init(jax.random.key(0), (2, 6))
    assert set(params) == {"scale", "bias"} and set(state) == {"mean", "var"}


def test_params_do_not_depend_on_batch_size():
    model = Sequential([Conv(6, 1), relu, MaxPool((2, 2)), Flatten(), Dense(3), BatchNorm()])
    p1, s1 = model.init(jax.random.key(0), (1, 2, 2, 6))
    p2, s2 = model.init(jax.random.key(0), (37, 2, 2, 6))
    assert _shapes(p1) == _shapes(p2) and _shapes(s1) == _shapes(s2)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p1, p2)


def test_spec_forms_are_equivalent():
    model = _mlp()
    x = jnp.zeros((3, 2, 3))
    from_tuple = model.init(jax.random.key(1), (3, 2, 3))
    from_struct = model.init(jax.random.key(1), jax.ShapeDtypeStruct((3, 2, 3), jnp.float32))
    from_array = model.init(jax.random.key(1), x)
    from_np = model.init(jax.random.key(1), np.zeros((3, 2, 3), np.float32))
    for other in (from_struct, from_array, from_np):
        jax.tree_util.tree_map(np.testing.assert_array_equal, from_tuple, other)
    assert as_spec((2, 3)) == jax.ShapeDtypeStruct((2, 3), jnp.float32)
    assert as_spec({"a": (2,), "b": x}) == {"a": jax.ShapeDtypeStruct((2,), jnp.float32),
                                            "b": jax.ShapeDtypeStruct((3, 2, 3), jnp.float32)}


def test_bad_spec_message():
    with pytest.raises(TypeError, match=r"spec: expected a shape tuple of ints \(batch axis first\), a "
                                        r"jax.ShapeDtypeStruct or an array, got 'x'"):
        Dense(3).init(jax.random.key(0), "x")
    with pytest.raises(TypeError, match=r"got 2.5"):
        as_spec((2.5, 3))


def test_output_spec_shape_and_dtype():
    assert output_spec(Sequential([Flatten(), Dense(32), relu, Dense(10)]), (7, 4, 5)) == \
        jax.ShapeDtypeStruct((7, 10), jnp.float32)
    cnn = Sequential([Conv(8, 3, padding="same", strides=2), relu, AvgPool((2, 2)), GlobalAvgPool()])
    assert output_spec(cnn, (2, 32, 30, 3)) == jax.ShapeDtypeStruct((2, 8), jnp.float32)
    assert output_spec(Dense(3), jax.ShapeDtypeStruct((4, 2), jnp.bfloat16)).dtype == jnp.bfloat16
    assert output_spec(Embedding(10, 4), jax.ShapeDtypeStruct((4, 2), jnp.int32)) == \
        jax.ShapeDtypeStruct((4, 2, 4), jnp.float32)
    # train=True passes a key, so models with Dropout work too
    assert output_spec(Sequential([Dense(5), Dropout(0.5)]), (3, 2), train=True).shape == (3, 5)


def test_output_spec_computes_nothing():
    """A batch of 10**9 x 784 float32 (3 TB) cannot be allocated: only abstract evaluation works."""
    out = output_spec(Sequential([Flatten(), Dense(128), relu, Dense(10)]), (10 ** 9, 784))
    assert out == jax.ShapeDtypeStruct((10 ** 9, 10), jnp.float32)
    assert output_spec(Sequential([Dense(8), BatchNorm()]), (10 ** 9, 784), train=True).shape == (10 ** 9, 8)


def test_without_state_for_a_stateless_model():
    model = Sequential([Dense(6), relu, Dropout(0.5), Dense(3)])
    view = without_state(model)
    params = view.init(jax.random.key(0), (4, 6))
    ref_params, ref_state = model.init(jax.random.key(0), (4, 6))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, ref_params)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    np.testing.assert_array_equal(view.apply(params, x), model.apply(params, ref_state, x)[0])
    k = jax.random.key(3)
    np.testing.assert_array_equal(view(params, x, key=k, train=True),
                                  model.apply(params, ref_state, x, key=k, train=True)[0])
    assert repr(view) == f"without_state({model!r})"
    assert isinstance(view, Stateless) and view == without_state(model)
    assert hash(view) == hash(without_state(model))
    assert not has_state(model, (4, 6))


def test_without_state_rejects_a_model_with_state():
    model = Sequential([Dense(6), BatchNorm(), relu])
    assert has_state(model, (4, 6))
    with pytest.raises(ValueError, match=r"without_state\(Sequential\(Dense\(features=6\), BatchNorm\(\), relu\)\): "
                                         r"the model has state \(1_batch_norm/mean, 1_batch_norm/var\); use "
                                         r"model.init/model.apply"):
        without_state(model).init(jax.random.key(0), (4, 6))


def test_modules_are_hashable_equal_by_value_and_frozen():
    assert Dense(128) == Dense(128) and hash(Dense(128)) == hash(Dense(128))
    assert Dense(128) != Dense(64) and Dense(128) != Dense(128, use_bias=False)
    assert Conv(4, [3, 3], padding=[[1, 1], [0, 0]]) == Conv(4, (3, 3), padding=((1, 1), (0, 0)))
    assert len({Dense(3), Dense(3), Dense(4), _mlp(), _mlp()}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Dense(3).features = 4


def test_modules_are_jit_static_arguments():
    traces = []

    def f(model, params, x):
        traces.append(model)
        return model.apply(params, {}, x)[0]
    jf = jax.jit(f, static_argnums=0)
    params, _ = Dense(3).init(jax.random.key(0), (2, 6))
    x = jnp.ones((2, 6))
    y1 = jf(Dense(3), params, x)
    y2 = jf(Dense(3), params, x)      # a different but equal instance: no retrace
    assert len(traces) == 1
    np.testing.assert_allclose(y1, y2)
    jf(Dense(3, use_bias=False), {"kernel": params["kernel"]}, x)   # a different config retraces
    assert len(traces) == 2
    # a whole Sequential as a static argument
    model = _mlp()
    mp, _ = model.init(jax.random.key(0), (2, 2, 3))
    np.testing.assert_allclose(jf(model, mp, jnp.ones((2, 2, 3))), model.apply(mp, {}, jnp.ones((2, 2, 3)))[0],
                               atol=1e-6)
    assert len(traces) == 3
    jf(_mlp(), mp, jnp.ones((2, 2, 3)))   # a rebuilt, equal Sequential hits the cache
    assert len(traces) == 3


def test_repr_shows_config():
    assert repr(Dense(128)) == "Dense(features=128)"
    assert repr(Dense(10, use_bias=False, kernel_init="torch")) == \
        "Dense(features=10, use_bias=False, kernel_init='torch')"
    assert repr(Conv(32, (3, 3), strides=2)) == "Conv(filters=32, kernel_size=(3, 3), strides=2)"
    assert repr(BatchNorm(decay=0.9)) == "BatchNorm(decay=0.9)"
    assert repr(Dense(3, kernel_init=jnp.zeros)) == "Dense(features=3, kernel_init=zeros)"
    assert repr(_mlp()) == "Sequential(Flatten(), Dense(features=6), relu, Dense(features=3))"


def test_names_and_call():
    assert [module_name(m) for m in (Dense(1), BatchNorm(), GlobalAvgPool(), MaxPool(), relu)] == \
        ["dense", "batch_norm", "global_avg_pool", "max_pool", "relu"]
    params, state = Dense(3).init(jax.random.key(0), (1, 6))
    x = jnp.ones((1, 6))
    np.testing.assert_array_equal(Dense(3)(params, state, x)[0], Dense(3).apply(params, state, x)[0])


def test_base_module_is_abstract():
    class Bare(Module):
        pass
    with pytest.raises(NotImplementedError):
        Bare().init(jax.random.key(0), (1, 2))
    with pytest.raises(NotImplementedError):
        Bare().apply({}, {}, jnp.ones(2))
    assert repr(Bare()) == "Bare()" and Bare().name == "bare"


def test_error_types_and_format():
    for cls in (ShapeError, TreeMismatchError, ConfigError, DataError, CheckpointError):
        assert issubclass(cls, ValueError)
    assert format_error("Dense", "bad") == "Dense: bad"
    with scope("1_sequential"), scope("2_dense"):
        assert errors.current_path() == "1_sequential/2_dense"
        assert format_error("Dense", "bad", hint="fix it") == "Dense '1_sequential/2_dense': bad\nHint: fix it"
    assert errors.current_path("top") == "top"
    err = unknown_option("optimizer", "adamm", ["sgd", "adam"])
    assert isinstance(err, ConfigError)
    with pytest.raises(ConfigError, match=r"^optimizer: unknown value 'adamm'; expected one of \['adam', 'sgd'\]$"):
        raise err


def test_check_rank_message():
    check_rank(jnp.ones((2, 3)), (2, 3))
    with pytest.raises(ShapeError, match=r"^Layer: input rank expected 2 or 3, got 1 \(shape \(3,\)\)$"):
        check_rank(jnp.ones(3), (2, 3))
    with scope("0_conv"), pytest.raises(ShapeError, match=r"^Conv '0_conv': kernel rank expected 4, got 2"):
        check_rank(jnp.ones((2, 2)), 4, what="kernel", layer="Conv")


def test_error_path_is_reset_after_an_error():
    model = Sequential([Dense(3)])
    params, state = model.init(jax.random.key(0), (1, 6))
    with pytest.raises(ShapeError, match="Dense '0_dense'"):
        model.apply(params, state, jnp.ones((1, 5)))
    assert errors.current_path() == ""
