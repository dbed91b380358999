"""Flatten and Reshape: parity with torch.flatten / reshape, output_spec, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ShapeError
from functorch_lite.core.module import output_spec
from functorch_lite.layers import Flatten, Reshape


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (4, 7), (2, 3, 1)])
def test_flatten_matches_torch(torch, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    y, state = Flatten().apply({}, {}, jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(y), torch.nn.Flatten()(torch.from_numpy(x)).numpy())
    assert state == {} and Flatten().init(jax.random.key(0), shape) == ({}, {})


@pytest.mark.parametrize("target", [(6, 4), (-1, 2), (2, -1, 3), (24,)])
def test_reshape_matches_torch(torch, rng, target):
    x = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    y, _ = Reshape(target).apply({}, {}, jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(y), torch.from_numpy(x).reshape((3,) + target).numpy())


def test_output_spec_and_list_shape():
    assert output_spec(Sequential([Reshape([4, 4, 1]), Flatten()]), (5, 16)) == \
        jax.ShapeDtypeStruct((5, 16), jnp.float32)
    assert Reshape([2, 3]) == Reshape((2, 3)) and hash(Reshape([2, 3])) == hash(Reshape((2, 3)))
    assert repr(Reshape((2, 3))) == "Reshape(shape=(2, 3))"


def test_reshape_errors():
    model = Sequential([Flatten(), Reshape((5, 5))])
    with pytest.raises(ShapeError, match=r"Reshape '1_reshape': cannot reshape examples of shape \(24,\) "
                                         r"\(24 values\) to \(5, 5\) \(input \(2, 24\)\)"):
        model.init(jax.random.key(0), (2, 4, 6))
    with pytest.raises(ShapeError, match=r"Reshape: cannot reshape examples of shape \(7,\) \(7 values\) to \(-1, 2\)"):
        Reshape((-1, 2)).apply({}, {}, jnp.ones((3, 7)))
    with pytest.raises(ShapeError, match=r"Flatten: input expected a batch axis, got a scalar"):
        Flatten().apply({}, {}, jnp.float32(1))
