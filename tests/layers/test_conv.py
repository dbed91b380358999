"""Conv: parity with torch Conv1d/Conv2d in both layouts, finite differences, torch grads, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.layers import Conv, Conv1D, Conv2D
from functorch_lite.layers.conv import normalize_padding, to_tuple

TOL = dict(atol=1e-5, rtol=1e-5)
# torch warns that it copies the input for 'same' with even kernels; irrelevant to the oracle
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# (cin, cout, kernel, stride, padding, dilation, groups); padding is passed to both libraries
# except asymmetric pairs, which torch gets through F.pad.
CONFIGS_2D = [
    (3, 4, 3, 1, "valid", 1, 1),
    (3, 4, 3, 1, "same", 1, 1),
    (3, 4, (2, 4), 1, "same", 1, 1),          # even kernels: torch puts the extra pad at the end
    (3, 4, 3, 1, "same", 2, 1),               # 'same' accounts for dilation
    (3, 5, 3, 2, 1, 1, 1),
    (2, 4, (3, 2), (2, 1), (1, 0), 1, 1),
    (4, 6, 3, 1, 2, 2, 2),
    (4, 8, (3, 3), 2, 1, (2, 1), 4),          # depthwise-style: groups == cin
    (6, 6, 1, 1, 0, 1, 3),
    (3, 4, 3, 2, ((1, 2), (0, 1)), 1, 1),     # asymmetric padding
    (4, 4, (2, 3), (1, 2), ((2, 0), (1, 1)), (1, 2), 2),
    # one input channel: channels_last runs layers/shifted_conv.py on CPU
    (1, 5, 3, 1, "same", 1, 1),
    (1, 3, (2, 3), (2, 1), ((1, 2), (0, 1)), (2, 1), 1),
]
CONFIGS_1D = [
    (3, 4, 4, 1, "same", 1, 1),
    (3, 4, 3, 1, "same", 3, 1),
    (4, 6, 5, 3, 2, 2, 2),
    (3, 2, 3, 2, ((2, 1),), 1, 1),
    (1, 4, 5, 1, "same", 2, 1),
]


def _torch_conv(torch, x, w, b, stride, padding, dilation, groups):
    """Reference: torch's functional conv on NC* tensors; asymmetric pairs through F.pad."""
    F = torch.nn.functional
    n = w.dim() - 2
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        flat = []
        for lo, hi in reversed(padding):   # F.pad wants the last axis first
            flat += [lo, hi]
        x = F.pad(x, flat)
        padding = 0
    conv = F.conv1d if n == 1 else F.conv2d
    return conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _case(rng, n, cin, cout, kernel, groups, spatial=(9, 8)):
    kernel = to_tuple(kernel, n, "kernel")
    x = rng.standard_normal((2, cin) + spatial[:n]).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return kernel, x, w, b


def _run_parity(torch, rng, n, cfg, layout):
    cin, cout, kernel, stride, padding, dilation, groups = cfg
    kernel, x, w, b = _case(rng, n, cin, cout, kernel, groups)
    expected = _torch_conv(torch, torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                           stride, padding, dilation, groups).numpy()
    layer = Conv(cout, kernel, strides=stride, padding=padding, dilation=dilation, groups=groups,
                 layout=layout)
    if layout == "channels_first":  # torch's layout: weights and inputs verbatim
        params, xin = {"weight": w, "bias": b}, x
    else:                           # NHWC inputs, HWIO kernels
        perm_x = (0,) + tuple(range(2, n + 2)) + (1,)
        perm_w = tuple(range(2, n + 2)) + (1, 0)
        params, xin = {"kernel": w.transpose(perm_w), "bias": b}, x.transpose(perm_x)
        expected = expected.transpose(perm_x)
    ref_params, _ = jax.eval_shape(lambda k: layer.init(k, xin.shape), jax.random.key(0))
    assert jax.tree_util.tree_map(jnp.shape, ref_params) == jax.tree_util.tree_map(np.shape, params)
    # jit: one compile rather than one per eager op
    y, state = jax.jit(layer.apply)(jax.tree_util.tree_map(jnp.asarray, params), {}, jnp.asarray(xin))
    assert state == {} and y.dtype == jnp.float32
    assert y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", CONFIGS_2D, ids=str)
def test_conv2d_matches_torch(torch, rng, cfg, layout):
    _run_parity(torch, rng, 2, cfg, layout)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("cfg", CONFIGS_1D, ids=str)
def test_conv1d_matches_torch(torch, rng, cfg, layout):
    _run_parity(torch, rng, 1, cfg, layout)


def test_torch_module_string_padding_and_no_bias(torch, rng):
    """nn.Conv2d(padding='same'/'valid', bias=False) loaded verbatim into channels_first."""
    for padding in ("same", "valid"):
        m = torch.nn.Conv2d(3, 5, (3, 4), padding=padding, dilation=(1, 2), bias=False)
        x = rng.standard_normal((2, 3, 10, 11)).astype(np.float32)
        layer = Conv(5, (3, 4), padding=padding.upper(), dilation=(1, 2), use_bias=False,
                     layout="channels_first")
        params = {"weight": jnp.asarray(m.weight.detach().numpy())}
        y, _ = layer.apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), m(torch.from_numpy(x)).detach().numpy(), **TOL)


def test_kernel_size_int_takes_rank_from_input_and_helpers(ones_init):
    p2, _ = ones_init(Conv(4, 3), (1, 8, 8, 2))
    p1, _ = ones_init(Conv(4, 3), (1, 8, 2))
    pf, _ = ones_init(Conv(4, 3, groups=2, layout="channels_first"), (1, 6, 8, 8))
    assert p2["kernel"].shape == (3, 3, 2, 4) and p1["kernel"].shape == (3, 2, 4)
    assert pf["weight"].shape == (4, 3, 3, 3) and pf["bias"].shape == (4,)
    assert Conv1D(4, 3) == Conv(4, (3,)) and Conv2D(4, 3) == Conv(4, (3, 3))
    assert Conv(4, [3, 3], strides=[1, 2]) == Conv(4, (3, 3), strides=(1, 2))
    # params do not depend on the batch size
    pa, _ = Conv(4, 3).init(jax.random.key(5), (1, 8, 8, 2))
    pb, _ = Conv(4, 3).init(jax.random.key(5), (32, 8, 8, 2))
    np.testing.assert_array_equal(pa["kernel"], pb["kernel"])


@pytest.mark.parametrize("layout,kw,order", [
    ("channels_last", dict(strides=2, padding="same"), 1),
    ("channels_first", dict(dilation=2, groups=2, padding=((1, 0), (2, 1))), 2),
], ids=str)
def test_gradients_match_finite_differences(x64, rng, layout, kw, order):
    layer = Conv(4, (3, 2), layout=layout, bias_init="normal", **kw)
    shape = (2, 7, 6, 4) if layout == "channels_last" else (2, 4, 7, 6)
    x = jnp.asarray(rng.standard_normal(shape))
    params, _ = layer.init(jax.random.key(1), jax.ShapeDtypeStruct(shape, jnp.float64))
    assert all(v.dtype == jnp.float64 for v in jax.tree_util.tree_leaves(params))

    def f(p, x):
        return jnp.tanh(layer.apply(p, {}, x)[0])
    check_grads(f, (params, x), order=order, modes=("fwd", "rev") if order == 1 else ("rev",),
                atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cin,groups", [(4, 2), (1, 1)])     # 1: shifted windows on CPU
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_parameter_gradients_match_torch_autograd(torch, rng, layout, cin, groups):
    cout, dilation, stride = 6, (2, 1), (1, 2)
    _, x, w, b = _case(rng, 2, cin, cout, 3, groups)
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=1, dilation=dilation,
                                    groups=groups)
    target = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yt * torch.from_numpy(target)).sin().sum().backward()

    layer = Conv(cout, 3, strides=stride, padding=1, dilation=dilation, groups=groups, layout=layout)
    if layout == "channels_first":
        params, xin, tgt = {"weight": w, "bias": b}, x, target
    else:
        params = {"kernel": w.transpose(2, 3, 1, 0), "bias": b}
        xin, tgt = x.transpose(0, 2, 3, 1), target.transpose(0, 2, 3, 1)

    def loss(p, x):
        return jnp.sum(jnp.sin(layer.apply(p, {}, x)[0] * tgt))
    g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(jax.tree_util.tree_map(jnp.asarray, params),
                                           jnp.asarray(xin))
    gw = g["weight"] if layout == "channels_first" else np.asarray(g["kernel"]).transpose(3, 2, 0, 1)
    gx = gx if layout == "channels_first" else np.asarray(gx).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(np.asarray(gw), wt.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g["bias"]), bt.grad.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), **TOL)


def test_wrong_rank_error_names_path_and_hints(ones_init):
    model = Sequential([Conv(4, 3)])
    params, state = ones_init(model, (1, 8, 8, 1))
    with pytest.raises(ShapeError, match=r"Conv '0_conv': input rank expected 4 \(batch, spatial\.\.\., "
                                         r"channels\) for a 2-d convolution, got 3 \(input \(1, 8, 8\)\)"
                                         r"\nHint: add a channel axis"):
        model.apply(params, state, jnp.ones((1, 8, 8)))
    with pytest.raises(ShapeError, match=r"Conv: input rank expected 4 \(batch, channels, spatial\.\.\.\)"
                                         r" for a 2-d convolution, got 5"):
        Conv(4, (3, 3), layout="channels_first").init(jax.random.key(0), (1, 1, 1, 8, 8))


def test_wrong_channels_error(ones_init):
    layer = Conv(4, 3)
    params, _ = ones_init(layer, (1, 8, 8, 3))
    with pytest.raises(ShapeError, match=r"Conv: input channels 8 != kernel in-channels 3 x groups 1 "
                                         r"\(input \(1, 3, 8, 8\), kernel \(3, 3, 3, 4\)\)\n"
                                         r"Hint: channels_last layers expect \(N, H, W, C\)"):
        layer.apply(params, {}, jnp.ones((1, 3, 8, 8)))   # NCHW fed to an NHWC layer
    with pytest.raises(ShapeError, match=r"Conv: input channels 3 not divisible by groups 2"):
        Conv(4, 3, groups=2).init(jax.random.key(0), (1, 8, 8, 3))


def test_bad_config_values(ones_init):
    with pytest.raises(ConfigError, match=r"Conv: filters expected a positive int, got -1"):
        Conv(-1, 3)
    with pytest.raises(ConfigError, match=r"Conv: layout expected one of \['channels_last', "
                                          r"'channels_first'\], got 'NHWC'"):
        Conv(4, 3, layout="NHWC")
    with pytest.raises(ConfigError, match=r"Conv: groups expected a positive int dividing filters=4, got 3"):
        Conv(4, 3, groups=3)
    # a bad padding string fails when the layer is built, not at the first apply
    with pytest.raises(ConfigError, match=r"Conv: padding expected 'valid', 'same', an int or pairs, "
                                          r"got 'full'"):
        Conv(4, 3, padding="full")
    with pytest.raises(ConfigError, match=r"Conv: kernel_size expected an int or 2 ints for a 2-d input"):
        Conv(4, "3").init(jax.random.key(0), (1, 8, 8, 1))
    with pytest.raises(ConfigError, match=r"Conv: strides expected an int or 2 ints for a 2-d input, "
                                          r"got \(1, 2, 3\)"):
        Conv(4, 3, strides=(1, 2, 3)).apply(*ones_init(Conv(4, 3), (1, 8, 8, 1)),
                                             jnp.ones((1, 8, 8, 1)))
    with pytest.raises(ConfigError, match=r"Conv: padding expected 'valid', 'same', an int, 2 ints or "
                                          r"2 pairs, got \(1, 2, 3\)"):
        normalize_padding((1, 2, 3), 2)
    conv4d = Conv(2, (1, 1, 1, 1))
    with pytest.raises(ConfigError, match=r"Conv: only 1-d, 2-d and 3-d convolutions are supported, got 4-d"):
        conv4d.apply({"kernel": jnp.ones((1, 1, 1, 1, 1, 2))}, {}, jnp.ones((1, 2, 2, 2, 2, 1)))


def test_normalize_padding_forms():
    assert normalize_padding("Same", 2) == "SAME"
    assert normalize_padding(1, 2) == ((1, 1), (1, 1))
    assert normalize_padding((1, 2), 2) == ((1, 1), (2, 2))
    assert normalize_padding([[1, 2], [3, 4]], 2) == ((1, 2), (3, 4))
