"""Dense: forward and gradient parity with torch.nn.Linear, finite differences, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.layers import Dense, Flatten
from functorch_lite.layers.activations import relu

TOL = dict(atol=1e-5, rtol=1e-5)


def _linear(torch, rng, fin, fout, bias=True):
    lin = torch.nn.Linear(fin, fout, bias=bias)
    with torch.no_grad():  # non-default values, so a transposed or ignored weight shows
        lin.weight.copy_(torch.from_numpy(rng.standard_normal((fout, fin)).astype(np.float32)))
        if bias:
            lin.bias.copy_(torch.from_numpy(rng.standard_normal(fout).astype(np.float32)))
    return lin


@pytest.mark.parametrize("xshape", [(5, 7), (3, 4, 7), (2, 3, 2, 7)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_matches_torch_linear_io_layout(torch, rng, xshape, use_bias):
    lin = _linear(torch, rng, 7, 6, use_bias)
    x = rng.standard_normal(xshape).astype(np.float32)
    layer = Dense(6, use_bias=use_bias)
    params = {"kernel": jnp.asarray(lin.weight.detach().numpy().T)}
    if use_bias:
        params["bias"] = jnp.asarray(lin.bias.detach().numpy())
    y, state = layer.apply(params, {}, jnp.asarray(x))
    expected = lin(torch.from_numpy(x)).detach().numpy()
    assert y.shape == expected.shape and y.dtype == jnp.float32 and state == {}
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


@pytest.mark.parametrize("xshape", [(5, 7), (3, 4, 7)])
def test_forward_matches_torch_linear_oi_layout_verbatim(torch, rng, xshape):
    lin = _linear(torch, rng, 7, 6)
    x = rng.standard_normal(xshape).astype(np.float32)
    layer = Dense(6, kernel_layout="oi")
    params, _ = layer.init(jax.random.key(0), xshape)
    assert set(params) == {"weight", "bias"} and params["weight"].shape == (6, 7)
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in lin.state_dict().items()}
    y, _ = layer.apply(params, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), lin(torch.from_numpy(x)).detach().numpy(), **TOL)


def test_init_shapes_dtype_and_batch_independence():
    layer = Dense(10)
    p1, s1 = layer.init(jax.random.key(3), (1, 784))
    p64, s64 = layer.init(jax.random.key(3), (64, 784))
    assert s1 == {} and s64 == {}
    assert p1["kernel"].shape == (784, 10) and p1["bias"].shape == (10,)
    np.testing.assert_array_equal(p1["kernel"], p64["kernel"])
    np.testing.assert_array_equal(p1["bias"], np.zeros(10))
    assert set(Dense(10, use_bias=False).init(jax.random.key(0), (2, 3))[0]) == {"kernel"}
    # dtype follows the spec (bf16 in, bf16 params), integer specs get float32
    pb, _ = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 3), jnp.bfloat16))
    assert pb["kernel"].dtype == jnp.bfloat16
    pi, _ = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 3), jnp.int32))
    assert pi["kernel"].dtype == jnp.float32
    # different keys give different kernels
    p2, _ = layer.init(jax.random.key(4), (1, 784))
    assert not np.allclose(p1["kernel"], p2["kernel"])


@pytest.mark.parametrize("layout", ["io", "oi"])
def test_gradients_match_finite_differences(x64, rng, layout):
    layer = Dense(4, kernel_layout=layout, bias_init="normal")
    x = jnp.asarray(rng.standard_normal((3, 5)))
    params, _ = layer.init(jax.random.key(1), jax.ShapeDtypeStruct(x.shape, jnp.float64))
    assert all(v.dtype == jnp.float64 for v in jax.tree_util.tree_leaves(params))

    def f(p, x):  # a nonlinearity on top so the second order is not trivially zero
        return jnp.tanh(layer.apply(p, {}, x)[0])
    check_grads(f, (params, x), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_parameter_gradients_match_torch_autograd(torch, rng):
    lin = _linear(torch, rng, 7, 3)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    t = rng.standard_normal((6, 3)).astype(np.float32)
    loss_t = ((lin(torch.from_numpy(x)) - torch.from_numpy(t)) ** 2).mean()
    loss_t.backward()

    layer = Dense(3)
    params = {"kernel": jnp.asarray(lin.weight.detach().numpy().T),
              "bias": jnp.asarray(lin.bias.detach().numpy())}

    def loss(p, x):
        return jnp.mean((layer.apply(p, {}, x)[0] - t) ** 2)
    value, (g, gx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, jnp.asarray(x))
    np.testing.assert_allclose(float(value), loss_t.item(), **TOL)
    np.testing.assert_allclose(np.asarray(g["kernel"]), lin.weight.grad.numpy().T, **TOL)
    np.testing.assert_allclose(np.asarray(g["bias"]), lin.bias.grad.numpy(), **TOL)
    xt = torch.from_numpy(x).requires_grad_()
    ((lin(xt) - torch.from_numpy(t)) ** 2).mean().backward()
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), **TOL)


def test_wrong_feature_size_names_the_path_and_both_shapes():
    model = Sequential([Flatten(), relu, Dense(3)])
    params, state = model.init(jax.random.key(0), (2, 4))
    with pytest.raises(ShapeError, match=r"Dense '2_dense': input last axis 6 != kernel in-features 4 "
                                         r"\(input \(2, 6\), kernel \(4, 3\)\)"):
        model.apply(params, state, jnp.ones((2, 6)))
    layer = Dense(3, kernel_layout="oi")
    p, _ = layer.init(jax.random.key(0), (2, 4))
    with pytest.raises(ShapeError, match=r"^Dense: input last axis 5 != kernel in-features 4 "
                                         r"\(input \(2, 5\), weight \(3, 4\)\)$"):
        layer.apply(p, {}, jnp.ones((2, 5)))
    # rank > 2 gets a hint to flatten
    p, _ = Dense(3).init(jax.random.key(0), (2, 4))
    with pytest.raises(ShapeError, match=r"input \(2, 3, 5\).*\nHint: flatten the input first"):
        Dense(3).apply(p, {}, jnp.ones((2, 3, 5)))


def test_scalar_input_is_rejected():
    p, _ = Dense(3).init(jax.random.key(0), (2, 4))
    with pytest.raises(ShapeError, match=r"input last axis None != kernel in-features 4"):
        Dense(3).apply(p, {}, jnp.float32(1.0))
    with pytest.raises(ShapeError, match=r"Dense: input expected at least 1 axis, got shape \(\)"):
        Dense(3).init(jax.random.key(0), ())


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8"])
def test_bad_features(bad):
    with pytest.raises(ConfigError, match=r"Dense: features expected a positive int, got"):
        Dense(bad)


def test_bad_kernel_layout():
    with pytest.raises(ConfigError, match=r"Dense: kernel_layout expected 'io' or 'oi', got 'xy'"):
        Dense(3, kernel_layout="xy")
