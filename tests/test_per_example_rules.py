"""The per-example weight-gradient rules (layers/per_example.py) give JAX's own gradients.

Oracles: ``jax.grad`` of one example at a time with the rules off (JAX's transpose rules),
finite differences, and torch.func's per-sample gradients for a PyTorch-layout conv net.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import functorch_lite as fl
from functorch_lite import layers as L
from functorch_lite.core.combinators import Sequential
from functorch_lite.layers import per_example

TOL = dict(rtol=2e-5, atol=2e-5)


def _rand(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _loop_oracle(loss, params, x, y):
    """One example at a time, JAX's rules (the switch is off outside per_example_grads)."""
    single = jax.jit(jax.grad(loss))
    outs = [single(params, x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])]
    return jax.tree.map(lambda *a: jnp.stack(a), *outs)


def _check_against_loop(model, x_shape, out_dim, seed=0):
    params, _ = model.init(jax.random.key(seed), (1,) + x_shape)
    x, y = _rand(seed + 1, 5, *x_shape), _rand(seed + 2, 5, out_dim)

    def loss(p, xb, yb):
        return jnp.mean((model.apply(p, {}, xb)[0] - yb) ** 2)
    per = fl.per_example_grads(loss, params, x, y)
    want = _loop_oracle(loss, params, x, y)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), per, want)
    return params, loss, x, y


CONVS = [
    # (conv kwargs, input shape without batch): 1-d to 3-d, strides, dilation, padding forms,
    # few input channels (one patches dot) and many (one dot per window offset)
    (dict(filters=4, kernel_size=(3, 3), padding="same"), (7, 7, 1)),
    (dict(filters=5, kernel_size=(3, 3), padding="same"), (7, 7, 20)),
    (dict(filters=4, kernel_size=(3, 2), strides=2, padding="valid"), (9, 8, 18)),
    (dict(filters=3, kernel_size=(3, 3), dilation=2, padding=((2, 1), (0, 3))), (8, 9, 2)),
    (dict(filters=3, kernel_size=(2, 3), strides=(2, 1), padding="same"), (7, 6, 17)),
    (dict(filters=3, kernel_size=(3,), strides=2, padding="same"), (11, 3)),
    (dict(filters=2, kernel_size=(2, 2, 2), padding="valid"), (4, 5, 4, 3)),
]


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("conv,shape", CONVS)
def test_conv_rule_gives_the_loop_of_single_example_grads(conv, shape, layout):
    if layout == "channels_first":
        shape = (shape[-1],) + shape[:-1]
    model = Sequential([L.Conv(layout=layout, **conv), fl.relu, L.Flatten(), L.Dense(3)])
    _check_against_loop(model, shape, 3)


@pytest.mark.parametrize("kernel_layout", ["io", "oi"])
def test_dense_rule_on_sequences_and_both_kernel_layouts(kernel_layout):
    # (batch, time, features) input: the rule sums the kernel gradient over time as JAX does
    model = Sequential([L.Dense(6, kernel_layout=kernel_layout), fl.tanh,
                        L.Dense(2, kernel_layout=kernel_layout), L.Flatten()])
    _check_against_loop(model, (4, 3), 8)


def test_grouped_conv_keeps_jax_rules_and_is_still_right():
    model = Sequential([L.Conv(4, (3, 3), groups=2, padding="same"), L.Flatten(), L.Dense(2)])
    _check_against_loop(model, (5, 5, 4), 2)


def test_rules_are_switched_on_only_inside_per_example_grads():
    model = Sequential([L.Conv(2, (3, 3)), L.Flatten(), L.Dense(1)])
    params, _ = model.init(jax.random.key(0), (1, 5, 5, 1))
    x = _rand(0, 3, 5, 5, 1)
    seen = []

    def loss(p, xb):
        seen.append(per_example.active())
        return jnp.sum(model.apply(p, {}, xb)[0])
    assert "custom_vjp" not in str(jax.make_jaxpr(jax.grad(loss))(params, x))
    fl.per_example_grads(loss, params, x)
    assert seen == [False, True] and not per_example.active()


def test_rule_gradients_pass_finite_differences():
    """Second order in reverse mode: the rules' backward passes are differentiable code."""
    x, w = _rand(0, 2, 6, 5, 3), _rand(1, 3, 2, 3, 4) * 0.3
    xd, wd = _rand(2, 2, 7, 4), _rand(3, 4, 5) * 0.3
    with per_example.rules():
        def conv(x, w):
            return per_example.conv(x, w, strides=(2, 1), padding="SAME", dilation=(1, 2),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), groups=1,
                                    channels_last=True)
        check_grads(conv, (x, w), order=2, modes=["rev"], atol=2e-2, rtol=2e-2)
        check_grads(lambda a, b: per_example.dense(a, b), (xd, wd), order=2, modes=["rev"],
                    atol=2e-2, rtol=2e-2)


def test_forward_over_reverse_through_per_example_grads():
    """jvp of the per-example gradients (per-example Hessian-vector products) still works."""
    model = Sequential([L.Conv(3, (3, 3), padding="same"), fl.tanh, L.Flatten(), L.Dense(2)])
    params, _ = model.init(jax.random.key(0), (1, 5, 5, 2))
    x, y = _rand(1, 4, 5, 5, 2), _rand(2, 4, 2)

    def loss(p, xb, yb):
        return jnp.mean((model.apply(p, {}, xb)[0] - yb) ** 2)
    tangent = jax.tree.map(lambda a: jnp.ones_like(a) * 0.1, params)
    _, got = jax.jvp(lambda p: fl.per_example_grads(loss, p, x, y), (params,), (tangent,))
    plain = jax.vmap(jax.grad(lambda p, xi, yi: loss(p, xi[None], yi[None])), (None, 0, 0))
    _, want = jax.jvp(lambda p: plain(p, x, y), (params,), (tangent,))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)


def test_a_loss_that_differentiates_forward_falls_back_to_jax_rules():
    """A custom VJP has no forward mode; per_example_grads retraces without the rules."""
    model = Sequential([L.Dense(3), fl.tanh, L.Dense(1)])
    params, _ = model.init(jax.random.key(0), (1, 2))
    x = _rand(1, 4, 2)

    def input_gradient_penalty(p, xb):  # a jacfwd of the model inside the loss
        jac = jax.jacfwd(lambda z: model.apply(p, {}, z)[0].sum())(xb)
        return jnp.sum(jac ** 2)
    got = fl.per_example_grads(input_gradient_penalty, params, x)
    want = _loop_oracle(lambda p, xb, _y: input_gradient_penalty(p, xb), params, x, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)


def test_per_example_conv_grads_match_torch_func():
    torch = pytest.importorskip("torch")
    from torch.func import functional_call, grad, vmap
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, stride=2),
                               torch.nn.Flatten(), torch.nn.Linear(16, 4))
    tparams = {k: v.detach() for k, v in tnet.named_parameters()}
    model = Sequential([L.Conv(8, 3, padding=1, layout="channels_first"), fl.relu,
                        L.MaxPool(2, layout="channels_first"),
                        L.Conv(16, 3, strides=2, layout="channels_first"), L.Flatten(),
                        L.Dense(4, kernel_layout="oi")])
    names = dict(zip("035", [n for n in model.names if n[0] in "035"]))  # torch index -> ours
    params, _ = model.init(jax.random.key(0), (1, 3, 8, 8))
    params.update({names[i]: {leaf: jnp.asarray(tparams[f"{i}.{leaf}"].numpy())
                              for leaf in ("weight", "bias")} for i in "035"})
    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 6)

    def loss(p, xb, yb):
        return fl.losses.cross_entropy(model.apply(p, {}, xb)[0], yb)
    got = fl.per_example_grads(loss, params, jnp.asarray(x), jnp.asarray(y))

    def tloss(p, xb, yb):
        return torch.nn.functional.cross_entropy(functional_call(tnet, p, (xb[None],)), yb[None])
    want = vmap(grad(tloss), in_dims=(None, 0, 0))(tparams, torch.from_numpy(x), torch.from_numpy(y))
    for i in "035":
        for leaf in ("weight", "bias"):
            np.testing.assert_allclose(got[names[i]][leaf], want[f"{i}.{leaf}"].numpy(),
                                       rtol=1e-4, atol=1e-5)
