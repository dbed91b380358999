"""Pooling: parity with torch Max/AvgPool1d/2d, AdaptiveAvgPool2d and global means; errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.layers import (AdaptiveAvgPool, AvgPool, AvgPool1D, AvgPool2D, GlobalAvgPool,
                                   GlobalMaxPool, MaxPool, MaxPool1D, MaxPool2D, avg_pool, max_pool)

TOL = dict(atol=1e-5, rtol=1e-5)

# (window, stride or None, padding) -> torch kernel_size, stride, padding
CONFIGS_2D = [
    (2, None, 0),              # non-overlapping: the reshape fast path; 7x9 input -> floor
    (3, None, 0),              # 7 and 9 by 3: floor drops the last row
    (3, 2, 0),                 # overlapping windows
    (3, 1, 1),                 # overlapping + padding
    ((2, 3), (1, 2), (1, 1)),  # stride != window, per-axis
    ((3, 2), (2, 2), (1, 0)),
    (2, 2, 1),                 # window == stride but padded: not the fast path
]
CONFIGS_1D = [(2, None, 0), (3, 2, 0), (4, 3, 2), (3, 1, 1)]


def _to_last(a):  # NC* -> N*C
    return np.moveaxis(a, 1, -1)


def _pool_case(torch, rng, n, cfg, kind, layout, count_include_pad=True):
    window, stride, padding = cfg
    spatial = (7, 9)[:n]
    x = rng.standard_normal((2, 3) + spatial).astype(np.float32)
    if kind == "max":
        tmod = (torch.nn.MaxPool1d if n == 1 else torch.nn.MaxPool2d)(window, stride, padding)
        cls = MaxPool
    else:
        tmod = (torch.nn.AvgPool1d if n == 1 else torch.nn.AvgPool2d)(
            window, stride, padding, count_include_pad=count_include_pad)
        cls = AvgPool
    expected = tmod(torch.from_numpy(x)).numpy()
    win = (window,) * n if isinstance(window, int) else window
    layer = cls(win, strides=stride, padding=padding, layout=layout,
                count_include_pad=count_include_pad)
    xin = x if layout == "channels_first" else _to_last(x)
    y, state = jax.jit(layer.apply)({}, {}, jnp.asarray(xin))   # jit: one compile, not one per op
    if layout == "channels_last":
        expected = _to_last(expected)
    assert state == {} and y.shape == expected.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)
    return layer, xin


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", CONFIGS_2D, ids=str)
def test_maxpool2d_matches_torch(torch, rng, cfg, layout):
    _pool_case(torch, rng, 2, cfg, "max", layout)


# count_include_pad only matters for padded configs
AVG_CASES = [(cfg, cip) for cfg in CONFIGS_2D for cip in ((True, False) if cfg[2] != 0 else (True,))]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg,count_include_pad", AVG_CASES, ids=str)
def test_avgpool2d_matches_torch(torch, rng, cfg, layout, count_include_pad):
    _pool_case(torch, rng, 2, cfg, "avg", layout, count_include_pad)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("cfg", CONFIGS_1D, ids=str)
def test_pool1d_matches_torch(torch, rng, cfg, kind, layout):
    _pool_case(torch, rng, 1, cfg, kind, layout, count_include_pad=False)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_fast_path_gradients_match_torch(torch, rng, kind):
    """The reshape fast path (window == strides, unpadded) has torch's gradients too."""
    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    (pool(xt, 2) * torch.from_numpy(w)).sum().backward()
    layer = (MaxPool if kind == "max" else AvgPool)((2, 2), layout="channels_first")
    g = jax.jit(jax.grad(lambda x: jnp.sum(layer.apply({}, {}, x)[0] * w)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), **TOL)


def test_fast_max_pool_routes_ties_to_the_first_maximum_as_torch(torch):
    """Equal values in a window (constant image regions, zeros after relu): the whole gradient
    goes to the window's first maximum in row-major order, as torch's max_pool2d routes it."""
    x = np.zeros((1, 1, 6, 8), np.float32)
    x[0, 0, :2, :2] = 1.5                        # a 4-way tie
    x[0, 0, 2, 3] = x[0, 0, 3, 2] = 2.0          # a 2-way tie, second row first column later
    w = np.arange(1, 13, dtype=np.float32).reshape(1, 1, 3, 4)
    xt = torch.from_numpy(x).requires_grad_()
    (torch.nn.functional.max_pool2d(xt, 2) * torch.from_numpy(w)).sum().backward()
    layer = MaxPool((2, 2), layout="channels_first")
    g = jax.grad(lambda x: jnp.sum(layer.apply({}, {}, x)[0] * w))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g), xt.grad.numpy())


@pytest.mark.parametrize("shape, window", [((2, 9, 3), (2,)), ((2, 6, 7, 2), (2, 3)),
                                           ((1, 4, 4, 6, 2), (2, 2, 3))])
def test_fast_max_pool_derivatives_finite_differences(rng, shape, window):
    """Forward and reverse mode, to second order, against finite differences (1-d to 3-d)."""
    from jax.test_util import check_grads
    x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    check_grads(lambda x: MaxPool(window).apply({}, {}, x)[0], (x,), order=2,
                modes=("fwd", "rev"), atol=2e-2, rtol=2e-2)


def test_fast_max_pool_integer_input():
    x = jnp.arange(2 * 6 * 6, dtype=jnp.int32).reshape(1, 6, 6, 2) % 7 - 3
    y = max_pool(x, 2)
    assert y.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x).reshape(1, 3, 2, 3, 2, 2).max(axis=(2, 4)))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_fast_path_equals_reduce_window_path(rng, kind):
    """padding=0 forces lax.reduce_window; both paths agree in value and gradient."""
    x = jnp.asarray(rng.standard_normal((2, 11, 6, 3)).astype(np.float32))
    cls = MaxPool if kind == "max" else AvgPool
    fast, slow = cls((3, 2)), cls((3, 2), padding=0)

    def f(layer):
        return jax.jit(jax.value_and_grad(lambda x: jnp.sum(jnp.sin(layer.apply({}, {}, x)[0]))))(x)
    (vf, gf), (vs, gs) = f(fast), f(slow)
    np.testing.assert_allclose(vf, vs, **TOL)
    np.testing.assert_allclose(np.asarray(gf), np.asarray(gs), **TOL)


def test_functional_pools_and_constructors(rng):
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)).astype(np.float32))
    np.testing.assert_allclose(max_pool(x, 2), MaxPool((2, 2)).apply({}, {}, x)[0])
    np.testing.assert_allclose(avg_pool(x, 3, 1, padding=1, count_include_pad=False),
                               AvgPool((3, 3), strides=1, padding=1, count_include_pad=False)
                               .apply({}, {}, x)[0], **TOL)
    # 'same' pads so the output size is ceil(in / stride); padded cells never win a max and
    # (Keras semantics) are not counted in an average
    ym = max_pool(x, 3, 2, padding="same")
    assert ym.shape == (2, 3, 3, 3)
    ya = avg_pool(x, 2, 1, padding="same")
    np.testing.assert_allclose(np.asarray(ya)[:, -1, -1], np.asarray(x)[:, -1, -1], **TOL)
    assert MaxPool2D(3) == MaxPool((3, 3)) and AvgPool1D(2) == AvgPool((2,))
    assert MaxPool1D(2) == MaxPool((2,)) and AvgPool2D(2) == AvgPool((2, 2))
    assert MaxPool((2, 2)) != AvgPool((2, 2))
    assert MaxPool([2, 2]) == MaxPool((2, 2)) and hash(MaxPool([2, 2])) == hash(MaxPool((2, 2)))
    assert MaxPool().init(jax.random.key(0), (1, 4, 4, 1)) == ({}, {})
    # an int window takes its rank from the input
    assert MaxPool(2).apply({}, {}, jnp.ones((1, 8, 2)))[0].shape == (1, 4, 2)


def test_max_pool_integer_input():
    x = jnp.arange(2 * 5 * 5, dtype=jnp.int32).reshape(1, 5, 5, 2) - 20
    y = max_pool(x, 3, 1, padding=1)
    assert y.dtype == jnp.int32
    ref = np.asarray(max_pool(x.astype(jnp.float32), 3, 1, padding=1))
    np.testing.assert_array_equal(np.asarray(y), ref.astype(np.int32))


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("size,out", [((7, 7), 3), ((5, 5), 2), ((6, 7), 1), ((9, 5), (4, 3)),
                                      ((2, 3), (3, 4)), ((8, 8), (4, 4))], ids=str)
def test_adaptive_avg_pool_matches_torch(torch, rng, size, out, layout):
    x = rng.standard_normal((2, 3) + size).astype(np.float32)
    expected = torch.nn.AdaptiveAvgPool2d(out)(torch.from_numpy(x)).numpy()
    xin = x if layout == "channels_first" else _to_last(x)
    y, _ = AdaptiveAvgPool(out, layout=layout).apply({}, {}, jnp.asarray(xin))
    if layout == "channels_last":
        expected = _to_last(expected)
    assert y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


def test_adaptive_avg_pool_1d_matches_torch(torch, rng):
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    y, _ = AdaptiveAvgPool(4, layout="channels_first").apply({}, {}, jnp.asarray(x))
    expected = torch.nn.AdaptiveAvgPool1d(4)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools_match_torch(torch, rng, keepdims):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    xt = torch.from_numpy(x)
    exp_avg = torch.nn.AdaptiveAvgPool2d(1)(xt).numpy()
    exp_max = torch.amax(xt, dim=(2, 3), keepdim=True).numpy()
    if not keepdims:
        exp_avg, exp_max = exp_avg[:, :, 0, 0], exp_max[:, :, 0, 0]
    ya, _ = GlobalAvgPool(layout="channels_first", keepdims=keepdims).apply({}, {}, jnp.asarray(x))
    ym, _ = GlobalMaxPool(layout="channels_first", keepdims=keepdims).apply({}, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ya), exp_avg, **TOL)
    np.testing.assert_allclose(np.asarray(ym), exp_max, **TOL)
    yl, _ = GlobalAvgPool(keepdims=keepdims).apply({}, {}, jnp.asarray(_to_last(x)))
    np.testing.assert_allclose(np.asarray(yl), _to_last(exp_avg) if keepdims else exp_avg, **TOL)


def test_pool_too_small_input_names_path():
    model = Sequential([MaxPool((2, 2)), MaxPool((3, 3))])
    with pytest.raises(ShapeError, match=r"MaxPool '1_max_pool': spatial size 2 smaller than pool window 3 "
                                         r"\(input \(1, 2, 2, 1\)\)"):
        model.init(jax.random.key(0), (1, 5, 4, 1))
    with pytest.raises(ShapeError, match=r"^AvgPool: spatial size 1 smaller than pool window 2"):
        AvgPool((2,)).apply({}, {}, jnp.ones((1, 1, 4)))


def test_pool_wrong_rank():
    with pytest.raises(ShapeError, match=r"MaxPool: input rank expected 4 for a 2-d pool, got 3 "
                                         r"\(input \(1, 8, 8\)\)"):
        MaxPool((2, 2)).apply({}, {}, jnp.ones((1, 8, 8)))
    with pytest.raises(ShapeError, match=r"GlobalAvgPool: input rank expected >= 3 \(batch, spatial\.\.\., "
                                         r"channels\), got 2 \(input \(4, 3\)\)"):
        GlobalAvgPool().apply({}, {}, jnp.ones((4, 3)))
    with pytest.raises(ShapeError, match=r"AdaptiveAvgPool: input rank expected >= 3 \(batch, spatial\.\.\., "
                                         r"channels\), got 2 \(input \(4, 3\)\)"):
        AdaptiveAvgPool(1).apply({}, {}, jnp.ones((4, 3)))


def test_pool_bad_config():
    with pytest.raises(ConfigError, match=r"MaxPool: layout expected one of \['channels_last', "
                                          r"'channels_first'\], got 'NCHW'"):
        MaxPool(2, layout="NCHW")
    for cls in (GlobalAvgPool, GlobalMaxPool, AdaptiveAvgPool):
        with pytest.raises(ConfigError, match=rf"{cls.__name__}: layout expected one of \['channels_last', "
                                              r"'channels_first'\], got 'NHWC'"):
            cls(layout="NHWC")
    with pytest.raises(ConfigError, match=r"AvgPool: padding expected 'valid', 'same', an int or pairs, "
                                          r"got 'full'"):
        AvgPool(2, padding="full")
    with pytest.raises(ConfigError, match=r"MaxPool: strides expected an int or 2 ints for a 2-d input, "
                                          r"got \(1, 2, 3\)"):
        MaxPool((2, 2), strides=(1, 2, 3)).apply({}, {}, jnp.ones((1, 4, 4, 1)))
    with pytest.raises(ConfigError, match=r"AdaptiveAvgPool: output_size expected an int or 2 ints for a "
                                          r"2-d input, got \(1, 2, 3\)"):
        AdaptiveAvgPool((1, 2, 3)).apply({}, {}, jnp.ones((1, 4, 4, 1)))


def test_fast_max_pool_routes_nan_windows_as_torch(torch):
    """A window holding NaN pools to NaN and sends its gradient to its last NaN, as torch's
    max_pool2d (its index takes every NaN it meets); other windows are unaffected."""
    x = np.arange(32, dtype=np.float32).reshape(1, 1, 4, 8) % 5
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan        # two NaNs in the first window
    x[0, 0, 2, 7] = np.nan                         # one in the last window
    w = np.arange(1, 9, dtype=np.float32).reshape(1, 1, 2, 4)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, 2)
    (yt * torch.from_numpy(w)).sum().backward()
    layer = MaxPool((2, 2), layout="channels_first")
    y = layer.apply({}, {}, jnp.asarray(x))[0]
    g = jax.jit(jax.grad(lambda x: jnp.sum(layer.apply({}, {}, x)[0] * w)))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(y), yt.detach().numpy())    # NaN where NaN
    np.testing.assert_array_equal(np.asarray(g), xt.grad.numpy())
