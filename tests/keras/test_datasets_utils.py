"""keras.datasets, keras.utils and keras.backend."""
import numpy as np
import pytest

import functorch_lite.keras as keras
from functorch_lite.core.errors import ConfigError, DataError, ShapeError
from functorch_lite.keras import layers


def test_mnist_load_data_like_keras():
    (x, y), (xt, yt) = keras.datasets.mnist.load_data()
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10)) and x.max() == 255


def test_load_data_from_a_keras_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    arrays = dict(x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.arange(3, dtype=np.uint8),
                  x_test=np.ones((2, 28, 28), np.uint8), y_test=np.arange(2, dtype=np.uint8))
    np.savez(path, **arrays)
    (x, y), (xt, yt) = keras.datasets.mnist.load_data(path=str(path))
    np.testing.assert_array_equal(y, [0, 1, 2])
    np.testing.assert_array_equal(xt, arrays["x_test"])
    np.savez(path, x_train=arrays["x_train"])
    with pytest.raises(DataError, match=r"mnist.load_data: '.*mnist.npz' lacks the arrays "
                                        r"\['y_train', 'x_test', 'y_test'\]"):
        keras.datasets.mnist.load_data(path=str(path))


def test_fashion_mnist_load_data_or_a_clear_error():
    try:
        (x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
    except DataError as e:  # no local copy and no network here
        assert "fashion-mnist" in str(e) or "download" in str(e)
        return
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and yt.shape == (10000,)


def test_to_categorical():
    out = keras.utils.to_categorical([0, 2, 1, 2])
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1, 2]])
    assert out.dtype == np.float32
    col = keras.utils.to_categorical(np.array([[1], [3]]), num_classes=5)
    np.testing.assert_array_equal(col, np.eye(5)[[1, 3]])
    grid = keras.utils.to_categorical(np.array([[0, 1], [1, 0]]), 2)
    assert grid.shape == (2, 2, 2) and grid[0, 1, 1] == 1
    np.testing.assert_array_equal(keras.utils.to_categorical(np.array([1.0, 0.0])),
                                  [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"to_categorical: labels expected in \[0, 3\), got 3 at "
                                         r"flat index 1"):
        keras.utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match=r"got -1 at flat index 0"):
        keras.utils.to_categorical([-1, 1], num_classes=3)
    with pytest.raises(ShapeError, match=r"to_categorical: x expected integer class labels, got "
                                         r"non-integer values"):
        keras.utils.to_categorical([0.5])
    with pytest.raises(ShapeError, match=r"x expected integer class labels, got dtype <U1"):
        keras.utils.to_categorical(["a"])
    with pytest.raises(ConfigError, match=r"num_classes expected a positive int, got 0"):
        keras.utils.to_categorical([0], num_classes=0)


def test_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(keras.utils.normalize(x), [[0.6, 0.8], [0.0, 0.0]])


def test_set_random_seed_makes_runs_repeat(rng):
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        m = keras.Sequential([keras.Input((3,)), layers.Dense(4), layers.Dropout(0.5),
                              layers.Dense(2)])
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, batch_size=4, epochs=2, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(8)
    other = keras.Sequential([keras.Input((3,)), layers.Dense(4)]).get_weights()[0]
    assert not np.array_equal(other, runs[0][0][:, :4]) or other.shape != runs[0][0].shape
    with pytest.raises(ConfigError, match=r"set_random_seed: seed expected a non-negative int"):
        keras.utils.set_random_seed(-1)


def test_backend_and_clear_session():
    assert keras.backend.backend() == "jax"
    assert keras.backend.image_data_format() == "channels_last"
    assert keras.backend.floatx() == "float32" and keras.backend.epsilon() == 1e-7
    assert layers.Dense(1).name == "dense" and layers.Dense(1).name == "dense_1"
    keras.backend.clear_session()
    assert layers.Dense(1).name == "dense"


def test_tf_keras_style_imports():
    from functorch_lite.keras.callbacks import EarlyStopping
    from functorch_lite.keras.datasets import mnist
    from functorch_lite.keras.layers import Conv2D, Dense
    from functorch_lite.keras.models import Sequential
    from functorch_lite.keras.utils import to_categorical
    assert callable(mnist.load_data) and Sequential is keras.Sequential
    assert keras.models.Model is keras.Model and keras.layers.Input is keras.Input
    assert all(x is not None for x in (EarlyStopping, Conv2D, Dense, to_categorical))
