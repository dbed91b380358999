"""Keras models: Sequential / subclassed / functional structure, parity with the functional core,
summary, weights (get/set/save/load), the escape hatch into jax transforms, input errors."""
import os

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import functorch_lite as fl
import functorch_lite.keras as keras
from functorch_lite.checkpoint import CheckpointMismatchError
from functorch_lite.core.errors import CheckpointError, ConfigError, ShapeError, TreeMismatchError
from functorch_lite.keras import layers

TOL = dict(atol=1e-5, rtol=1e-5)


def _cnn():
    return keras.Sequential([
        keras.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
        layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- Sequential
def test_sequential_equals_the_functional_core_with_the_same_weights(rng):
    model = _cnn()
    core = fl.Sequential([fl.layers.Conv(4, (3, 3)), fl.relu, fl.layers.MaxPool((2, 2)),
                          fl.layers.BatchNorm(decay=0.99, epsilon=1e-3), fl.layers.Flatten(),
                          fl.layers.Dropout(0.5), fl.layers.Dense(10), fl.softmax])
    params, state = core.init(jax.random.key(1), (2, 12, 12, 1))
    # same leaves, keras order: conv kernel, bias; bn gamma, beta, mean, var; dense kernel, bias
    k = lambda n: [k for k in params if k.startswith(n)][0]
    weights = [params[k("0_")]["kernel"], params[k("0_")]["bias"],
               params[k("3_")]["scale"], params[k("3_")]["bias"], state[k("3_")]["mean"] + 0.3,
               state[k("3_")]["var"] * 2.0, params[k("6_")]["kernel"], params[k("6_")]["bias"]]
    model.set_weights([np.asarray(w) for w in weights])
    state[k("3_")] = {"mean": state[k("3_")]["mean"] + 0.3, "var": state[k("3_")]["var"] * 2}
    x = _x(rng, 5, 12, 12, 1)
    expected, _ = core.apply(params, state, jnp.asarray(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(expected), **TOL)
    y, _ = model.apply_fn(model.params, model.state, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), **TOL)
    assert list(model.params) == ["0_conv", "1_max_pool", "2_batch_norm", "3_flatten",
                                  "4_dropout", "5_dense"]


def test_sequential_build_modes_agree_on_shapes(rng):
    a = keras.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)])
    b = keras.Sequential([keras.layers.InputLayer(shape=(4,)), layers.Dense(3), layers.Dense(2)])
    c = keras.Sequential()
    c.add(layers.Dense(3))
    c.add(layers.Dense(2))
    assert a.built and b.built and not c.built
    c.build((None, 4))
    d = keras.Sequential([layers.Dense(3), layers.Dense(2)])
    d(_x(rng, 7, 4))  # deferred: built on first call
    for m in (a, b, c, d):
        assert m.input_shape == (None, 4) and m.output_shape == (None, 2)
        assert m.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    e = keras.Sequential([layers.Dense(3, input_dim=4)])
    assert e.input_shape == (None, 4)


def test_sequential_add_and_pop_keep_existing_weights(rng):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    w0 = model.get_weights()
    model.add(layers.Dense(2))
    assert len(model.layers) == 2 and model.output_shape == (None, 2)
    np.testing.assert_array_equal(model.get_weights()[0], w0[0])
    popped = model.pop()
    assert isinstance(popped, layers.Dense) and model.output_shape == (None, 3)
    with pytest.raises(ConfigError, match=r"Sequential 'sequential': a keras.Input is only "
                                          r"allowed as the first entry"):
        model.add(keras.Input((3,)))
    with pytest.raises(TypeError, match=r"add expected a keras layer or keras.Input, got 3"):
        model.add(3)
    with pytest.raises(ConfigError, match=r"layer 'dense' was added twice"):
        model.add(model.layers[0])
    empty = keras.Sequential()
    with pytest.raises(ConfigError, match=r"pop on an empty model"):
        empty.pop()
    with pytest.raises(ConfigError, match=r"cannot build a model with no layers"):
        empty.build((None, 3))


def test_layer_built_on_its_own_keeps_its_weights_in_a_model(rng):
    dense = layers.Dense(3)
    x = _x(rng, 2, 4)
    y = np.asarray(dense(x))
    model = keras.Sequential([dense, layers.Activation("linear")])
    np.testing.assert_allclose(model.predict(x, verbose=0), y, **TOL)
    assert dense.get_weights()[0].shape == (4, 3)
    # the layer now reads and writes the model's tree
    dense.set_weights([np.ones((4, 3)), np.zeros(3)])
    np.testing.assert_allclose(model.predict(x, verbose=0), x.sum(1, keepdims=True) * np.ones(3),
                               **TOL)


def test_summary_table_and_totals(capsys):
    model = _cnn()
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    for row in ("conv2d (Conv2D)", "(None, 10, 10, 4)", "max_pooling2d (MaxPooling2D)",
                "(None, 5, 5, 4)", "(None, 100)", "dense (Dense)", "1,010"):
        assert row in out
    # conv 3*3*4+4 = 40, bn 4*4 = 16 (8 trainable), dense 100*10+10 = 1010
    assert "Total params: 1,066" in out and "Trainable params: 1,058" in out
    assert "Non-trainable params: 8" in out
    assert model.count_params() == 1066
    lines = []
    model.summary(print_fn=lines.append)
    assert lines and "Total params: 1,066" in lines[0]
    with pytest.raises(ConfigError, match=r"summary: Sequential 'sequential_1' has not yet been "
                                          r"built; build it first"):
        keras.Sequential([layers.Dense(2)]).summary()


# ---------------------------------------------------------------- subclassed
class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(3, 3, padding="same")
        self.bn = layers.BatchNormalization()
        self.heads = [layers.Dense(5), layers.Dense(2)]
        self.drop = layers.Dropout(0.5)

    def call(self, x, training=False):
        h = self.bn(self.conv(x), training=training)
        h = keras.layers.Activation("relu")(h)  # created inline at every trace
        h = layers.GlobalAveragePooling2D()(h)
        h = self.drop(self.heads[0](h), training=training)
        return self.heads[1](h)


def test_subclassed_model_params_keyed_by_attribute_and_call_order(rng):
    net = Net()
    x = _x(rng, 4, 6, 6, 2)
    y = net(x)
    assert y.shape == (4, 2)
    keys = ["conv", "bn", "heads_0", "heads_1", "drop", "inline_0_activation",
            "inline_1_global_average_pooling2d"]
    assert set(net.params) == set(net.state) == set(keys)
    assert [k for k, _ in net._children()] == keys  # Keras order: attributes, then inline
    assert [w.shape for w in net.get_weights()][:2] == [(3, 3, 2, 3), (3,)]
    assert set(net.state["bn"]) == {"mean", "var"}
    assert [l.name for l in net.layers] == ["conv2d", "batch_normalization", "dense", "dense_1",
                                            "dropout"]
    # the traced call is the plain composition of the layers with the model's weights
    p, s = net.params, net.state
    conv_y = np.asarray(net.conv(x))
    bn_y = (conv_y - np.asarray(s["bn"]["mean"])) / np.sqrt(np.asarray(s["bn"]["var"]) + 1e-3)
    h = np.maximum(bn_y * np.asarray(p["bn"]["scale"]) + np.asarray(p["bn"]["bias"]), 0).mean((1, 2))
    h = h @ np.asarray(p["heads_0"]["kernel"]) + np.asarray(p["heads_0"]["bias"])
    expected = h @ np.asarray(p["heads_1"]["kernel"]) + np.asarray(p["heads_1"]["bias"])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(net.predict(x, verbose=0), expected, atol=1e-4, rtol=1e-4)


def test_subclassed_summary_shows_inline_layers(capsys):
    net = Net()
    net.build((None, 6, 6, 2))
    net.summary()
    out = capsys.readouterr().out
    assert "conv2d (Conv2D)" in out and "(None, 6, 6, 3)" in out
    assert "inline_0_activation (Activation)" in out
    assert "inline_1_global_average_pooling2d (GlobalAveragePooling2D)" in out
    assert f"Total params: {net.count_params():,}" in out


def test_subclassed_model_nesting_a_sequential_and_a_model(rng):
    class Inner(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(3)

        def call(self, x):
            return self.d(x) * 2.0

    class Outer(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(4)])
            self.inner = Inner()

        def call(self, x, training=None):
            return self.inner(self.block(x))

    m = Outer()
    x = _x(rng, 3, 5)
    y = np.asarray(m(x))
    assert set(m.params) == {"block", "inner"} and set(m.params["inner"]) == {"d"}
    h = np.asarray(m.block(x))
    kernel, bias = m.inner.d.get_weights()
    np.testing.assert_allclose(y, (h @ kernel + bias) * 2, atol=1e-5)
    m.inner.d.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
    np.testing.assert_allclose(np.asarray(m(x)), 2 * np.ones((3, 3)), atol=1e-6)


def test_subclass_without_super_init_still_works(rng):
    class Lazy(keras.Model):
        def __init__(self):  # no super().__init__(): Keras would tolerate attribute tracking
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    m = Lazy()
    assert m(_x(rng, 2, 3)).shape == (2, 2) and m.name == "lazy"


def test_weights_created_only_under_training_flag_is_an_error(rng):
    class Cond(keras.Model):
        def __init__(self):
            super().__init__()
            self.extra = layers.Dense(2)
            self.head = layers.Dense(2)

        def call(self, x, training=False):
            return self.extra(x) if training else self.head(x)

    m = Cond()
    m.compile("sgd", "mse")
    with pytest.raises(ConfigError, match=r"layer 'dense' has weights but was not called when the "
                                          r"model was built"):
        m.fit(_x(rng, 4, 3), _x(rng, 4, 2), verbose=0)


# ---------------------------------------------------------------- functional
def test_functional_model_two_branches_matches_hand_composition(rng):
    inp = keras.Input(shape=(6,))
    a = layers.Dense(4, activation="relu")(inp)
    b = layers.Dense(4)(inp)
    merged = layers.Concatenate()([layers.Add()([a, b]), b])
    out = layers.Dense(1)(merged)
    model = keras.Model(inputs=inp, outputs=out, name="two_branch")
    assert isinstance(model, keras.Functional) and model.name == "two_branch"
    assert out.shape == (None, 1) and merged.shape == (None, 8)
    x = _x(rng, 3, 6)
    la, lb, lo = [l for l in model.layers if isinstance(l, layers.Dense)]
    ha = np.maximum(x @ la.get_weights()[0] + la.get_weights()[1], 0)
    hb = x @ lb.get_weights()[0] + lb.get_weights()[1]
    expected = np.concatenate([ha + hb, hb], 1) @ lo.get_weights()[0] + lo.get_weights()[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
    assert model.output_shape == (None, 1)


def test_functional_errors():
    inp = keras.Input(shape=(6,))
    other = keras.Input(shape=(6,))
    out = layers.Add()([layers.Dense(6)(inp), other])
    with pytest.raises(ConfigError, match=r"the outputs depend on the input 'input_layer_1', "
                                          r"which is not in inputs="):
        keras.Model(inp, out)
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d' called on \(None, 28, 28\): Conv "
                                         r"'conv2d': input rank expected 4"):
        layers.Conv2D(2, 3)(keras.Input((28, 28)))
    with pytest.raises(ConfigError, match=r"Model\(inputs, outputs\): expected keras.Input"):
        keras.Model(np.zeros(3), np.zeros(3))


# ---------------------------------------------------------------- weights
def test_get_set_weights_roundtrip_and_errors(rng):
    model = _cnn()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 3, 1, 4), (4,), (4,), (4,), (4,), (4,), (100, 10),
                                          (10,)]
    new = [w + rng.standard_normal(w.shape).astype(np.float32) for w in weights]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ShapeError, match=r"set_weights: Sequential 'sequential' expected 8 arrays"):
        model.set_weights(new[:-1])
    with pytest.raises(ShapeError, match=r"5_dense/bias: expected \(10,\), got \(9,\)"):
        model.set_weights(new[:-1] + [np.zeros(9)])


def test_save_load_weights_roundtrip_exactly(tmp_path, rng):
    model = _cnn()
    model.set_weights([w + _x(rng, *w.shape) for w in model.get_weights()])
    path = tmp_path / "mnist.weights.h5"
    model.save_weights(path)
    other = _cnn()
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = _x(rng, 3, 12, 12, 1)
    np.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.weights.h5"]  # no temp files left
    with pytest.raises(ConfigError, match=r"save_weights: '.*' exists and overwrite=False"):
        model.save_weights(path, overwrite=False)


def test_load_weights_mismatch_and_unbuilt_errors(tmp_path):
    model = _cnn()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    wider = keras.Sequential([keras.Input((12, 12, 1)), layers.Conv2D(5, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.BatchNormalization(),
                              layers.Flatten(), layers.Dropout(0.5), layers.Dense(10)])
    with pytest.raises(CheckpointMismatchError, match=r"shape: params/0_conv/kernel \(saved "
                                                      r"\(3, 3, 1, 4\) vs expected \(3, 3, 1, 5\)\)"):
        wider.load_weights(path)
    with pytest.raises(ConfigError, match=r"load_weights: Sequential 'sequential_2' has no weights "
                                          r"yet"):
        keras.Sequential([layers.Dense(2)]).load_weights(path)
    with pytest.raises(CheckpointError, match=r"no such file"):
        model.load_weights(tmp_path / "missing.npz")


# ---------------------------------------------------------------- escape hatch
def test_escape_hatch_grad_and_vmap_over_apply_fn(rng):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, use_bias=False)])
    x, t = _x(rng, 4, 3), _x(rng, 4, 2)

    def loss(params):
        y, _ = model.apply_fn(params, model.state, x)
        return jnp.sum((y - t) ** 2)
    g = jax.grad(loss)(model.params)
    (kernel,) = model.get_weights()
    np.testing.assert_allclose(np.asarray(g["0_dense"]["kernel"]), 2 * x.T @ (x @ kernel - t),
                               atol=1e-4)
    per_example = jax.vmap(lambda xi: model.apply_fn(model.params, model.state, xi[None])[0][0])(x)
    np.testing.assert_allclose(np.asarray(per_example), x @ kernel, atol=1e-5)
    # and back: functional params into the Keras model
    new = jax.tree_util.tree_map(lambda p, d: p - 0.1 * d, model.params, g)
    model.params = new
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.1 * np.asarray(
        g["0_dense"]["kernel"]), atol=1e-6)
    with pytest.raises(TreeMismatchError, match=r"model.params: the new tree does not match the "
                                                r"model's: shape \['0_dense'\]\['kernel'\]: "
                                                r"expected \(3, 2\), got \(2, 3\)"):
        model.params = {"0_dense": {"kernel": jnp.zeros((2, 3))}}
    with pytest.raises(TreeMismatchError, match=r"missing \['0_dense'\]\['kernel'\]"):
        model.params = {"0_dense": {}}


def test_unbuilt_model_attributes_raise():
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(ConfigError, match=r"params: Sequential 'sequential' has no weights yet"):
        model.params
    with pytest.raises(ConfigError, match=r"input_shape is not known before the model is built"):
        model.input_shape
    with pytest.raises(ConfigError, match=r"output_shape is not known before the model is built"):
        model.output_shape
    assert model.weights == [] and not model.built


# ---------------------------------------------------------------- input errors
def test_wrong_input_shape_names_the_model_the_layer_and_both_shapes(rng):
    model = _cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match=r"fit: input of Sequential 'sequential' \(its first layer "
                                         r"'conv2d' \(Conv2D\)\) expected shape \(None, 12, 12, 1\), "
                                         r"got \(8, 12, 12\)\nHint: add the channel axis"):
        model.fit(_x(rng, 8, 12, 12), np.zeros(8, np.int32), verbose=0)
    with pytest.raises(ShapeError, match=r"predict: .*expected shape \(None, 12, 12, 1\), got "
                                         r"\(2, 144\)"):
        model.predict(_x(rng, 2, 144), verbose=0)
    mlp = keras.Sequential([layers.Dense(3, input_shape=(784,))])
    with pytest.raises(ShapeError, match=r"call: .*'dense_1' \(Dense\)\) expected shape "
                                         r"\(None, 784\), got \(2, 28, 28\)\nHint: flatten"):
        mlp(_x(rng, 2, 28, 28))


def test_wrong_rank_inside_a_deferred_model_names_the_layer_path(rng):
    model = keras.Sequential([layers.Conv2D(2, 3)])
    with pytest.raises(ShapeError, match=r"Conv 'sequential/0_conv': input rank expected 4"):
        model(_x(rng, 2, 8, 8))


def test_get_layer(rng):
    model = _cnn()
    assert model.get_layer("dense") is model.layers[-1]
    assert model.get_layer(index=0).name == "conv2d"
    with pytest.raises(ConfigError, match=r"get_layer: no layer named 'nope'; expected one of "
                                          r"\['conv2d'"):
        model.get_layer("nope")
    with pytest.raises(ConfigError, match=r"get_layer: index expected in \[0, 6\), got 9"):
        model.get_layer(index=9)


def test_model_constructor_errors():
    with pytest.raises(TypeError, match=r"Model.__init__: unexpected arguments \['foo'\]"):
        keras.Model(foo=1)
    with pytest.raises(NotImplementedError, match=r"a subclassed Model defines call"):
        keras.Model()(np.zeros((1, 2), np.float32))
