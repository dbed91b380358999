"""Keras layers: parity with PyTorch (copied weights), the functional core and closed forms."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

import functorch_lite as fl
import functorch_lite.keras as keras
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.keras import layers

TOL = dict(atol=1e-5, rtol=1e-5)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- Dense
@pytest.mark.parametrize("activation,torch_fn", [
    (None, lambda t, x: x), ("relu", lambda t, x: t.relu(x)), ("tanh", lambda t, x: t.tanh(x)),
    ("sigmoid", lambda t, x: t.sigmoid(x)), ("softmax", lambda t, x: t.softmax(x, -1)),
    ("gelu", lambda t, x: t.nn.functional.gelu(x)), ("elu", lambda t, x: t.nn.functional.elu(x)),
    ("selu", lambda t, x: t.selu(x)), ("softplus", lambda t, x: t.nn.functional.softplus(x)),
    ("softsign", lambda t, x: t.nn.functional.softsign(x)),
    ("leaky_relu", lambda t, x: t.nn.functional.leaky_relu(x, 0.2)),
    ("hard_sigmoid", lambda t, x: t.nn.functional.hardsigmoid(x)),
    ("swish", lambda t, x: t.nn.functional.silu(x)), ("mish", lambda t, x: t.nn.functional.mish(x)),
    ("relu6", lambda t, x: t.nn.functional.relu6(x)), ("exponential", lambda t, x: t.exp(x)),
    ("log_softmax", lambda t, x: t.log_softmax(x, -1)),
    ("hard_silu", lambda t, x: t.nn.functional.hardswish(x)),
])
def test_dense_matches_torch_linear(torch, rng, activation, torch_fn):
    x = _randn(rng, 5, 7)
    layer = layers.Dense(6, activation=activation)
    layer(x)  # build
    kernel, bias = _randn(rng, 7, 6), _randn(rng, 6)
    layer.set_weights([kernel, bias])
    lin = torch.nn.Linear(7, 6)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kernel.T))
        lin.bias.copy_(torch.from_numpy(bias))
    expected = torch_fn(torch, lin(torch.from_numpy(x))).detach().numpy()
    np.testing.assert_allclose(np.asarray(layer(x)), expected, **TOL)


def test_dense_is_the_core_dense_with_the_same_params(rng):
    x = _randn(rng, 4, 3, 5)
    layer = layers.Dense(2, use_bias=False)
    y = layer(x)
    params, state = layer._weights_tree()
    assert set(params) == {"kernel"} and state == {}
    core_y, _ = fl.layers.Dense(2, use_bias=False).apply(params, {}, jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(core_y))
    assert y.shape == (4, 3, 2)


def test_dense_default_init_is_glorot_uniform_and_zero_bias():
    layer = layers.Dense(300)
    layer(np.zeros((1, 500), np.float32))
    kernel, bias = layer.get_weights()
    limit = np.sqrt(6 / (500 + 300))
    assert np.all(np.abs(kernel) <= limit) and np.abs(kernel).max() > 0.95 * limit
    np.testing.assert_allclose(kernel.var(), limit ** 2 / 3, rtol=0.05)
    np.testing.assert_array_equal(bias, 0)


@pytest.mark.parametrize("name,var", [("he_normal", 2 / 400), ("he_uniform", 2 / 400),
                                      ("lecun_normal", 1 / 400), ("glorot_normal", 2 / 700),
                                      ("random_normal", 0.05 ** 2), ("zeros", 0.0)])
def test_kernel_initializer_strings_have_keras_variances(name, var):
    layer = layers.Dense(300, kernel_initializer=name)
    layer(np.zeros((1, 400), np.float32))
    kernel = layer.get_weights()[0]
    np.testing.assert_allclose(kernel.var(), var, rtol=0.06, atol=1e-12)
    if name in ("he_normal", "lecun_normal", "glorot_normal"):
        # Keras: a normal of std sqrt(var) / 0.8796 truncated at 2 of its std (variance var)
        bound = 2 * np.sqrt(var) / 0.87962566103423978
        assert bound * 0.97 < np.abs(kernel).max() <= bound + 1e-6


def test_initializer_objects_and_constant():
    layer = layers.Dense(3, kernel_initializer=keras.initializers.Constant(0.5),
                         bias_initializer=keras.initializers.Ones())
    layer(np.zeros((2, 4), np.float32))
    k, b = layer.get_weights()
    np.testing.assert_array_equal(k, 0.5)
    np.testing.assert_array_equal(b, 1.0)
    ident = keras.initializers.get("identity")((3, 3))
    np.testing.assert_array_equal(np.asarray(ident), np.eye(3))


# ---------------------------------------------------------------- convolutions
@pytest.mark.parametrize("padding,strides,dilation", [("valid", 1, 1), ("same", 1, 1),
                                                      ("valid", 2, 1), ("same", 1, 2)])
def test_conv2d_matches_torch(torch, rng, padding, strides, dilation):
    x = _randn(rng, 2, 9, 8, 3)
    layer = layers.Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation,
                          activation="relu")
    layer(x)
    kernel, bias = _randn(rng, 3, 2, 3, 4), _randn(rng, 4)
    layer.set_weights([kernel, bias])
    conv = torch.nn.functional.conv2d
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    wt = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    expected = torch.relu(conv(xt, wt, torch.from_numpy(bias), stride=strides,
                               padding=padding, dilation=dilation))
    np.testing.assert_allclose(np.asarray(layer(x)), expected.numpy().transpose(0, 2, 3, 1),
                               **TOL)


def test_conv2d_channels_first_matches_torch_without_transposes(torch, rng):
    x = _randn(rng, 2, 3, 7, 7)
    layer = layers.Conv2D(5, 3, padding="same", data_format="channels_first")
    layer(x)
    kernel, bias = _randn(rng, 3, 3, 3, 5), _randn(rng, 5)
    layer.set_weights([kernel, bias])
    wt = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), wt, torch.from_numpy(bias),
                                          padding="same")
    np.testing.assert_allclose(np.asarray(layer(x)), expected.numpy(), **TOL)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_matches_torch(torch, rng, padding):
    x = _randn(rng, 2, 10, 3)
    layer = layers.Conv1D(4, 3, padding=padding, dilation_rate=2)
    layer(x)
    kernel, bias = _randn(rng, 3, 3, 4), _randn(rng, 4)
    layer.set_weights([kernel, bias])
    xt = torch.from_numpy(x.transpose(0, 2, 1))
    if padding == "causal":  # left-pad (k - 1) * dilation: output t sees inputs <= t only
        xt, tpad = torch.nn.functional.pad(xt, (4, 0)), "valid"
    else:
        tpad = padding
    wt = torch.from_numpy(kernel.transpose(2, 1, 0).copy())
    expected = torch.nn.functional.conv1d(xt, wt, torch.from_numpy(bias), padding=tpad,
                                          dilation=2)
    np.testing.assert_allclose(np.asarray(layer(x)), expected.numpy().transpose(0, 2, 1), **TOL)


def test_conv_casts_integer_images_to_float(rng):
    x = rng.integers(0, 255, (2, 6, 6, 1)).astype(np.uint8)
    layer = layers.Conv2D(2, 3)
    y = layer(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), np.asarray(layer(x.astype(np.float32))), **TOL)


# ---------------------------------------------------------------- pooling
@pytest.mark.parametrize("cls,torch_name", [(layers.MaxPooling2D, "max_pool2d"),
                                            (layers.AveragePooling2D, "avg_pool2d")])
@pytest.mark.parametrize("pool,strides", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_pool2d_valid_matches_torch(torch, rng, cls, torch_name, pool, strides):
    x = _randn(rng, 2, 9, 8, 3)
    y = cls(pool_size=pool, strides=strides)(x)
    fn = getattr(torch.nn.functional, torch_name)
    expected = fn(torch.from_numpy(x.transpose(0, 3, 1, 2)), pool,
                  stride=strides if strides is not None else pool)
    np.testing.assert_allclose(np.asarray(y), expected.numpy().transpose(0, 2, 3, 1), **TOL)


def test_pool_same_padding_hand_computed():
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)  # 1 2 3 4 5
    np.testing.assert_allclose(np.asarray(layers.MaxPooling1D(2, padding="same")(x)).ravel(),
                               [2, 4, 5])
    # Keras/TF average pooling with 'same' padding divides by the cells inside the input only.
    np.testing.assert_allclose(np.asarray(layers.AveragePooling1D(2, padding="same")(x)).ravel(),
                               [1.5, 3.5, 5.0])


def test_global_pools(rng):
    x = _randn(rng, 2, 4, 5, 3)
    np.testing.assert_allclose(np.asarray(layers.GlobalAveragePooling2D()(x)), x.mean((1, 2)),
                               **TOL)
    np.testing.assert_allclose(np.asarray(layers.GlobalMaxPooling2D(keepdims=True)(x)),
                               x.max((1, 2), keepdims=True), **TOL)
    np.testing.assert_allclose(np.asarray(layers.GlobalAveragePooling1D()(x[:, 0])),
                               x[:, 0].mean(1), **TOL)
    with pytest.raises(ShapeError, match=r"GlobalAvgPool 'global_average_pooling2d_1': input rank expected 4, got 3"):
        layers.GlobalAveragePooling2D()(x[:, 0])


# ---------------------------------------------------------------- normalisation
def test_batch_normalization_training_and_inference_keras_semantics(rng):
    x = _randn(rng, 16, 4) * 3 + 1
    layer = layers.BatchNormalization()
    y_inf = np.asarray(layer(x))  # builds; moving mean 0, var 1
    np.testing.assert_allclose(y_inf, x / np.sqrt(1 + 1e-3), **TOL)
    gamma, beta = _randn(rng, 4), _randn(rng, 4)
    layer.set_weights([gamma, beta, np.zeros(4), np.ones(4)])
    y_train = np.asarray(layer(x, training=True))
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y_train, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta,
                               atol=1e-4, rtol=1e-4)
    _, _, mm, mv = layer.get_weights()  # momentum 0.99: new = 0.99 old + 0.01 batch
    np.testing.assert_allclose(mm, 0.01 * mean, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(mv, 0.99 + 0.01 * var, atol=1e-6, rtol=1e-5)


def test_batch_normalization_matches_torch_output_in_training(torch, rng):
    x = _randn(rng, 8, 5, 5, 3)
    layer = layers.BatchNormalization(epsilon=1e-5)
    y = layer(x, training=True)
    bn = torch.nn.BatchNorm2d(3, eps=1e-5).train()
    expected = bn(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
    np.testing.assert_allclose(np.asarray(y), expected.transpose(0, 2, 3, 1), atol=1e-4)


def test_layer_normalization_matches_torch(torch, rng):
    x = _randn(rng, 3, 4, 6)
    layer = layers.LayerNormalization()
    layer(x)
    gamma, beta = _randn(rng, 6), _randn(rng, 6)
    layer.set_weights([gamma, beta])
    ln = torch.nn.LayerNorm(6, eps=1e-3)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(gamma))
        ln.bias.copy_(torch.from_numpy(beta))
    np.testing.assert_allclose(np.asarray(layer(x)), ln(torch.from_numpy(x)).detach().numpy(),
                               **TOL)
    two = layers.LayerNormalization(axis=[-2, -1])
    y = np.asarray(two(x))
    m, v = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 1e-3), **TOL)


# ---------------------------------------------------------------- the rest
def test_embedding_lookup_and_float_ids(rng):
    layer = layers.Embedding(10, 3)
    ids = np.array([[1, 2], [9, 0]])
    y = layer(ids)
    (table,) = layer.get_weights()
    assert table.shape == (10, 3) and np.all(np.abs(table) <= 0.05)
    np.testing.assert_array_equal(np.asarray(y), table[ids])
    np.testing.assert_array_equal(np.asarray(layer(ids.astype(np.float32))), table[ids])


def test_dropout_training_scales_and_inference_is_identity():
    x = np.ones((200, 50), np.float32)
    layer = layers.Dropout(0.3)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    y = np.asarray(layer(x, training=True))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02


def test_shape_layers(rng):
    x = _randn(rng, 2, 3, 4)
    np.testing.assert_array_equal(np.asarray(layers.Flatten()(x)), x.reshape(2, 12))
    np.testing.assert_array_equal(np.asarray(layers.Reshape((4, 3))(x)), x.reshape(2, 4, 3))
    np.testing.assert_array_equal(np.asarray(layers.Reshape((-1,))(x)), x.reshape(2, 12))
    xc = _randn(rng, 2, 3, 4, 5)  # channels_first Flatten flattens in channels_last order
    np.testing.assert_array_equal(np.asarray(layers.Flatten(data_format="channels_first")(xc)),
                                  xc.transpose(0, 2, 3, 1).reshape(2, -1))
    with pytest.raises(ShapeError, match=r"cannot reshape examples of shape \(3, 4\)"):
        layers.Reshape((5,))(x)


def test_activation_layers(rng):
    x = _randn(rng, 4, 6) * 3
    np.testing.assert_allclose(np.asarray(layers.ReLU()(x)), np.maximum(x, 0))
    np.testing.assert_allclose(np.asarray(layers.ReLU(max_value=1.0)(x)), np.clip(x, 0, 1))
    np.testing.assert_allclose(np.asarray(layers.ReLU(negative_slope=0.1, threshold=0.5)(x)),
                               np.where(x > 0.5, x, 0.1 * (x - 0.5)), **TOL)
    np.testing.assert_allclose(np.asarray(layers.LeakyReLU()(x)), np.where(x > 0, x, 0.3 * x),
                               **TOL)
    np.testing.assert_allclose(np.asarray(layers.ELU(alpha=0.5)(x)),
                               np.where(x > 0, x, 0.5 * np.expm1(x)), **TOL)
    e = np.exp(x - x.max(0))
    np.testing.assert_allclose(np.asarray(layers.Softmax(axis=0)(x)), e / e.sum(0), **TOL)
    np.testing.assert_allclose(np.asarray(layers.Activation("tanh")(x)), np.tanh(x), **TOL)
    np.testing.assert_allclose(np.asarray(layers.Rescaling(0.5, offset=1.0)(x)), x * 0.5 + 1,
                               **TOL)
    u8 = np.array([[0, 255]], np.uint8)
    np.testing.assert_allclose(np.asarray(layers.Rescaling(1 / 255)(u8)), [[0.0, 1.0]], **TOL)
    np.testing.assert_allclose(np.asarray(layers.Lambda(lambda v: v * 2)(x)), 2 * x)


def test_merge_layers(rng):
    a, b, c = _randn(rng, 2, 3), _randn(rng, 2, 3), _randn(rng, 2, 3)
    np.testing.assert_allclose(np.asarray(layers.Add()([a, b, c])), a + b + c, **TOL)
    np.testing.assert_allclose(np.asarray(layers.Subtract()([a, b])), a - b, **TOL)
    np.testing.assert_allclose(np.asarray(layers.Multiply()([a, b])), a * b, **TOL)
    np.testing.assert_allclose(np.asarray(layers.Average()([a, b])), (a + b) / 2, **TOL)
    np.testing.assert_allclose(np.asarray(layers.Maximum()([a, b])), np.maximum(a, b), **TOL)
    np.testing.assert_allclose(np.asarray(layers.Minimum()([a, b])), np.minimum(a, b), **TOL)
    np.testing.assert_allclose(np.asarray(layers.Concatenate()([a, b[:, :2]])),
                               np.concatenate([a, b[:, :2]], -1))
    with pytest.raises(ShapeError, match=r"Add 'add_1': inputs expected broadcastable shapes, got "
                                         r"\[\(2, 3\), \(2, 2\)\]"):
        layers.Add()([a, b[:, :2]])
    with pytest.raises(ShapeError, match=r"Concatenate 'concatenate_1': inputs expected equal shapes except on axis -1"):
        layers.Concatenate()([a, b[:1]])
    with pytest.raises(ShapeError, match=r"Add 'add_2': input expected a list of at least 2 tensors"):
        layers.Add()(a)
    with pytest.raises(ShapeError, match=r"Subtract 'subtract_1': input expected exactly 2 tensors, got 3"):
        layers.Subtract()([a, b, c])


# ---------------------------------------------------------------- weights API
def test_get_set_weights_order_and_errors(rng):
    bn = layers.BatchNormalization()
    with pytest.raises(ConfigError, match=r"get_weights: BatchNormalization "
                                          r"'batch_normalization' has no weights yet"):
        bn.get_weights()
    bn(_randn(rng, 4, 3))
    g, b, m, v = bn.get_weights()
    np.testing.assert_array_equal(g, 1)
    np.testing.assert_array_equal(b, 0)
    np.testing.assert_array_equal(m, 0)
    np.testing.assert_array_equal(v, 1)
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert bn.count_params() == 12
    with pytest.raises(ShapeError, match=r"set_weights: BatchNormalization 'batch_normalization' "
                                         r"expected 4 arrays \(scale, bias, mean, var\), got 3"):
        bn.set_weights([g, b, m])
    with pytest.raises(ShapeError, match=r"shape mismatch: scale: expected \(3,\), got \(4,\)"):
        bn.set_weights([np.ones(4), b, m, v])


def test_layer_names_are_unique_like_keras():
    names = [layers.Dense(1).name, layers.Dense(1).name, layers.Conv2D(1, 1).name,
             layers.MaxPooling2D().name, layers.BatchNormalization().name, layers.ReLU().name,
             layers.GlobalAveragePooling2D().name, layers.Dense(1, name="head").name]
    assert names == ["dense", "dense_1", "conv2d", "max_pooling2d", "batch_normalization",
                     "re_lu", "global_average_pooling2d", "head"]


# ---------------------------------------------------------------- configuration errors
@pytest.mark.parametrize("make,match", [
    (lambda: layers.Dense(4, activation="relux"),
     r"activation: unknown value 'relux'; expected one of \[.*'relu'.*\]"),
    (lambda: layers.Dense(4, kernel_initializer="glorot"),
     r"initializer: unknown value 'glorot'; expected one of \[.*'glorot_uniform'.*\]"),
    (lambda: layers.Dense(0), r"Dense 'dense': units expected a positive int, got 0"),
    (lambda: layers.Conv2D(8, 3, padding="full"),
     r"Conv2D 'conv2d': padding expected one of \['valid', 'same'\], got 'full'"),
    (lambda: layers.Conv1D(8, 3, padding="full"),
     r"Conv1D 'conv1d': padding expected one of \['valid', 'same', 'causal'\], got 'full'"),
    (lambda: layers.Conv2D(8, (3, 3, 3)),
     r"Conv2D 'conv2d': kernel_size expected a positive int or 2 positive ints"),
    (lambda: layers.Conv2D(0, 3), r"filters expected a positive int, got 0"),
    (lambda: layers.Conv2D(8, 3, groups=3), r"groups expected a positive int dividing filters=8"),
    (lambda: layers.MaxPooling2D(data_format="nhwc"),
     r"data_format expected one of \['channels_last', 'channels_first'\], got 'nhwc'"),
    (lambda: layers.Dropout(1.0), r"Dropout 'dropout': rate expected a number in \[0, 1\)"),
    (lambda: layers.Dense(3, trainable=False),
     r"trainable=False \(freezing weights\) is not supported"),
    (lambda: layers.Dense(3, dtype="float16"), r"dtype expected 'float32'"),
    (lambda: layers.Dense(3, input_shape=(None, 4)), r"input_shape expected known sizes"),
    (lambda: layers.LayerNormalization(axis=1), r"axis expected the trailing axes"),
    (lambda: layers.BatchNormalization(axis=(1, 2)), r"axis expected an int"),
    (lambda: layers.Embedding(0, 3), r"Embedding 'embedding': input_dim expected a positive int"),
    (lambda: layers.Reshape((2, -1, -1)), r"at most one -1"),
    (lambda: layers.ReLU(max_value=-1), r"max_value expected >= 0"),
    (lambda: layers.Lambda(3), r"function expected a callable"),
    (lambda: keras.Input(shape=(None, 3)), r"Input: shape expected known positive sizes"),
    (lambda: keras.Input(), r"Input: shape expected a tuple"),
    (lambda: keras.initializers.VarianceScaling(mode="fan"), r"VarianceScaling mode: unknown"),
    (lambda: keras.initializers.VarianceScaling(distribution="x"),
     r"VarianceScaling distribution: unknown"),
    (lambda: keras.initializers.get(3), r"initializer: expected a name or a callable, got 3"),
    (lambda: keras.activations.get(3), r"activation: expected a name or a callable, got 3"),
    (lambda: keras.initializers.get("identity")((2, 2, 2)),
     r"Identity initializer: expected a 2-d shape"),
])
def test_configuration_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_trainable_cannot_be_switched_off():
    layer = layers.Dense(2)
    assert layer.trainable is True
    layer.trainable = True
    with pytest.raises(ConfigError, match=r"Dense 'dense': trainable=False .*\nHint: .*optax"):
        layer.trainable = False


def test_layer_call_signature_errors(rng):
    with pytest.raises(TypeError, match=r"Dense 'dense': call takes one input .*got \['foo'\]"):
        layers.Dense(2)(_randn(rng, 2, 2), foo=1)


def test_wrong_input_to_a_built_layer_names_it(rng):
    layer = layers.Dense(2)
    layer(_randn(rng, 3, 4))
    with pytest.raises(ShapeError, match=r"Dense 'dense': input last axis 5 != kernel in-features 4 "
                                         r"\(input \(3, 5\), kernel \(4, 2\)\)"):
        layer(_randn(rng, 3, 5))
