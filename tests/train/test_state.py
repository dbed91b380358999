"""TrainState.create: the one-computation path makes exactly the state the step-by-step one does."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import functorch_lite as fl
from functorch_lite import layers as L
from functorch_lite.train.state import TrainState


def test_create_in_one_computation_equals_the_step_by_step_state():
    model = fl.Sequential([L.Conv(4, (3, 3)), fl.relu, L.Flatten(), L.BatchNorm(), L.Dense(3)])
    tx = optax.adam(1e-3)
    spec = jax.ShapeDtypeStruct((2, 6, 6, 1), jnp.float32)
    key = jax.random.key(7)
    one = TrainState.create(model, tx, key, spec)
    # by hand: the documented key split, the model's init, the optimizer's init
    init_key, rng = jax.random.split(key)
    params, state = model.init(init_key, spec)
    by_hand = TrainState(params, state, tx.init(params), jnp.zeros((), jnp.int32), rng)
    a, b = jax.tree_util.tree_flatten(one)[0], jax.tree_util.tree_flatten(by_hand)[0]
    assert jax.tree_util.tree_structure(one) == jax.tree_util.tree_structure(by_hand)
    for u, v in zip(a, b):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_array_equal(u, v)
    assert float(jnp.std(one.params["0_conv"]["kernel"])) > 0   # really random, not zeros


def _leaves(ts):
    return [np.asarray(jax.random.key_data(u) if jnp.issubdtype(u.dtype, jax.dtypes.prng_key) else u)
            for u in jax.tree_util.tree_leaves(ts)]


def test_an_int_seed_makes_the_state_of_jax_random_key_of_that_seed():
    """``create(..., seed)`` (the key made inside the compiled create) is the state of
    ``create(..., jax.random.key(seed))``, over the int32 range and past it."""
    model = fl.Sequential([L.Dense(3), fl.relu, L.Dense(2)])
    spec = jax.ShapeDtypeStruct((2, 4), jnp.float32)
    tx = optax.adam(1e-3)   # one optimizer: one compiled create per argument type
    for seed in (0, 7, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 40, np.int64(5)):
        by_seed = TrainState.create(model, tx, seed, spec)
        by_key = TrainState.create(model, tx, jax.random.key(seed), spec)
        for u, v in zip(_leaves(by_seed), _leaves(by_key)):
            np.testing.assert_array_equal(u, v, err_msg=f"seed {seed}")
    one = TrainState.create(model, _Unhashable(optax.sgd(0.1)), 3, spec)   # the step-by-step path
    two = TrainState.create(model, optax.sgd(0.1), jax.random.key(3), spec)
    for u, v in zip(_leaves(one.params), _leaves(two.params)):
        np.testing.assert_array_equal(u, v)


def test_given_params_are_kept_and_an_unhashable_optimizer_still_works():
    model = fl.Sequential([L.Dense(3)])
    spec = jax.ShapeDtypeStruct((2, 4), jnp.float32)
    params, _ = model.init(jax.random.key(0), spec)
    ts = TrainState.create(model, optax.sgd(0.1), jax.random.key(1), spec, params=params)
    assert ts.params is params
    ts2 = TrainState.create(model, _Unhashable(optax.sgd(0.1)), jax.random.key(1), spec)
    assert set(ts2.params["0_dense"]) == {"kernel", "bias"}


class _Unhashable:
    __hash__ = None

    def __init__(self, tx):
        self.init, self.update = tx.init, tx.update
