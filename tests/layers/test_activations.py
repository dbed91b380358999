"""Activations: values and derivatives vs torch.nn.functional, name resolution, Activation module."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError
from functorch_lite.layers import Activation, Dense
from functorch_lite.layers import activations as A

TOL = dict(atol=1e-5, rtol=1e-5)

# (our function, torch reference F -> callable); values span the regions where the formulas change
CASES = {
    "relu": (A.relu, lambda F: F.relu),
    "relu6": (A.relu6, lambda F: F.relu6),
    "gelu_exact": (A.gelu, lambda F: F.gelu),
    "gelu_tanh": (lambda x: A.gelu(x, approximate=True), lambda F: lambda x: F.gelu(x, approximate="tanh")),
    "tanh": (A.tanh, lambda F: F.tanh),
    "sigmoid": (A.sigmoid, lambda F: F.sigmoid),
    "leaky_relu": (A.leaky_relu, lambda F: F.leaky_relu),
    "leaky_relu_0.2": (lambda x: A.leaky_relu(x, 0.2), lambda F: lambda x: F.leaky_relu(x, 0.2)),
    "elu": (A.elu, lambda F: F.elu),
    "elu_0.5": (lambda x: A.elu(x, 0.5), lambda F: lambda x: F.elu(x, 0.5)),
    "selu": (A.selu, lambda F: F.selu),
    "silu": (A.silu, lambda F: F.silu),
    "swish": (A.swish, lambda F: F.silu),
    "softplus": (A.softplus, lambda F: F.softplus),
    "hard_tanh": (A.hard_tanh, lambda F: F.hardtanh),
    "identity": (A.identity, lambda F: lambda x: x),
    "softmax": (A.softmax, lambda F: lambda x: F.softmax(x, dim=-1)),
    "softmax_axis1": (lambda x: A.softmax(x, axis=1), lambda F: lambda x: F.softmax(x, dim=1)),
    "log_softmax": (A.log_softmax, lambda F: lambda x: F.log_softmax(x, dim=-1)),
    "log_softmax_axis0": (lambda x: A.log_softmax(x, axis=0), lambda F: lambda x: F.log_softmax(x, dim=0)),
}


def _inputs(rng):
    x = rng.standard_normal((4, 3, 50)) * 4
    # kinks exactly (torch's subgradient there is the convention to match), clip points,
    # softplus' threshold, saturation
    x[0, 0, :12] = [-30.0, -7.5, -1.0, 0.0, 1e-3, 5.9, 6.0, 6.1, 25.0, 1.0, -1e-3, 0.0]
    return x.astype(np.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_torch(torch, rng, name):
    ours, ref = CASES[name]
    ref = ref(torch.nn.functional)
    x = _inputs(rng)
    w = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    (yt * torch.from_numpy(w)).sum().backward()
    # jit: one compile instead of one per primitive of the eager backward pass
    y, g = jax.jit(lambda x: (ours(x), jax.grad(lambda x: jnp.sum(ours(x) * w))(x)))(jnp.asarray(x))
    assert y.dtype == jnp.float32 and y.shape == x.shape
    np.testing.assert_allclose(np.asarray(y), yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), **TOL)


def test_gelu_variants_differ():
    x = jnp.linspace(-3, 3, 13)
    assert np.abs(np.asarray(A.gelu(x) - A.gelu(x, approximate=True))).max() > 1e-4


def test_get_resolves_names_callables_and_none():
    assert A.get("relu") is A.relu and A.get("ReLU") is A.relu
    assert A.get("swish") is A.silu and A.get("linear") is A.identity and A.get(None) is A.identity
    assert A.get(jnp.sin) is jnp.sin
    for name in ("relu6", "gelu", "tanh", "sigmoid", "softmax", "log_softmax", "leaky_relu", "elu",
                 "selu", "silu", "softplus", "hard_tanh", "identity"):
        assert A.get(name) is getattr(A, name)


def test_unknown_activation_lists_options():
    with pytest.raises(ConfigError, match=r"activation: unknown value 'rellu'; expected one of \[.*'gelu'.*"
                                          r"'relu'.*'swish'.*\]"):
        A.get("rellu")
    with pytest.raises(ConfigError, match=r"activation: unknown value 3; expected one of"):
        A.get(3)
    with pytest.raises(ConfigError, match=r"activation: unknown value 'nope'"):
        Activation("nope")   # fails at construction


def test_activation_module():
    x = jnp.linspace(-2, 2, 10).reshape(2, 5)
    layer = Activation("gelu")
    assert layer.init(jax.random.key(0), x.shape) == ({}, {})
    y, state = layer.apply({}, {}, x)
    np.testing.assert_array_equal(y, A.gelu(x))
    assert state == {}
    assert Activation(A.tanh).apply({}, {}, x)[0].tolist() == jnp.tanh(x).tolist()
    assert repr(Activation("gelu")) == "Activation(fn='gelu')" and Activation("gelu").name == "gelu"
    assert Activation(A.tanh).name == "tanh"
    params, state = Sequential([Dense(3), Activation("relu"), A.softmax]).init(jax.random.key(0), (2, 5))
    assert list(params) == ["0_dense", "1_relu", "2_softmax"]
