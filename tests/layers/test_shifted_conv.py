"""layers/shifted_conv.py: the CPU lowering of few-channel convolutions as shifted windows.

Checked against lax.conv_general_dilated (XLA's own convolution) on values, reverse- and
forward-mode derivatives, second order and vmap, against finite differences, and for where it
applies; torch parity of the Conv layer with one input channel is in test_conv.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from functorch_lite.layers import Conv, shifted_conv

TOL = dict(atol=1e-5, rtol=1e-5)

# (spatial, window, strides, pads, dilation, channels)
CASES = [
    ((9, 8), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((9, 8), (2, 3), (2, 1), ((0, 2), (1, 0)), (1, 2), 1),
    ((11,), (4,), (3,), ((2, 1),), (2,), 1),
    ((5, 6, 4), (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 0)), (1, 1, 2), 1),
    ((7, 7), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 3),   # more channels: same values
]


def _case(rng, spatial, window, channels, dtype=np.float32, batch=3, filters=4):
    x = rng.standard_normal((batch,) + spatial + (channels,)).astype(dtype)
    w = rng.standard_normal(window + (channels, filters)).astype(dtype)
    return jnp.asarray(x), jnp.asarray(w)


def _cfg(strides, pads, dilation):
    n = len(strides)
    dn = lax.conv_dimension_numbers((1,) * (n + 2), (1,) * (n + 2),
                                    ("N" + "HWD"[:n] + "C", "HWD"[:n] + "IO", "N" + "HWD"[:n] + "C"))
    return (strides, pads, dilation, dn)


def _reference(cfg):
    strides, pads, dilation, dn = cfg
    return lambda x, w: lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation,
                                                 dimension_numbers=dn)


@pytest.mark.parametrize("spatial,window,strides,pads,dilation,c", CASES, ids=str)
def test_values_and_both_gradients_match_lax_conv(rng, spatial, window, strides, pads, dilation, c):
    x, w = _case(rng, spatial, window, c)
    cfg = _cfg(strides, pads, dilation)
    ours = jax.jit(lambda x, w: shifted_conv.conv(x, w, cfg))
    ref = _reference(cfg)
    y = ours(x, w)
    assert y.shape == ref(x, w).shape and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), np.asarray(ref(x, w)), **TOL)
    target = jnp.asarray(rng.standard_normal(y.shape).astype(np.float32))

    def loss(f):
        return lambda x, w: jnp.sum(jnp.sin(f(x, w) * target))
    for a, b in zip(jax.jit(jax.grad(loss(ours), (0, 1)))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-5)
    # forward mode: the custom JVP against JAX's rule for lax.conv
    dx, dw = _case(np.random.default_rng(1), spatial, window, c)
    _, t = jax.jvp(ours, (x, w), (dx, dw))
    _, t_ref = jax.jvp(ref, (x, w), (dx, dw))
    np.testing.assert_allclose(np.asarray(t), np.asarray(t_ref), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("spatial,window,strides,pads,dilation,c", CASES[:2] + CASES[3:4], ids=str)
def test_derivatives_match_finite_differences_to_second_order(x64, rng, spatial, window, strides,
                                                              pads, dilation, c):
    x, w = _case(rng, spatial, window, c, np.float64, batch=2, filters=2)
    cfg = _cfg(strides, pads, dilation)
    f = lambda x, w: jnp.tanh(shifted_conv.conv(x, w, cfg))
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_only_the_kernel_derivative_is_computed_for_data_inputs(rng):
    x, w = _case(rng, (8, 8), (3, 3), 1)
    cfg = _cfg((1, 1), ((1, 1), (1, 1)), (1, 1))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(shifted_conv.conv(x, w, cfg) ** 2)))(w))
    assert "conv_general_dilated" not in jaxpr      # no input gradient: x is data
    assert "dot_general" in jaxpr                   # the kernel gradient: one patches^T @ g dot
    gx_jaxpr = str(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(shifted_conv.conv(x, w, cfg) ** 2)))(x))
    assert "conv_general_dilated" in gx_jaxpr       # the input gradient: lax.conv's transpose


def test_vmap_over_kernels_and_examples(rng):
    x, _ = _case(rng, (6, 6), (3, 3), 1)
    ws = jnp.asarray(rng.standard_normal((5, 3, 3, 1, 4)).astype(np.float32))
    cfg = _cfg((1, 1), ((1, 1), (1, 1)), (1, 1))
    ours = jax.vmap(lambda w: shifted_conv.conv(x, w, cfg))(ws)
    ref = jax.vmap(lambda w: _reference(cfg)(x, w))(ws)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), **TOL)
    per_ex = jax.vmap(jax.grad(lambda w, xi: jnp.sum(shifted_conv.conv(xi[None], w, cfg) ** 2)),
                      (None, 0))(ws[0], x)
    loop = [jax.grad(lambda w: jnp.sum(_reference(cfg)(x[i:i + 1], w) ** 2))(ws[0]) for i in range(3)]
    np.testing.assert_allclose(np.asarray(per_ex), np.stack(loop), atol=1e-4, rtol=1e-5)


def test_where_it_applies(monkeypatch):
    x1, w1 = jnp.zeros((2, 8, 8, 1)), jnp.zeros((3, 3, 1, 4))
    pads = ((1, 1), (1, 1))
    kw = dict(groups=1, pads=pads, channels_last=True)
    assert shifted_conv.applies(x1, w1, **kw) == (jax.default_backend() == "cpu")
    assert not shifted_conv.applies(jnp.zeros((2, 8, 8, 2)), jnp.zeros((3, 3, 2, 4)), **kw)
    assert not shifted_conv.applies(x1, w1, **{**kw, "channels_last": False})
    assert not shifted_conv.applies(x1, w1, **{**kw, "pads": ((-1, 1), (1, 1))})
    assert not shifted_conv.applies(x1.astype(jnp.int32), w1.astype(jnp.int32), **kw)
    assert not shifted_conv.applies(x1.astype(jnp.bfloat16), w1.astype(jnp.bfloat16), **kw)
    with shifted_conv.disabled():                  # the torch adapter's training graphs
        assert not shifted_conv.applies(x1, w1, **kw)
    assert shifted_conv.applies(x1, w1, **kw) == (jax.default_backend() == "cpu")
    monkeypatch.setenv("FUNCTORCH_LITE_CONV_LOWERING", "lax")
    assert not shifted_conv.applies(x1, w1, **kw)


def test_conv_layer_trains_the_same_with_either_lowering(rng, monkeypatch):
    layer = Conv(6, (3, 3), padding="same")
    x = jnp.asarray(rng.standard_normal((4, 10, 10, 1)).astype(np.float32))
    params, _ = layer.init(jax.random.key(0), x.shape)

    def loss(p):
        return jnp.mean(jnp.maximum(layer.apply(p, {}, x)[0], 0) ** 2)
    results = {}
    for lowering in ("lax", "auto"):
        monkeypatch.setenv("FUNCTORCH_LITE_CONV_LOWERING", lowering)   # read at trace time
        results[lowering] = jax.jit(jax.value_and_grad(loss))(params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5),
                           results["lax"], results["auto"])
