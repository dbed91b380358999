"""Dropout: identity in eval, needs a key in training, drops ~rate, scales by 1/(1-rate)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError
from functorch_lite.layers import Dense, Dropout


def test_eval_mode_is_identity_with_or_without_key():
    x = jnp.arange(12.0).reshape(3, 4)
    layer = Dropout(0.5)
    assert layer.init(jax.random.key(0), x.shape) == ({}, {})
    for key in (None, jax.random.key(1)):
        y, state = layer.apply({}, {}, x, key=key)
        np.testing.assert_array_equal(y, x)
        assert state == {}


def test_train_without_key_raises_and_names_path():
    with pytest.raises(ValueError, match=r"^Dropout: train=True needs a random key, got key=None\n"
                                         r"Hint: pass key=jax.random.key\(seed\)"):
        Dropout(0.5).apply({}, {}, jnp.ones((2, 3)), train=True)
    model = Sequential([Dense(3), Dropout(0.2)])
    params, state = model.init(jax.random.key(0), (2, 3))
    with pytest.raises(ValueError, match=r"Dropout '1_dropout': train=True needs a random key"):
        model.apply(params, state, jnp.ones((2, 3)), train=True)
    # rate 0 never draws, so no key is needed
    np.testing.assert_array_equal(Dropout(0.0).apply({}, {}, jnp.ones(3), train=True)[0], jnp.ones(3))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_train_drops_rate_fraction_and_rescales(rate):
    x = jnp.asarray(np.random.default_rng(0).uniform(1, 2, (200, 500)).astype(np.float32))
    y, _ = Dropout(rate).apply({}, {}, x, key=jax.random.key(7), train=True)
    y, x = np.asarray(y), np.asarray(x)
    dropped = y == 0
    # 100k Bernoulli draws: the std of the fraction is < 0.0016, so 0.01 is > 6 sigma
    assert abs(dropped.mean() - rate) < 0.01
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)
    # the mean is preserved in expectation
    assert abs(y.mean() / x.mean() - 1) < 0.02


def test_deterministic_per_key_and_different_across_keys():
    x = jnp.ones((64, 64))
    layer = Dropout(0.5)
    a = layer.apply({}, {}, x, key=jax.random.key(1), train=True)[0]
    b = layer.apply({}, {}, x, key=jax.random.key(1), train=True)[0]
    c = layer.apply({}, {}, x, key=jax.random.key(2), train=True)[0]
    np.testing.assert_array_equal(a, b)
    assert (np.asarray(a) != np.asarray(c)).mean() > 0.3
    # works under jit with a traced key
    d = jax.jit(lambda k, x: layer.apply({}, {}, x, key=k, train=True)[0])(jax.random.key(1), x)
    np.testing.assert_array_equal(a, d)


def test_gradient_is_the_scaled_mask():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32))
    layer, key = Dropout(0.25), jax.random.key(3)
    y = layer.apply({}, {}, x, key=key, train=True)[0]
    g = jax.grad(lambda x: jnp.sum(layer.apply({}, {}, x, key=key, train=True)[0]))(x)
    np.testing.assert_allclose(np.asarray(g), np.where(np.asarray(y) != 0, 1 / 0.75, 0.0), rtol=1e-6)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_bad_rate(rate):
    with pytest.raises(ConfigError, match=rf"Dropout: rate expected in \[0, 1\), got {rate}"):
        Dropout(rate)


def test_repr_and_flags():
    assert repr(Dropout(0.5)) == "Dropout(rate=0.5)"
    assert Dropout(0.5).needs_key and not Dense(3).needs_key
    assert Dropout(0.5) == Dropout(0.5) and hash(Dropout(0.5)) == hash(Dropout(0.5))
