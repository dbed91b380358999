"""ConvTranspose and Upsample: parity with torch ConvTranspose1d/2d/3d and nn.Upsample (weights
copied, both layouts), the adjoint of Conv, finite differences, torch autograd, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.core.module import output_spec
from functorch_lite.layers.conv import Conv
from functorch_lite.layers.upsample import ConvTranspose, ConvTranspose1D, ConvTranspose2D, Upsample

TOL = dict(atol=1e-5, rtol=1e-5)

# (cin, cout, kernel, stride, padding, output_padding, dilation, groups)
CT_2D = [
    (3, 4, 3, 1, 0, 0, 1, 1),
    (3, 4, 3, 2, 1, 1, 1, 1),                  # the usual x2 decoder block
    (4, 4, 4, 2, 1, 0, 1, 1),                  # DCGAN's k4 s2 p1
    (4, 6, (3, 2), (2, 3), (0, 2), (1, 0), (1, 2), 2),
    (2, 2, 3, 1, 3, 0, 1, 1),                  # padding larger than the kernel span
    (4, 8, 3, 3, (1, 0), (2, 1), 1, 4),
    (3, 2, (2, 3), 2, ((1, 0), (0, 2)), 1, 1, 1),   # explicit (low, high) crops
]
CT_1D = [
    (3, 5, 4, 2, 1, 0, 1, 1),
    (4, 2, 3, 3, 2, 2, 2, 2),
    (2, 3, 5, 1, ((0, 3),), 0, 2, 1),
]


def _torch_conv_transpose(torch, x, w, b, stride, padding, output_padding, dilation, groups):
    F = torch.nn.functional
    n = w.dim() - 2
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        # torch pads symmetrically only: run it uncropped, then crop each axis [low : size - high]
        y = fn(x, w, b, stride=stride, padding=0, output_padding=output_padding, dilation=dilation,
               groups=groups)
        idx = (slice(None), slice(None)) + tuple(slice(lo, y.shape[2 + i] - hi)
                                                 for i, (lo, hi) in enumerate(padding))
        return y[idx]
    return fn(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
              dilation=dilation, groups=groups)


def _to_tuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def _run_ct(torch, rng, n, cfg, layout, spatial=(5, 6, 4)):
    cin, cout, kernel, stride, padding, op, dilation, groups = cfg
    kernel = _to_tuple(kernel, n)
    x = rng.standard_normal((2, cin) + spatial[:n]).astype(np.float32)
    w = rng.standard_normal((cin, cout // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    expected = _torch_conv_transpose(torch, torch.tensor(x), torch.tensor(w), torch.tensor(b), stride,
                                     padding, op, dilation, groups).numpy()
    layer = ConvTranspose(cout, kernel, strides=stride, padding=padding, output_padding=op,
                          dilation=dilation, groups=groups, layout=layout)
    if layout == "channels_first":
        params, xin = {"weight": w, "bias": b}, x
    else:   # NHWC input, Keras kernel (*window, out/groups, in)
        perm_x = (0,) + tuple(range(2, n + 2)) + (1,)
        params = {"kernel": w.transpose(tuple(range(2, n + 2)) + (1, 0)), "bias": b}
        xin, expected = x.transpose(perm_x), expected.transpose(perm_x)
    ref, _ = jax.eval_shape(lambda k: layer.init(k, xin.shape), jax.random.key(0))
    assert jax.tree_util.tree_map(jnp.shape, ref) == jax.tree_util.tree_map(np.shape, params)
    y, state = jax.jit(layer.apply)(jax.tree_util.tree_map(jnp.asarray, params), {}, jnp.asarray(xin))
    assert state == {} and y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", CT_2D, ids=str)
def test_conv_transpose2d_matches_torch(torch, rng, cfg, layout):
    _run_ct(torch, rng, 2, cfg, layout)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", CT_1D, ids=str)
def test_conv_transpose1d_matches_torch(torch, rng, cfg, layout):
    _run_ct(torch, rng, 1, cfg, layout)


def test_conv_transpose3d_and_torch_modules(torch, rng):
    _run_ct(torch, rng, 3, (2, 4, (2, 3, 2), (2, 1, 2), (1, 0, 0), (1, 0, 0), 1, 2), "channels_last")
    torch.manual_seed(0)
    for bias in (True, False):   # nn.ConvTranspose2d loaded verbatim
        m = torch.nn.ConvTranspose2d(3, 5, (3, 4), stride=2, padding=1, output_padding=1, bias=bias)
        x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
        layer = ConvTranspose2D(5, (3, 4), strides=2, padding=1, output_padding=1, use_bias=bias,
                                layout="channels_first")
        params = {n: jnp.asarray(p.detach().numpy()) for n, p in m.named_parameters()}
        y, _ = layer.apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), m(torch.tensor(x)).detach().numpy(), **TOL)
    m = torch.nn.ConvTranspose1d(2, 4, 3, stride=2)
    x = rng.standard_normal((3, 2, 7)).astype(np.float32)
    params = {n: jnp.asarray(p.detach().numpy()) for n, p in m.named_parameters()}
    y, _ = ConvTranspose1D(4, 3, strides=2, layout="channels_first").apply(params, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), m(torch.tensor(x)).detach().numpy(), **TOL)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_conv_transpose_is_the_adjoint_of_conv(rng, layout):
    """<Conv(x), y> == <x, ConvTranspose(y)> with the same weight: an oracle independent of torch."""
    C, F, stride, pad, dil, groups = 4, 6, (2, 3), 1, (1, 2), 2
    conv = Conv(F, (3, 3), strides=stride, padding=pad, dilation=dil, groups=groups, use_bias=False,
                layout=layout)
    shape = (2, C, 9, 11) if layout == "channels_first" else (2, 9, 11, C)
    cparams, _ = conv.init(jax.random.key(0), shape)
    x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    y, vjp = jax.vjp(lambda x: conv.apply(cparams, {}, x)[0], x)
    ct = jnp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    (expected,) = vjp(ct)
    # the Conv kernel is (F, C/g, kh, kw) / (kh, kw, C/g, F): exactly the ConvTranspose(F -> C) kernel
    # (in=F, out/g=C/g, ...) / (kh, kw, out/g=C/g, in=F)
    # output_padding recovers the rows the strided conv skipped: in - ((out-1)*s - 2p + d*(k-1) + 1)
    sp = slice(2, 4) if layout == "channels_first" else slice(1, 3)
    op = tuple(i - ((o - 1) * s - 2 * pad + d * 2 + 1)
               for i, o, s, d in zip(shape[sp], y.shape[sp], stride, dil))
    assert any(op)
    tconv = ConvTranspose(C, (3, 3), strides=stride, padding=pad, output_padding=op, dilation=dil,
                          groups=groups, use_bias=False, layout=layout)
    name = "weight" if layout == "channels_first" else "kernel"
    got, _ = tconv.apply({name: cparams[name]}, {}, ct)
    assert got.shape == x.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-4, rtol=1e-5)


def test_conv_transpose_init_like_torch():
    layer = ConvTranspose(8, (3, 3), groups=2, layout="channels_first")
    params, state = layer.init(jax.random.key(0), (1, 6, 5, 5))
    assert state == {} and params["weight"].shape == (6, 4, 3, 3) and params["bias"].shape == (8,)
    bound = 1 / np.sqrt(4 * 9)    # torch's fan-in of a transposed weight is out/groups * window
    for v in (params["weight"], params["bias"]):
        v = np.abs(np.asarray(v))
        assert v.max() <= bound + 1e-7
    assert np.abs(np.asarray(params["weight"])).max() > 0.9 * bound
    pl, _ = ConvTranspose(8, 3).init(jax.random.key(0), (1, 5, 5, 6))
    assert pl["kernel"].shape == (3, 3, 8, 6)
    assert np.abs(np.asarray(pl["kernel"])).max() <= 1 / np.sqrt(8 * 9) + 1e-7
    pg, _ = ConvTranspose(2, 3, kernel_init="glorot_uniform", bias_init="zeros").init(jax.random.key(0), (1, 4, 3))
    assert pg["kernel"].shape == (3, 2, 3) and np.all(np.asarray(pg["bias"]) == 0)
    a, _ = ConvTranspose(2, 3).init(jax.random.key(5), (1, 4, 4, 3))
    b, _ = ConvTranspose(2, 3).init(jax.random.key(5), (16, 9, 9, 3))
    np.testing.assert_array_equal(a["kernel"], b["kernel"])


@pytest.mark.parametrize("layout,kw", [
    ("channels_last", dict(strides=2, padding=1, output_padding=1)),
    ("channels_first", dict(strides=(1, 2), padding=((0, 1), (2, 0)), dilation=2, groups=2)),
], ids=str)
def test_conv_transpose_gradients_match_finite_differences(x64, rng, layout, kw):
    layer = ConvTranspose(4, (3, 2), layout=layout, **kw)
    shape = (2, 4, 5, 4) if layout == "channels_last" else (2, 4, 4, 5)
    params, _ = layer.init(jax.random.key(1), jax.ShapeDtypeStruct(shape, jnp.float64))
    assert all(v.dtype == jnp.float64 for v in jax.tree_util.tree_leaves(params))
    x = jnp.asarray(rng.standard_normal(shape))
    f = jax.jit(lambda p, x: jnp.tanh(layer.apply(p, {}, x)[0]))
    check_grads(f, (params, x), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_conv_transpose_gradients_match_torch_autograd(torch, rng):
    cin, cout, groups = 4, 6, 2
    x = rng.standard_normal((2, cin, 4, 5)).astype(np.float32)
    w = rng.standard_normal((cin, cout // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=2, padding=1, output_padding=1,
                                              groups=groups, dilation=(1, 2))
    target = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yt * torch.tensor(target)).sin().sum().backward()
    layer = ConvTranspose(cout, 3, strides=2, padding=1, output_padding=1, groups=groups,
                          dilation=(1, 2), layout="channels_first")

    def loss(p, x):
        return jnp.sum(jnp.sin(layer.apply(p, {}, x)[0] * target))
    g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))({"weight": jnp.asarray(w), "bias": jnp.asarray(b)},
                                                     jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g["weight"]), wt.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g["bias"]), bt.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), atol=1e-4, rtol=1e-5)


# (mode, align_corners, input spatial shape, scale_factor)
UPSAMPLE = [
    ("nearest", False, (5, 7), 2),
    ("nearest", False, (5, 7), 3),
    ("nearest", False, (5, 7), 1.5),
    ("nearest", False, (5, 7), (2, 0.5)),
    ("nearest", False, (6,), 2.5),
    ("nearest", False, (3, 4, 5), (2, 1, 1.5)),
    ("bilinear", False, (5, 7), 2),
    ("bilinear", False, (5, 7), 3),
    ("bilinear", False, (5, 7), (1.7, 2.3)),
    ("bilinear", False, (8, 9), 0.5),
    ("bilinear", True, (5, 7), 2),
    ("bilinear", True, (5, 7), (1.5, 3)),
    ("linear", False, (6,), 2),
    ("linear", True, (6,), 1.5),
    ("trilinear", False, (3, 4, 5), 2),
    ("trilinear", True, (3, 4, 5), (2, 1.5, 1)),
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", UPSAMPLE, ids=str)
def test_upsample_matches_torch(torch, rng, cfg, layout):
    mode, ac, spatial, sf = cfg
    x = rng.standard_normal((2, 3) + spatial).astype(np.float32)
    kw = {} if mode == "nearest" else dict(align_corners=ac)
    expected = torch.nn.Upsample(scale_factor=sf, mode=mode, **kw)(torch.tensor(x)).numpy()
    layer = Upsample(sf, mode, layout=layout, **kw)
    xin = x
    if layout == "channels_last":
        perm = (0,) + tuple(range(2, x.ndim)) + (1,)
        xin, expected = x.transpose(perm), expected.transpose(perm)
    assert layer.init(jax.random.key(0), xin.shape) == ({}, {})
    y, state = layer.apply({}, {}, jnp.asarray(xin))
    assert state == {} and y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


def test_upsample_gradients(x64, torch, rng):
    layer = Upsample((1.5, 2), "bilinear")
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 3)))
    check_grads(jax.jit(lambda x: layer.apply({}, {}, x)[0]), (x,), order=1, modes=("fwd", "rev"))
    # against torch autograd (float32, channels_first)
    xf = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    target = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    xt = torch.tensor(xf, requires_grad=True)
    (torch.nn.Upsample(scale_factor=(2, 1.5), mode="bilinear")(xt) * torch.tensor(target)).sum().backward()
    up = Upsample((2, 1.5), "bilinear", layout="channels_first")
    g = jax.grad(lambda x: jnp.sum(up.apply({}, {}, x)[0] * target))(jnp.asarray(xf))
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), **TOL)


def test_decoder_in_sequential_and_output_spec():
    model = Sequential([ConvTranspose(8, 3, strides=2, padding=1, output_padding=1), Upsample(2),
                        Conv(1, 3, padding="same")])
    params, state = model.init(jax.random.key(0), (1, 7, 7, 4))
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((3, 7, 7, 4)))
    assert y.shape == (3, 28, 28, 1)
    assert output_spec(Upsample(2.5, layout="channels_first"), (2, 3, 4, 6)).shape == (2, 3, 10, 15)
    assert ConvTranspose2D(4, 3) == ConvTranspose(4, (3, 3)) and ConvTranspose1D(4, 3) == ConvTranspose(4, (3,))
    assert ConvTranspose(4, [3, 3], strides=[2, 2]) == ConvTranspose(4, (3, 3), strides=(2, 2))
    assert repr(ConvTranspose(4, 3, strides=2)) == "ConvTranspose(filters=4, kernel_size=3, strides=2)"
    assert repr(Upsample(2, "bilinear")) == "Upsample(mode='bilinear')"
    assert Upsample([2, 3]) == Upsample((2, 3))


def test_conv_transpose_errors():
    model = Sequential([ConvTranspose(4, 3)])
    params, state = model.init(jax.random.key(0), (1, 8, 8, 3))
    with pytest.raises(ShapeError, match=r"ConvTranspose '0_conv_transpose': input rank expected 4 "
                                         r"\(batch, spatial\.\.\., channels\) for a 2-d transposed "
                                         r"convolution, got 3 \(input \(1, 8, 8\)\)\nHint: add a channel axis"):
        model.apply(params, state, jnp.ones((1, 8, 8)))
    with pytest.raises(ShapeError, match=r"ConvTranspose '0_conv_transpose': input channels 8 != kernel "
                                         r"in-channels 3 \(input \(1, 3, 8, 8\), kernel \(3, 3, 4, 3\)\)\n"
                                         r"Hint: channels_last layers expect"):
        model.apply(params, state, jnp.ones((1, 3, 8, 8)))
    with pytest.raises(ShapeError, match=r"ConvTranspose: input channels 3 not divisible by groups 2"):
        ConvTranspose(4, 3, groups=2).init(jax.random.key(0), (1, 8, 8, 3))
    with pytest.raises(ShapeError, match=r"ConvTranspose: output would be empty: spatial size \(-2,\) for "
                                         r"input \(1, 1, 3\) \(padding \(\(2, 2\),\) crops more"):
        layer = ConvTranspose(1, (2,), padding=2)
        layer.apply(layer.init(jax.random.key(0), (1, 1, 3))[0], {}, jnp.ones((1, 1, 3)))
    with pytest.raises(ConfigError, match=r"ConvTranspose: filters expected a positive int, got 0"):
        ConvTranspose(0, 3)
    with pytest.raises(ConfigError, match=r"ConvTranspose: layout expected one of \['channels_last', "
                                          r"'channels_first'\], got 'NCHW'"):
        ConvTranspose(4, 3, layout="NCHW")
    with pytest.raises(ConfigError, match=r"ConvTranspose: groups expected a positive int dividing "
                                          r"filters=4, got 3"):
        ConvTranspose(4, 3, groups=3)
    spec = (1, 5, 5, 2)
    with pytest.raises(ConfigError, match=r"ConvTranspose: output_padding \(2, 2\) must be non-negative and "
                                          r"smaller than either strides \(2, 2\) or dilation \(1, 1\)"):
        ConvTranspose(4, 3, strides=2, output_padding=2).init(jax.random.key(0), spec)
    with pytest.raises(ConfigError, match=r"ConvTranspose: strides and dilation expected positive ints, "
                                          r"got strides=\(0, 1\)"):
        ConvTranspose(4, 3, strides=(0, 1)).init(jax.random.key(0), spec)
    with pytest.raises(ConfigError, match=r"ConvTranspose: padding expected an int, ints or \(low, high\) "
                                          r"pairs \(torch's transposed convolutions have no 'same'/'valid'\), "
                                          r"got 'same'"):
        ConvTranspose(4, 3, padding="same")   # fails at construction
    with pytest.raises(ConfigError, match=r"ConvTranspose: padding expected an int, 2 ints or 2 \(low, high\) "
                                          r"pairs, got \(1, 2, 3\)"):
        ConvTranspose(4, 3, padding=(1, 2, 3)).init(jax.random.key(0), spec)
    with pytest.raises(ConfigError, match=r"ConvTranspose: padding expected non-negative values, got "
                                          r"\(\(-1, -1\), \(-1, -1\)\)"):
        ConvTranspose(4, 3, padding=-1).init(jax.random.key(0), spec)
    with pytest.raises(ConfigError, match=r"ConvTranspose: kernel_size expected an int or 2 ints for a 2-d "
                                          r"input, got \(3, 3, 3\)"):
        ConvTranspose2D(4, (3, 3, 3))
    with pytest.raises(ConfigError, match=r"ConvTranspose: only 1-d, 2-d and 3-d transposed convolutions "
                                          r"are supported, got 4-d"):
        ConvTranspose(2, (1, 1, 1, 1)).init(jax.random.key(0), (1, 2, 2, 2, 2, 1))


def test_upsample_errors():
    with pytest.raises(ConfigError, match=r"Upsample: mode: unknown value 'bicubic'; expected one of "
                                          r"\['bilinear', 'linear', 'nearest', 'trilinear'\]"):
        Upsample(2, "bicubic")
    with pytest.raises(ConfigError, match=r"Upsample: layout expected one of \['channels_last', "
                                          r"'channels_first'\], got 'NHWC'"):
        Upsample(layout="NHWC")
    with pytest.raises(ConfigError, match=r"Upsample: scale_factor expected a positive number or one per "
                                          r"spatial axis, got -2"):
        Upsample(-2)
    with pytest.raises(ConfigError, match=r"Upsample: scale_factor expected .*got \(2, '2'\)"):
        Upsample((2, "2"))
    with pytest.raises(ConfigError, match=r"Upsample: align_corners=True only applies to the linear modes, "
                                          r"got mode='nearest'"):
        Upsample(2, align_corners=True)
    model = Sequential([Upsample(2, "bilinear")])
    with pytest.raises(ShapeError, match=r"Upsample '0_upsample': input rank expected 4 \(batch, "
                                         r"spatial\.\.\., channels\) for mode='bilinear', got 3 "
                                         r"\(input \(1, 8, 3\)\)"):
        model.init(jax.random.key(0), (1, 8, 3))
    with pytest.raises(ShapeError, match=r"Upsample: input rank expected at least 3 \(batch, channels, "
                                         r"spatial\.\.\.\) for mode='nearest', got 2"):
        Upsample(layout="channels_first").apply({}, {}, jnp.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"Upsample: scale_factor has 2 entries for 1 spatial axes "
                                         r"\(input \(1, 4, 2\)\)"):
        Upsample((2, 2)).apply({}, {}, jnp.ones((1, 4, 2)))
    with pytest.raises(ShapeError, match=r"Upsample: output size along axis 1 would be 0 \(size 3, scale "
                                         r"0.25; input \(1, 3, 2\)\)"):
        Upsample(0.25).apply({}, {}, jnp.ones((1, 3, 2)))
