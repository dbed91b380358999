"""BatchNorm and LayerNorm: parity with torch (train outputs, running stats, eval), gradients, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.layers import BatchNorm, Dense, LayerNorm

TOL = dict(atol=1e-5, rtol=1e-5)


def _torch_bn(torch, rng, c, two_d):
    bn = (torch.nn.BatchNorm2d if two_d else torch.nn.BatchNorm1d)(c, momentum=0.1, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
        bn.bias.copy_(torch.from_numpy(rng.standard_normal(c).astype(np.float32)))
    return bn


# (input shape in torch's NC* layout, feature axis for our layer, whether we feed channels_last)
CASES = [((16, 5), -1, False),             # BatchNorm1d on (N, C)
         ((8, 4, 6), 1, False),            # BatchNorm1d on (N, C, L)
         ((4, 3, 5, 6), 1, False),         # BatchNorm2d NCHW, axis=1
         ((4, 3, 5, 6), -1, True)]         # BatchNorm2d, our layer on NHWC (the core layout)


@pytest.mark.parametrize("shape,axis,nhwc", CASES, ids=str)
def test_batchnorm_train_and_eval_match_torch(torch, rng, shape, axis, nhwc):
    c = shape[1]
    bn = _torch_bn(torch, rng, c, len(shape) == 4)
    layer = BatchNorm(axis=axis, decay=0.9, unbiased_running_var=True)
    ours = (lambda a: np.moveaxis(a, 1, -1)) if nhwc else (lambda a: a)
    params, state = layer.init(jax.random.key(0), ours(np.zeros(shape, np.float32)).shape)
    assert set(params) == {"scale", "bias"} and set(state) == {"mean", "var"}
    np.testing.assert_array_equal(state["mean"], np.zeros(c))
    np.testing.assert_array_equal(state["var"], np.ones(c))
    params = {"scale": jnp.asarray(bn.weight.detach().numpy()), "bias": jnp.asarray(bn.bias.detach().numpy())}

    bn.train()
    step = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=True))
    for i in range(3):   # shifted, scaled inputs so the running stats move visibly
        x = (rng.standard_normal(shape) * (i + 2) + i).astype(np.float32)
        expected = bn(torch.from_numpy(x)).detach().numpy()
        y, state = step(params, state, jnp.asarray(ours(x)))
        np.testing.assert_allclose(np.asarray(y), ours(expected), **TOL)
        np.testing.assert_allclose(np.asarray(state["mean"]), bn.running_mean.numpy(), **TOL)
        np.testing.assert_allclose(np.asarray(state["var"]), bn.running_var.numpy(), **TOL)
        assert state["mean"].dtype == jnp.float32 and state["var"].dtype == jnp.float32

    bn.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    y, state2 = layer.apply(params, state, jnp.asarray(ours(x)), train=False)
    assert state2 is state   # eval returns the state unchanged
    np.testing.assert_allclose(np.asarray(y), ours(bn(torch.from_numpy(x)).detach().numpy()), **TOL)


def test_batchnorm_keras_default_is_biased_decay_099(rng):
    """Closed form: new = 0.99 * old + 0.01 * biased batch variance; output uses batch stats."""
    x = rng.standard_normal((10, 3)).astype(np.float32) * 3 + 1
    layer = BatchNorm()
    params, state = layer.init(jax.random.key(0), x.shape)
    y, new = layer.apply(params, state, jnp.asarray(x), train=True)
    m, v = x.mean(0), x.var(0)
    np.testing.assert_allclose(np.asarray(new["mean"]), 0.01 * m, **TOL)
    np.testing.assert_allclose(np.asarray(new["var"]), 0.99 + 0.01 * v, **TOL)
    np.testing.assert_allclose(np.asarray(y), (x - m) / np.sqrt(v + 1e-5), atol=1e-5, rtol=1e-4)
    # without scale/bias there are no params, the state is still there
    p, s = BatchNorm(use_scale=False, use_bias=False).init(jax.random.key(0), x.shape)
    assert p == {} and set(s) == {"mean", "var"}


def test_batchnorm_gradients_match_torch(torch, rng):
    x = rng.standard_normal((6, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((6, 3, 4, 5)).astype(np.float32)
    bn = _torch_bn(torch, rng, 3, True)
    bn.train()
    xt = torch.from_numpy(x).requires_grad_()
    (torch.sin(bn(xt)) * torch.from_numpy(w)).sum().backward()

    layer = BatchNorm(axis=1, decay=0.9, unbiased_running_var=True)
    params = {"scale": jnp.asarray(bn.weight.detach().numpy()), "bias": jnp.asarray(bn.bias.detach().numpy())}
    _, state = layer.init(jax.random.key(0), x.shape)

    def loss(p, x):
        y, _ = layer.apply(p, state, x, train=True)
        return jnp.sum(jnp.sin(y) * w)
    g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g["scale"]), bn.weight.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g["bias"]), bn.bias.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradients_match_finite_differences(x64, rng, train):
    layer = BatchNorm(axis=1)
    x = jnp.asarray(rng.standard_normal((5, 3, 4)))
    params, state = layer.init(jax.random.key(0), x.shape)
    params = {"scale": jnp.asarray(rng.uniform(0.5, 1.5, 3)), "bias": jnp.asarray(rng.standard_normal(3))}
    state = {"mean": jnp.asarray(rng.standard_normal(3)), "var": jnp.asarray(rng.uniform(0.5, 2, 3))}

    def f(p, x):
        return layer.apply(p, state, x, train=train)[0]
    check_grads(f, (params, x), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)
    if train:  # second order through the batch statistics (reverse-over-reverse only, for speed)
        check_grads(f, (params, x), order=2, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_batchnorm_state_keeps_its_dtype(x64, rng):
    """float64 data must not turn float32 running stats into float64 (a lax.scan / donated
    TrainState carry would change type)."""
    layer = BatchNorm()
    x = jnp.asarray(rng.standard_normal((4, 3)))            # float64 under x64
    params, state = layer.init(jax.random.key(0), (4, 3))
    y, new = layer.apply(params, state, x, train=True)
    assert y.dtype == jnp.float64
    assert jax.tree_util.tree_map(lambda a: a.dtype, new) == jax.tree_util.tree_map(lambda a: a.dtype, state)
    np.testing.assert_allclose(np.asarray(new["mean"]), 0.01 * np.asarray(x).mean(0), rtol=1e-6)


def test_batchnorm_in_sequential_threads_state():
    model = Sequential([Dense(4), BatchNorm()])
    params, state = model.init(jax.random.key(0), (8, 3))
    x = jnp.arange(24.0).reshape(8, 3)
    _, s_eval = model.apply(params, state, x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s_eval, state)
    _, s_train = model.apply(params, state, x, train=True)
    assert s_train["0_dense"] == {}
    assert not np.allclose(s_train["1_batch_norm"]["mean"], state["1_batch_norm"]["mean"])


def test_batchnorm_wrong_features_names_path():
    model = Sequential([BatchNorm()])
    params, state = model.init(jax.random.key(0), (8, 3))
    with pytest.raises(ShapeError, match=r"BatchNorm '0_batch_norm': input features 5 on axis -1 != 3 "
                                         r"features the layer was built for \(input \(8, 5\)\)"):
        model.apply(params, state, jnp.ones((8, 5)), train=True)
    with pytest.raises(ShapeError, match=r"BatchNorm: feature axis 3 is out of range for input rank 3 "
                                         r"\(axis 0 is the batch axis\)"):
        BatchNorm(axis=3).init(jax.random.key(0), (2, 3, 4))
    with pytest.raises(ShapeError, match=r"feature axis 0 is out of range"):
        BatchNorm(axis=0).init(jax.random.key(0), (2, 3))


def test_batchnorm_bad_config():
    with pytest.raises(ConfigError, match=r"BatchNorm: decay expected in \[0, 1\], got 1.5"):
        BatchNorm(decay=1.5)
    with pytest.raises(ConfigError, match=r"BatchNorm: epsilon expected > 0, got 0"):
        BatchNorm(epsilon=0)


@pytest.mark.parametrize("shape,ndims", [((4, 6), 1), ((2, 3, 6), 1), ((2, 3, 4, 5), 2)])
def test_layernorm_matches_torch(torch, rng, shape, ndims):
    norm_shape = shape[-ndims:]
    ln = torch.nn.LayerNorm(norm_shape, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, norm_shape).astype(np.float32)))
        ln.bias.copy_(torch.from_numpy(rng.standard_normal(norm_shape).astype(np.float32)))
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    layer = LayerNorm(ndims=ndims)
    params, state = layer.init(jax.random.key(0), shape)
    assert params["scale"].shape == norm_shape and state == {}
    params = {"scale": jnp.asarray(ln.weight.detach().numpy()), "bias": jnp.asarray(ln.bias.detach().numpy())}
    y, _ = layer.apply(params, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), ln(torch.from_numpy(x)).detach().numpy(), **TOL)

    w = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    (ln(xt) * torch.from_numpy(w)).sum().backward()
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, {}, x)[0] * w), argnums=(0, 1)))
    g, gx = grad(params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g["scale"]), ln.weight.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g["bias"]), ln.bias.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), atol=1e-5, rtol=1e-4)


def test_layernorm_gradients_match_finite_differences(x64, rng):
    layer = LayerNorm(ndims=2)
    x = jnp.asarray(rng.standard_normal((2, 3, 4)))
    params = {"scale": jnp.asarray(rng.uniform(0.5, 1.5, (3, 4))), "bias": jnp.asarray(rng.standard_normal((3, 4)))}
    check_grads(lambda p, x: layer.apply(p, {}, x)[0], (params, x), order=1, modes=("fwd", "rev"),
                atol=1e-5, rtol=1e-5)


def test_layernorm_errors():
    params, _ = LayerNorm().init(jax.random.key(0), (2, 6))
    with pytest.raises(ShapeError, match=r"LayerNorm: input trailing shape \(5,\) != normalized shape \(6,\) "
                                         r"\(input \(2, 5\)\)"):
        LayerNorm().apply(params, {}, jnp.ones((2, 5)))
    with pytest.raises(ShapeError, match=r"LayerNorm: input rank expected >= 3, got 2 \(input \(2, 6\)\)"):
        LayerNorm(ndims=2).init(jax.random.key(0), (2, 6))
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=rf"LayerNorm: ndims expected a positive int, got {bad}"):
            LayerNorm(ndims=bad)
    with pytest.raises(ConfigError, match=r"LayerNorm: epsilon expected > 0, got -1"):
        LayerNorm(epsilon=-1)
