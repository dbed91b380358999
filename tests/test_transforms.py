"""functorch_lite.transforms against torch.func, closed forms, Python loops and finite differences."""
import dataclasses
import os
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from functorch_lite import transforms as T
from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError, TreeMismatchError
from functorch_lite.core.module import Module, as_spec, check_rank, without_state

torch = pytest.importorskip("torch")
tfunc = pytest.importorskip("torch.func")

TOL = dict(rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- tiny modules
@dataclasses.dataclass(frozen=True, repr=False)
class Lin(Module):
    features: int

    def init(self, key, spec):
        fan_in = as_spec(spec).shape[-1]
        k1, k2 = jax.random.split(key)
        return {"kernel": jax.random.normal(k1, (fan_in, self.features)) * 0.5,
                "bias": jax.random.normal(k2, (self.features,)) * 0.1}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        return x @ params["kernel"] + params["bias"], state


@dataclasses.dataclass(frozen=True, repr=False)
class RunningMean(Module):
    """Adds ``shift``; with train=True tracks the running mean of its input in its state."""

    def init(self, key, spec):
        n = as_spec(spec).shape[-1]
        return {"shift": jnp.ones((n,))}, {"mean": jnp.zeros((n,))}

    def apply(self, params, state, x, *, key=None, train=False):
        if train:
            state = {"mean": 0.5 * state["mean"] + 0.5 * x.mean(0)}
        return x + params["shift"], state


MLP = Sequential([Lin(4), jnp.tanh, Lin(2)])


def mlp_params(seed=0):
    return without_state(MLP).init(jax.random.key(seed), (1, 3))


def mlp_by_hand(p, x):
    h = jnp.tanh(x @ p["0_lin"]["kernel"] + p["0_lin"]["bias"])
    return h @ p["2_lin"]["kernel"] + p["2_lin"]["bias"]


def rand(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def t(x):
    return torch.tensor(np.asarray(x))


# ----------------------------------------------------------------------------- gradients vs torch
def mse(w, x, y):
    return jnp.mean((x @ w - y) ** 2)


def mse_t(w, x, y):
    return torch.mean((x @ w - y) ** 2)


W, X, Y = rand(0, 3, 2), rand(1, 5, 3), rand(2, 5, 2)


def test_grad_matches_torch_func_grad():
    np.testing.assert_allclose(T.grad(mse)(W, X, Y), tfunc.grad(mse_t)(t(W), t(X), t(Y)), **TOL)
    ours = T.grad(mse, argnums=(0, 1))(W, X, Y)
    theirs = tfunc.grad(mse_t, argnums=(0, 1))(t(W), t(X), t(Y))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, **TOL)


def test_grad_has_aux_and_grad_and_value_match_torch_order():
    def f(w, x, y):
        pred = x @ w
        return jnp.mean((pred - y) ** 2), pred

    def f_t(w, x, y):
        pred = x @ w
        return torch.mean((pred - y) ** 2), pred

    g, aux = T.grad(f, has_aux=True)(W, X, Y)
    g_t, aux_t = tfunc.grad(f_t, has_aux=True)(t(W), t(X), t(Y))
    np.testing.assert_allclose(g, g_t, **TOL)
    np.testing.assert_allclose(aux, aux_t, **TOL)

    g, (v, aux) = T.grad_and_value(f, has_aux=True)(W, X, Y)
    g_t, (v_t, aux_t) = tfunc.grad_and_value(f_t, has_aux=True)(t(W), t(X), t(Y))
    for a, b in [(g, g_t), (v, v_t), (aux, aux_t)]:
        np.testing.assert_allclose(a, b, **TOL)

    g, v = T.grad_and_value(mse)(W, X, Y)
    g_t, v_t = tfunc.grad_and_value(mse_t)(t(W), t(X), t(Y))
    np.testing.assert_allclose(g, g_t, **TOL)
    np.testing.assert_allclose(v, v_t, **TOL)


def test_value_and_grad_uses_jax_order():
    def f(w, x, y):
        pred = x @ w
        return jnp.mean((pred - y) ** 2), pred

    (v, aux), g = T.value_and_grad(f, has_aux=True)(W, X, Y)
    g_t, (v_t, aux_t) = tfunc.grad_and_value(
        lambda w, x, y: (torch.mean((x @ w - y) ** 2), x @ w), has_aux=True)(t(W), t(X), t(Y))
    for a, b in [(g, g_t), (v, v_t), (aux, aux_t)]:
        np.testing.assert_allclose(a, b, **TOL)
    v, g = T.value_and_grad(mse, argnums=1)(W, X, Y)
    np.testing.assert_allclose(g, tfunc.grad(mse_t, argnums=1)(t(W), t(X), t(Y)), **TOL)
    np.testing.assert_allclose(v, mse_t(t(W), t(X), t(Y)), **TOL)


def test_grad_of_grad_against_finite_differences():
    def f(x):
        return jnp.sum(jnp.sin(x) * x ** 2)
    check_grads(T.grad(f), (rand(3, 4),), order=1, modes=("fwd", "rev"), atol=1e-2, rtol=1e-2)


def test_argnums_errors():
    with pytest.raises(ConfigError, match=r"grad\(mse, argnums=3\): argnums=3 is out of range "
                                          r"for a call with 3 positional arguments"):
        T.grad(mse, argnums=3)(W, X, Y)
    with pytest.raises(ConfigError, match=r"jacrev\(mse, argnums=1.5\): argnums expected an int "
                                          r"or a non-empty tuple of ints, got 1.5"):
        T.jacrev(mse, argnums=1.5)
    with pytest.raises(ConfigError, match=r"hessian\(mse, argnums=\(0, 5\)\): argnums=\(0, 5\) "
                                          r"is out of range"):
        T.hessian(mse, argnums=(0, 5))(W, X, Y)
    # negative argnums are in range, as in jax
    np.testing.assert_allclose(T.grad(mse, argnums=-3)(W, X, Y), T.grad(mse)(W, X, Y))


# ----------------------------------------------------------------------------- jacobians, hvp, jvp, vjp
A = rand(4, 3, 4)


def nonlinear(x):
    return jnp.tanh(A @ x) * x[:3] + jnp.sum(x ** 3)


def test_jacrev_equals_jacfwd_and_torch():
    x = rand(5, 4)
    j_rev, j_fwd = T.jacrev(nonlinear)(x), T.jacfwd(nonlinear)(x)
    assert j_rev.shape == (3, 4)
    np.testing.assert_allclose(j_rev, j_fwd, **TOL)
    At = t(A)
    j_t = tfunc.jacrev(lambda x: torch.tanh(At @ x) * x[:3] + torch.sum(x ** 3))(t(x))
    np.testing.assert_allclose(j_rev, j_t, **TOL)

    jac, aux = T.jacfwd(lambda x: (nonlinear(x), x * 2), has_aux=True)(x)
    np.testing.assert_allclose(jac, j_rev, **TOL)
    np.testing.assert_allclose(aux, x * 2)


def test_hessian_of_quadratic_is_the_matrix():
    m = rand(6, 4, 4)
    sym = (m + m.T) / 2
    h = T.hessian(lambda x: x @ sym @ x / 2)(rand(7, 4))
    np.testing.assert_allclose(h, sym, **TOL)


def cubic(x):
    return jnp.sum(jnp.sin(x) * x ** 2) + jnp.sum(x) ** 3


def test_hessian_and_hvp_match_torch_and_each_other():
    x, v = rand(8, 4), rand(9, 4)
    h = T.hessian(cubic)(x)
    h_t = tfunc.hessian(lambda x: torch.sum(torch.sin(x) * x ** 2) + torch.sum(x) ** 3)(t(x))
    np.testing.assert_allclose(h, h_t, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(T.hvp(cubic, (x,), (v,)), h @ v, rtol=1e-4, atol=1e-4)


def test_hvp_with_two_primals_differentiates_argnums():
    # f(x, y) = sum(x^2 y): grad_x = 2xy, so d/de grad_x(x + e v, y + e w) = 2 v y + 2 x w
    x, y, v, w = rand(1, 3), rand(2, 3), rand(3, 3), rand(4, 3)
    out = T.hvp(lambda x, y: jnp.sum(x ** 2 * y), (x, y), (v, w))
    np.testing.assert_allclose(out, 2 * v * y + 2 * x * w, **TOL)
    with pytest.raises(ConfigError, match=r"hvp\(<lambda>, argnums=2\): argnums=2 is out of range"):
        T.hvp(lambda x, y: jnp.sum(x * y), (x, y), (v, w), argnums=2)


def test_jvp_closed_form():
    x, tan = rand(10, 5), rand(11, 5)
    y, dy = T.jvp(lambda x: jnp.sin(x) * x, (x,), (tan,))
    np.testing.assert_allclose(y, np.sin(x) * x, **TOL)
    np.testing.assert_allclose(dy, (np.cos(x) * x + np.sin(x)) * tan, **TOL)
    y, dy, aux = T.jvp(lambda x: (x ** 2, x + 1), (x,), (tan,), has_aux=True)
    np.testing.assert_allclose(dy, 2 * x * tan, **TOL)
    np.testing.assert_allclose(aux, x + 1)


def test_jvp_argument_errors():
    x = rand(10, 5)
    with pytest.raises(TypeError, match=r"jvp\(sin\): primals expected a tuple with one entry per "
                                        r"positional argument of the function, got ArrayImpl"):
        T.jvp(jnp.sin, x, (x,))
    with pytest.raises(ConfigError, match=r"jvp\(sin\): got 2 primals but 1 tangents"):
        T.jvp(jnp.sin, (x, x), (x,))


def test_vjp_closed_form():
    x, y, ct = rand(12, 4), rand(13, 4), rand(14, 4)
    out, vjp_fn = T.vjp(lambda x, y: x * y + jnp.sin(x), x, y)
    np.testing.assert_allclose(out, x * y + np.sin(x), **TOL)
    gx, gy = vjp_fn(ct)
    np.testing.assert_allclose(gx, ct * (y + np.cos(x)), **TOL)
    np.testing.assert_allclose(gy, ct * x, **TOL)
    out, vjp_fn, aux = T.vjp(lambda x: (x ** 3, x.sum()), x, has_aux=True)
    np.testing.assert_allclose(vjp_fn(ct)[0], 3 * x ** 2 * ct, **TOL)
    np.testing.assert_allclose(aux, x.sum(), **TOL)


# ----------------------------------------------------------------------------- vmap
def affine(w, x, d):
    return jnp.tanh(x @ w) * d["scale"], jnp.sum(w ** 2)


def test_vmap_in_dims_none_and_out_dims_1_against_a_loop():
    w, x, d = rand(15, 3, 2), rand(16, 7, 3), {"scale": rand(17, 7)}
    ys, unbatched = T.vmap(affine, in_dims=(None, 0, {"scale": 0}), out_dims=(1, None))(w, x, d)
    loop = np.stack([affine(w, x[i], {"scale": d["scale"][i]})[0] for i in range(7)], axis=1)
    assert ys.shape == (2, 7)
    np.testing.assert_allclose(ys, loop, **TOL)
    np.testing.assert_allclose(unbatched, np.sum(np.asarray(w) ** 2), **TOL)


def test_vmap_keyword_arguments_are_not_mapped():
    x, s = rand(18, 4, 3), rand(19, 3)
    out = T.vmap(lambda x, *, scale: x * scale)(x, scale=s)
    np.testing.assert_allclose(out, np.stack([x[i] * s for i in range(4)]), **TOL)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 50])
def test_vmap_chunk_size_gives_the_same_results(chunk_size):
    # Same values up to float rounding: XLA compiles a chunk of n examples (a matmul of n rows)
    # separately from the full batch, which may change the last bit.
    w, x, d = rand(15, 3, 2), rand(16, 7, 3), {"scale": rand(17, 7)}
    kw = dict(in_dims=(None, 0, {"scale": 0}), out_dims=(1, None))
    full = T.vmap(affine, **kw)(w, x, d)
    chunked = T.vmap(affine, **kw, chunk_size=chunk_size)(w, x, d)
    for a, b in zip(full, chunked, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # mapped axis 1 in, negative out axis
    xt = jnp.swapaxes(x, 0, 1)
    f = lambda x: jnp.outer(x, x)
    np.testing.assert_allclose(T.vmap(f, in_dims=1, out_dims=-1, chunk_size=chunk_size)(xt),
                               T.vmap(f, in_dims=1, out_dims=-1)(xt), rtol=1e-6, atol=1e-7)


def test_vmap_chunked_keeps_vmap_checks():
    w, x = rand(15, 3, 2), rand(16, 7, 3)
    with pytest.raises(ValueError, match=r"vmap\(affine, in_dims=\(None, 0, 0\), chunk_size=2\): "
                                         r"vmap got inconsistent sizes"):
        T.vmap(affine, in_dims=(None, 0, 0), chunk_size=2)(w, x, {"scale": rand(1, 6)})


def test_vmap_randomness_keys_are_explicit():
    draw = lambda key, x: x + jax.random.normal(key, ())
    keys = jax.random.split(jax.random.key(0), 4)
    different = T.vmap(draw, in_dims=(0, 0), randomness="different")(keys, jnp.zeros(4))
    same = T.vmap(draw, in_dims=(None, 0), randomness="same")(keys[0], jnp.zeros(4))
    np.testing.assert_allclose(different, [jax.random.normal(k, ()) for k in keys], **TOL)
    assert len(set(np.asarray(different).tolist())) == 4
    np.testing.assert_allclose(same, np.full(4, jax.random.normal(keys[0], ())), **TOL)
    with pytest.raises(ConfigError, match=r"vmap randomness: unknown value 'random'; expected one "
                                          r"of \['different', 'error', 'same'\]"):
        T.vmap(draw, randomness="random")


def test_vmap_argument_errors():
    with pytest.raises(ConfigError, match=r"vmap\(affine, in_dims=\(None, 0\)\): in_dims has 2 "
                                          r"entries but affine was called with 3 positional"):
        T.vmap(affine, in_dims=(None, 0))(W, X, {"scale": X[:, 0]})
    with pytest.raises(ConfigError, match=r"vmap: in_dims expected an int, None or a tuple with "
                                          r"one entry per positional argument, got 'x'"):
        T.vmap(affine, in_dims="x")
    with pytest.raises(ConfigError, match=r"vmap: chunk_size expected a positive int or None, "
                                          r"got 0"):
        T.vmap(affine, chunk_size=0)


# ----------------------------------------------------------------------------- error prefixes
def loss(w, x):
    check_rank(x, 2, layer="Lin")
    return jnp.sum(x @ w)


def test_error_inside_vmap_keeps_type_and_gets_prefix():
    with pytest.raises(ShapeError) as info:
        T.vmap(loss, in_dims=(None, 0))(W, X)
    msg = str(info.value)
    assert msg.startswith("vmap(loss, in_dims=(None, 0)): Lin: input rank expected 2, got 1")
    assert isinstance(info.value.__cause__, ShapeError)
    assert str(info.value.__cause__).startswith("Lin: input rank expected 2")


def test_nested_transforms_prefix_once_per_level_and_chain_to_the_origin():
    with pytest.raises(ShapeError, match=r"^vmap\(loss, in_dims=\(None, 0\)\): grad\(loss\): "
                                         r"Lin: input rank expected 2, got 1") as info:
        T.vmap(T.grad(loss), in_dims=(None, 0))(W, X)
    assert str(info.value).count("vmap(") == 1 and str(info.value).count("grad(") == 1
    assert str(info.value.__cause__).startswith("Lin: input rank")  # the original, not a copy
    # its traceback keeps the user's frames and drops JAX's internal ones
    files = [f.filename for f in traceback.extract_tb(info.value.__cause__.__traceback__)]
    assert any(f.endswith("test_transforms.py") for f in files)
    assert not any(f.startswith(os.path.dirname(jax.__file__)) for f in files)


def test_error_that_cannot_be_rebuilt_is_reraised_unchanged():
    class TwoArgError(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}/{b}")

    raised = TwoArgError("x", "y")

    def bad(x):
        raise raised

    with pytest.raises(TwoArgError, match=r"^x/y") as info:
        T.grad(bad)(1.0)
    assert info.value is raised


# ----------------------------------------------------------------------------- jit
def test_jit_passthrough_with_and_without_arguments():
    @T.jit
    def double(x):
        return 2 * x

    @T.jit(static_argnums=1)
    def ones(x, n):
        return x + jnp.ones(n)

    np.testing.assert_allclose(double(X), 2 * X)
    np.testing.assert_allclose(ones(1.0, 3), np.full(3, 2.0))
    assert hasattr(double, "lower")  # a real jax.jit object
    g = T.jit(T.grad(mse), static_argnames=None)
    np.testing.assert_allclose(g(W, X, Y), T.grad(mse)(W, X, Y), **TOL)


# ----------------------------------------------------------------------------- per-example grads
def mlp_loss(params, x, y):
    check_rank(x, 2, layer="mlp_loss")  # every example keeps its batch axis of size 1
    return jnp.mean((without_state(MLP).apply(params, x) - y) ** 2)


def test_per_example_grads_equal_a_loop_of_single_example_grads():
    params, x, y = mlp_params(), rand(20, 6, 3), rand(21, 6, 2)
    per = T.per_example_grads(mlp_loss, params, x, y)
    assert per["0_lin"]["kernel"].shape == (6, 3, 4)
    single = jax.jit(jax.grad(mlp_loss))  # the oracle: one example at a time, no vmap
    for i in range(6):
        one = single(params, x[i:i + 1], y[i:i + 1])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, **TOL), per, one)
    # and their mean is the full-batch gradient of a mean loss
    full = jax.grad(mlp_loss)(params, x, y)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a.mean(0), b, **TOL), per, full)


def test_per_example_grads_has_aux_and_argnums():
    params, x, y = mlp_params(), rand(20, 6, 3), rand(21, 6, 2)

    def with_aux(p, x, y):
        return mlp_loss(p, x, y), x.sum()

    grads, aux = T.per_example_grads(with_aux, params, x, y, has_aux=True)
    np.testing.assert_allclose(aux, x.sum(1), **TOL)
    gx = T.per_example_grads(mlp_loss, params, x, y, argnums=1)
    single = jax.jit(jax.grad(mlp_loss, 1))
    for i in range(6):
        np.testing.assert_allclose(gx[i], single(params, x[i:i + 1], y[i:i + 1])[0], **TOL)
    with pytest.raises(ConfigError, match=r"per_example_grads\(mlp_loss\): no batch given"):
        T.per_example_grads(mlp_loss, params)
    with pytest.raises(ConfigError, match=r"argnums=3 is out of range for a call with 3"):
        T.per_example_grads(mlp_loss, params, x, y, argnums=3)


# ----------------------------------------------------------------------------- functional_call
def test_functional_call_runs_the_module_with_given_params():
    params, x = mlp_params(), rand(22, 5, 3)
    np.testing.assert_allclose(T.functional_call(MLP, params, (x,)), mlp_by_hand(params, x), **TOL)
    np.testing.assert_allclose(T.functional_call(MLP, params, x), mlp_by_hand(params, x), **TOL)
    # differentiable through params, like torch.func.functional_call under grad
    g = T.grad(lambda p: jnp.sum(T.functional_call(MLP, p, x)))(params)
    g_hand = jax.grad(lambda p: jnp.sum(mlp_by_hand(p, x)))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), g, g_hand)


def test_functional_call_with_state():
    model = Sequential([RunningMean(), Lin(2)])
    params, state = model.init(jax.random.key(0), (1, 3))
    x = rand(23, 4, 3)
    y, new_state = T.functional_call(model, params, (x,), state=state, train=True)
    k, b = params["1_lin"]["kernel"], params["1_lin"]["bias"]
    np.testing.assert_allclose(y, (x + 1) @ k + b, **TOL)
    np.testing.assert_allclose(new_state["0_running_mean"]["mean"], 0.5 * x.mean(0), **TOL)
    with pytest.raises(TreeMismatchError, match=r"the module has state \(0_running_mean/mean\) "
                                                r"but state=None"):
        T.functional_call(model, params, (x,))
    with pytest.raises(TreeMismatchError, match=r"state does not match the module's tree; "
                                                r"missing: \['0_running_mean/mean'\], "
                                                r"extra: \['0_running_mean/avg'\]"):
        T.functional_call(model, params, (x,), state={"0_running_mean": {"avg": jnp.zeros(3)},
                                                      "1_lin": {}})


def test_functional_call_tree_mismatch_lists_paths():
    params, x = mlp_params(), rand(22, 5, 3)
    bad = {"0_lin": {"kernel": params["0_lin"]["kernel"], "b": params["0_lin"]["bias"]},
           "2_lin": {"kernel": params["2_lin"]["kernel"].T, "bias": params["2_lin"]["bias"]}}
    with pytest.raises(TreeMismatchError) as info:
        T.functional_call(MLP, bad, (x,))
    msg = str(info.value)
    assert "params do not match the module's tree" in msg
    assert "missing: ['0_lin/bias', '1_tanh'], extra: ['0_lin/b']" in msg
    assert "mis-shaped: ['2_lin/kernel expected (4, 2), got (2, 4)']" in msg
    # strict=False skips the check and lets the module fail its own way
    with pytest.raises(KeyError):
        T.functional_call(MLP, bad, (x,), strict=False)


def test_functional_call_delegates_and_rejects_non_modules():
    seen = {}

    class Adapter:
        def __functional_call__(self, params, args, kwargs, **kw):
            seen.update(params=params, args=args, kwargs=kwargs, **kw)
            return "out"

    assert T.functional_call(Adapter(), {"w": 1}, 5, {"a": 2}, train=True) == "out"
    assert seen == dict(params={"w": 1}, args=(5,), kwargs={"a": 2}, state=None, key=None,
                        train=True, strict=True)
    with pytest.raises(TypeError, match=r"functional_call: expected a functorch_lite Module "
                                        r"\(with init and apply\) or an object with "
                                        r"__functional_call__, got int"):
        T.functional_call(3, {}, (X,))
    with pytest.raises(ConfigError, match=r"strict=True needs the input as args\[0\]"):
        T.functional_call(MLP, mlp_params(), ())


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_of_four_models_equals_four_calls():
    keys = jax.random.split(jax.random.key(1), 4)
    stacked, stacked_state = T.init_ensemble(MLP, keys, (1, 3))
    init = jax.jit(lambda k: MLP.init(k, (1, 3))[0])
    singles = [init(k) for k in keys]
    assert stacked["0_lin"]["kernel"].shape == (4, 3, 4)
    assert stacked_state == {"0_lin": {}, "1_tanh": {}, "2_lin": {}}
    for a, b in zip(T.unstack_params(stacked), singles, strict=True):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), a, b)

    x, one_model = rand(24, 5, 3), jax.jit(mlp_by_hand)
    out = T.ensemble(mlp_by_hand, stacked, x)
    assert out.shape == (4, 5, 2)
    for i, p in enumerate(singles):
        np.testing.assert_allclose(out[i], one_model(p, x), **TOL)

    xs = rand(25, 4, 5, 3)  # one input per model
    out = T.ensemble(mlp_by_hand, in_dims=0)(stacked, xs)
    for i, p in enumerate(singles):
        np.testing.assert_allclose(out[i], one_model(p, xs[i]), **TOL)
    with pytest.raises(ConfigError, match=r"ensemble\(mlp_by_hand\): in_dims has 2 entries but "
                                          r"got 1 inputs"):
        T.ensemble(mlp_by_hand, stacked, x, in_dims=(None, 0))


def test_stack_unstack_roundtrip_and_errors():
    trees = [mlp_params(s) for s in range(3)]
    stacked = T.stack_params(trees)
    np.testing.assert_array_equal(stacked["2_lin"]["bias"][1], trees[1]["2_lin"]["bias"])
    for a, b in zip(T.unstack_params(stacked), trees, strict=True):
        jax.tree.map(np.testing.assert_array_equal, a, b)
    odd = {"0_lin": trees[0]["0_lin"], "2_lin": {"kernel": jnp.zeros((5, 2))}}
    with pytest.raises(TreeMismatchError, match=r"stack_params: tree 2 differs from tree 0; "
                                                r"missing: \['1_tanh', '2_lin/bias'\], "
                                                r"mis-shaped: \['2_lin/kernel expected \(4, 2\), "
                                                r"got \(5, 2\)'\]"):
        T.stack_params(trees[:2] + [odd])
    with pytest.raises(ConfigError, match=r"stack_params: got an empty list"):
        T.stack_params([])
    with pytest.raises(TreeMismatchError, match=r"unstack_params: every leaf needs the same "
                                                r"leading \(model\) axis, got leading sizes "
                                                r"\['2', '3'\]"):
        T.unstack_params({"a": jnp.zeros((2, 1)), "b": jnp.zeros((3,))})
