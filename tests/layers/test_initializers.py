"""Initializers: closed-form bounds and variances checked on large tensors, torch's default init,
fan computation for Dense/Conv (incl. groups), name resolution and errors.

Tolerances: the tensors have >= 60k entries, so the sample variance is within ~1.5% of the
truth with overwhelming probability; 5% still catches any wrong fan or scale (>= 15% off).
"""
import math

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.errors import ConfigError
from functorch_lite.layers import Conv, Dense
from functorch_lite.layers import initializers as I

KEY = jax.random.key(42)


def _check_uniform(w, bound):
    w = np.asarray(w, np.float64)
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * bound       # the bound is reached, not a smaller one
    assert abs(w.mean()) < 0.02 * bound
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.05


def _check_normal(w, var, truncated=True):
    w = np.asarray(w, np.float64)
    assert abs(w.mean()) < 0.02 * math.sqrt(var)
    assert abs(w.var() / var - 1) < 0.05
    if truncated:  # jax/Keras *_normal are truncated at 2 (pre-correction) standard deviations
        assert np.abs(w).max() <= 2 * math.sqrt(var) / 0.87962566103423978 * (1 + 1e-6)


def test_torch_kaiming_uniform_dense_both_layouts_and_vs_torch(torch):
    fin, fout = 300, 256
    p_oi, _ = Dense(fout, kernel_init="torch", bias_init="torch_bias", kernel_layout="oi").init(KEY, (1, fin))
    p_io, _ = Dense(fout, kernel_init="torch_kaiming_uniform", bias_init="torch_bias").init(KEY, (1, fin))
    bound = 1 / math.sqrt(fin)
    _check_uniform(p_oi["weight"], bound)
    _check_uniform(p_io["kernel"], bound)
    b = np.asarray(p_oi["bias"])
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    # torch's own default draws from the same distribution
    ref = torch.nn.Linear(fin, fout).weight.detach().numpy()
    assert abs(np.abs(ref).max() - np.abs(np.asarray(p_oi["weight"])).max()) < 0.01 * bound
    assert abs(ref.var() / np.asarray(p_oi["weight"]).var() - 1) < 0.05


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_torch_kaiming_uniform_conv_fan_in_uses_groups(torch, layout):
    cin, cout, k, groups = 32, 64, (3, 5), 4
    spec = (1, cin, 9, 9) if layout == "channels_first" else (1, 9, 9, cin)
    layer = Conv(cout, k, groups=groups, layout=layout, kernel_init="torch", bias_init="torch_bias")
    params, _ = layer.init(KEY, spec)
    w = params["weight" if layout == "channels_first" else "kernel"]
    fan_in = cin // groups * k[0] * k[1]   # 120, not 32*15
    _check_uniform(w, 1 / math.sqrt(fan_in))
    assert np.abs(np.asarray(params["bias"])).max() <= 1 / math.sqrt(fan_in)
    ref = torch.nn.Conv2d(cin, cout, k, groups=groups).weight.detach().numpy()
    assert abs(np.abs(ref).max() * math.sqrt(fan_in) - 1) < 0.01


@pytest.mark.parametrize("name,kind,scale,mode,layout", [   # aliases take the other layout
    ("glorot_uniform", "uniform", 1.0, "avg", "io"), ("xavier_uniform", "uniform", 1.0, "avg", "oi"),
    ("glorot_normal", "normal", 1.0, "avg", "io"), ("xavier_normal", "normal", 1.0, "avg", "oi"),
    ("he_uniform", "uniform", 2.0, "in", "io"), ("kaiming_uniform", "uniform", 2.0, "in", "oi"),
    ("he_normal", "normal", 2.0, "in", "oi"), ("kaiming_normal", "normal", 2.0, "in", "io"),
    ("lecun_uniform", "uniform", 1.0, "in", "oi"), ("lecun_normal", "normal", 1.0, "in", "io"),
])
def test_variance_scaling_family_on_dense(name, kind, scale, mode, layout):
    fin, fout = 400, 150
    params, _ = Dense(fout, kernel_init=name, kernel_layout=layout).init(KEY, (2, fin))
    w = params["kernel" if layout == "io" else "weight"]
    assert w.shape == ((fin, fout) if layout == "io" else (fout, fin))
    fan = fin if mode == "in" else (fin + fout) / 2
    var = scale / fan
    if kind == "uniform":
        _check_uniform(w, math.sqrt(3 * var))
    else:
        _check_normal(w, var)


def test_glorot_on_conv_counts_receptive_field():
    params, _ = Conv(64, (3, 3), kernel_init="glorot_uniform").init(KEY, (1, 8, 8, 48))
    fan_in, fan_out = 48 * 9, 64 * 9
    _check_uniform(params["kernel"], math.sqrt(6 / (fan_in + fan_out)))


def test_plain_initializers():
    shape = (300, 300)
    _check_normal(I.get("normal")(KEY, shape), 0.05 ** 2, truncated=False)
    _check_normal(I.get("standard_normal")(KEY, shape), 1.0, truncated=False)
    _check_uniform(I.get("uniform")(KEY, shape), 0.05)
    _check_uniform(I.uniform(-0.3, 0.3)(KEY, shape), 0.3)
    np.testing.assert_array_equal(I.get("zeros")(KEY, (3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(I.get("ones")(KEY, (3, 2)), np.ones((3, 2)))
    np.testing.assert_array_equal(I.constant(0.5)(KEY, (2,)), [0.5, 0.5])
    assert I.get("zeros")(KEY, (2,), jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize("layout", ["io", "oi"])
def test_orthogonal(layout):
    params, _ = Dense(32, kernel_init="orthogonal", kernel_layout=layout).init(KEY, (1, 64))
    w = np.asarray(params["kernel" if layout == "io" else "weight"], np.float64)
    w = w if layout == "io" else w.T           # (in=64, out=32): orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-5)


def test_get_callables_case_and_errors():
    fn = lambda key, shape, dtype=jnp.float32: jnp.full(shape, 3.0, dtype)  # noqa: E731
    assert I.get(fn) is fn
    params, _ = Dense(2, kernel_init=fn, bias_init=fn).init(KEY, (1, 3))
    np.testing.assert_array_equal(params["kernel"], np.full((3, 2), 3.0))
    _check_uniform(I.get("He_Uniform")(KEY, (500, 200)), math.sqrt(6 / 500))
    with pytest.raises(ConfigError, match=r"initializer: unknown value 'glorot'; expected one of \[.*"
                                          r"'glorot_uniform'.*'he_normal'.*'torch_bias'.*\]"):
        I.get("glorot")
    with pytest.raises(ConfigError, match=r"initializer: unknown value 7; expected one of"):
        I.get(7)
    with pytest.raises(ConfigError, match=r"initializer: unknown value 'xavier'"):
        Dense(3, kernel_init="xavier").init(KEY, (1, 3))
    with pytest.raises(ValueError, match=r"initializer 'torch_bias' needs the layer's fan_in"):
        I.get("torch_bias")
    np.testing.assert_array_equal(I.torch_bias_uniform(0)(KEY, (3,)), np.zeros(3))
