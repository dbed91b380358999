"""Combinators: parallel '{i}_{name}' params/state trees, per-child keys, Residual, Parallel, Lambda.

The models reuse a few parameter shapes ((6, 6) and (6, 3) kernels) on purpose: every new shape
drawn by an initializer costs an XLA compile.
"""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.combinators import Lambda, Parallel, Residual, Sequential, as_module
from functorch_lite.core.errors import ShapeError
from functorch_lite.layers import BatchNorm, Dense, Dropout, Flatten, MaxPool, Reshape
from functorch_lite.layers.activations import relu, tanh

X = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))


def test_sequential_keys_are_parallel_in_params_and_state():
    model = Sequential([Dense(6), relu, BatchNorm(), Dropout(0.1), Dense(3)])
    params, state = model.init(jax.random.key(0), X.shape)
    names = ["0_dense", "1_relu", "2_batch_norm", "3_dropout", "4_dense"]
    assert list(params) == names and list(state) == names
    assert params["1_relu"] == {} and state["0_dense"] == {} and params["3_dropout"] == {}
    assert set(state["2_batch_norm"]) == {"mean", "var"}
    _, new_state = model.apply(params, state, X, key=jax.random.key(1), train=True)
    assert list(new_state) == names
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, state, X)[0])))(params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)


def test_sequential_equals_manual_composition_and_children_get_split_keys():
    d1, d2 = Dense(6), Dense(3)
    model = Sequential([d1, relu, d2])
    key = jax.random.key(7)
    params, _ = model.init(key, X.shape)
    k = jax.random.split(key, 3)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params["0_dense"], d1.init(k[0], X.shape)[0])
    jax.tree_util.tree_map(np.testing.assert_array_equal, params["2_dense"], d2.init(k[2], (4, 6))[0])
    h = jax.nn.relu(X @ params["0_dense"]["kernel"] + params["0_dense"]["bias"])
    expected = h @ params["2_dense"]["kernel"] + params["2_dense"]["bias"]
    np.testing.assert_allclose(model.apply(params, {}, X)[0], expected, atol=1e-6)
    np.testing.assert_allclose(jax.jit(model.apply)(params, {}, X)[0], expected, atol=1e-6)


def test_two_dropouts_get_different_masks():
    x = jnp.ones((32, 32))
    key = jax.random.key(5)
    par = Parallel(Dropout(0.5), Dropout(0.5))
    (a, b), _ = par.apply(*par.init(key, x.shape), x, key=key, train=True)
    assert (np.asarray(a) != np.asarray(b)).mean() > 0.3
    seq = Sequential([Dropout(0.5), Dropout(0.5)])
    params, state = seq.init(key, x.shape)
    assert params == state == {"0_dropout": {}, "1_dropout": {}}
    y, _ = seq.apply(params, state, x, key=key, train=True)
    k0, k1 = jax.random.split(key)
    d = Dropout(0.5)
    manual = d.apply({}, {}, d.apply({}, {}, x, key=k0, train=True)[0], key=k1, train=True)[0]
    np.testing.assert_array_equal(y, manual)
    same_key = d.apply({}, {}, d.apply({}, {}, x, key=k0, train=True)[0], key=k0, train=True)[0]
    assert not np.array_equal(np.asarray(y), np.asarray(same_key))
    # about 3/4 dropped after two independent rate-0.5 masks (1/2 if one mask were reused)
    assert abs((np.asarray(y) == 0).mean() - 0.75) < 0.05


def test_constructor_forms_and_plain_callables():
    a = Sequential(Dense(3), relu)
    b = Sequential([Dense(3), relu])
    c = Sequential((Dense(3), relu))
    assert a == b == c and hash(a) == hash(b)
    assert isinstance(a[1], Lambda) and a[1].fn is relu and a[1].name == "relu"
    assert len(a) == 2 and list(a) == [Dense(3), Lambda(relu)]
    assert as_module(Dense(3)) == Dense(3)
    y, _ = Sequential([jnp.tanh]).apply({"0_tanh": {}}, {}, X)
    np.testing.assert_array_equal(y, jnp.tanh(X))
    with pytest.raises(TypeError, match=r"expected a functorch_lite Module or a function x -> y, got 5 \(int\)"):
        Sequential([Dense(3), 5])
    empty = Sequential()
    assert empty.init(jax.random.key(0), X.shape) == ({}, {})
    np.testing.assert_array_equal(empty.apply({}, {}, X)[0], X)


def test_nested_path_in_errors_and_missing_params():
    model = Sequential([Dense(6), Sequential([relu, Dense(3)])])
    params, state = model.init(jax.random.key(0), X.shape)
    assert list(params) == ["0_dense", "1_sequential"] and list(params["1_sequential"]) == ["0_relu", "1_dense"]
    bad = dict(params, **{"0_dense": Dense(3).init(jax.random.key(0), X.shape)[0]})
    with pytest.raises(ShapeError, match=r"Dense '1_sequential/1_dense': input last axis 3 != kernel "
                                         r"in-features 6 \(input \(4, 3\), kernel \(6, 3\)\)"):
        model.apply(bad, state, X)
    with pytest.raises(ShapeError, match=r"Params '0_dense': missing entry '0_dense' \(have \['1_sequential'\]\)\n"
                                         r"Hint: params must come from this model's init"):
        model.apply({"1_sequential": params["1_sequential"]}, state, X)


def test_sequential_threads_state_and_stateless_view_takes_empty_state():
    model = Sequential([Dense(6), BatchNorm(decay=0.5), Dense(3), BatchNorm(decay=0.5)])
    params, state = model.init(jax.random.key(0), X.shape)
    _, s1 = model.apply(params, state, X, train=True)
    _, s2 = model.apply(params, s1, X, train=True)
    h = X @ params["0_dense"]["kernel"]
    np.testing.assert_allclose(s2["1_batch_norm"]["mean"], 0.75 * np.asarray(h).mean(0), atol=1e-5)
    _, s_eval = model.apply(params, s2, X)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s_eval, s2)


def test_residual_identity_and_projection():
    body = Sequential([Dense(6), tanh])
    res = Residual(body)
    params, state = res.init(jax.random.key(0), X.shape)
    assert list(params) == ["0_sequential"] and list(state) == ["0_sequential"]
    y, _ = res.apply(params, state, X)
    np.testing.assert_allclose(y, body.apply(params["0_sequential"], {}, X)[0] + X, atol=1e-6)

    proj = Residual(Dense(3), shortcut=Dense(3, use_bias=False))
    params, state = proj.init(jax.random.key(1), X.shape)
    assert list(params) == ["0_dense", "1_dense"] and list(state) == ["0_dense", "1_dense"]
    y, _ = proj.apply(params, state, X)
    expected = X @ params["0_dense"]["kernel"] + params["0_dense"]["bias"] + X @ params["1_dense"]["kernel"]
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert Residual(relu) == Residual(relu) and hash(Residual(relu)) == hash(Residual(relu))
    assert Residual(relu).body == Lambda(relu)


def test_residual_keys_go_to_body_and_shortcut():
    block = Residual(Sequential([Dense(6), relu, Dropout(0.5)]),
                     shortcut=Sequential([Dense(6), Dropout(0.5)]))
    x = X
    params, state = block.init(jax.random.key(0), x.shape)
    key = jax.random.key(2)
    y, _ = block.apply(params, state, x, key=key, train=True)
    kb, ks = jax.random.split(key)
    yb = block.body.apply(params["0_sequential"], {}, x, key=kb, train=True)[0]
    ys = block.shortcut.apply(params["1_sequential"], {}, x, key=ks, train=True)[0]
    np.testing.assert_allclose(y, yb + ys, atol=1e-6)


def test_residual_shape_mismatch():
    res = Residual(Dense(3))
    params, state = res.init(jax.random.key(0), X.shape)
    with pytest.raises(ShapeError, match=r"^Residual: body output shape \(4, 3\) != shortcut shape \(4, 6\)\n"
                                         r"Hint: give Residual a shortcut \(e.g. a 1x1 Conv\)"):
        res.apply(params, state, X)
    # inside a Sequential the error comes at init (shapes are propagated) and names the path
    with pytest.raises(ShapeError, match=r"Residual '2_residual': body output shape \(2, 2, 2, 8\) != "
                                         r"shortcut shape \(2, 4, 4, 8\)"):
        Sequential([Flatten(), Reshape((4, 4, 8)), Residual(MaxPool((2, 2)))]).init(None, (2, 128))


def test_parallel_tuple_and_combine():
    par = Parallel(Dense(3), Sequential([Dense(3), relu]))
    params, state = par.init(jax.random.key(0), X.shape)
    assert list(params) == ["0_dense", "1_sequential"] and list(state) == ["0_dense", "1_sequential"]
    (a, b), _ = par.apply(params, state, X)
    np.testing.assert_allclose(a, Dense(3).apply(params["0_dense"], {}, X)[0])
    np.testing.assert_allclose(b, jax.nn.relu(Dense(3).apply(params["1_sequential"]["0_dense"], {}, X)[0]))
    added = Parallel([Dense(3), Sequential([Dense(3), relu])], combine=jnp.add)
    y, _ = added.apply(params, state, X)
    np.testing.assert_allclose(y, a + b, atol=1e-6)
    assert added != par
    # a tuple output flows on through Sequential (here into a Lambda that concatenates)
    model = Sequential([par, lambda t: jnp.concatenate(t, -1), Dense(3)])
    p, s = model.init(jax.random.key(0), X.shape)
    assert p["2_dense"]["kernel"].shape == (6, 3)
    assert list(p) == ["0_parallel", "1_<lambda>", "2_dense"]


def test_combinators_under_jit_and_grad():
    model = Sequential([Dense(6), BatchNorm(), relu, Residual(Sequential([Dense(6), relu])), Dense(3)])
    x = X
    params, state = model.init(jax.random.key(0), x.shape)

    def loss(p, s, x):
        y, s = model.apply(p, s, x, train=True)
        return jnp.sum(y ** 2), s
    (v, s1), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, state, x)
    np.testing.assert_allclose(v, loss(params, state, x)[0], rtol=1e-5)
    # the last Dense's gradient in closed form: d sum(y^2)/dW = h^T 2y
    h = Sequential(model.layers[:-1]).apply({k: params[k] for k in list(params)[:-1]},
                                            {k: state[k] for k in list(state)[:-1]}, x, train=True)[0]
    y = h @ params["4_dense"]["kernel"] + params["4_dense"]["bias"]
    np.testing.assert_allclose(g["4_dense"]["kernel"], h.T @ (2 * y), rtol=1e-4, atol=1e-5)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(params)
    assert jax.tree_util.tree_structure(s1) == jax.tree_util.tree_structure(state)
