"""functorch_lite.optim against torch.optim (same params, same gradient sequence) and optax."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functorch_lite import optim
from functorch_lite.core.errors import ConfigError, ShapeError
torch = pytest.importorskip("torch")   # the independent oracle


SHAPES = {"w": (3,), "k": (2, 4), "b": (5, 1, 2)}
SCALES = [1.0, 0.1, 2.0, 0.05, 0.5]          # varying magnitudes exercise AMSGrad's max


def _data(seed=0):
    rng = np.random.default_rng(seed)
    params = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
    grads = [{n: (c * rng.normal(size=s)).astype(np.float32) for n, s in SHAPES.items()}
             for c in SCALES]
    return params, grads


TORCH_CASES = [
    ("SGD", optim.torch_sgd, dict(lr=0.1)),
    ("SGD", optim.torch_sgd, dict(lr=0.1, momentum=0.9)),
    ("SGD", optim.torch_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", optim.torch_sgd, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("Adam", optim.torch_adam, dict()),
    ("Adam", optim.torch_adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    ("Adam", optim.torch_adam, dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", optim.torch_adamw, dict()),
    ("AdamW", optim.torch_adamw, dict(lr=0.01, weight_decay=0.1, eps=1e-3)),
    ("AdamW", optim.torch_adamw, dict(lr=0.01, amsgrad=True)),
    ("RMSprop", optim.torch_rmsprop, dict()),
    ("RMSprop", optim.torch_rmsprop, dict(lr=0.01, eps=1e-2)),
    ("RMSprop", optim.torch_rmsprop, dict(lr=0.01, momentum=0.5)),
    ("RMSprop", optim.torch_rmsprop,
     dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1, eps=1e-3)),
    ("Adagrad", optim.torch_adagrad, dict()),
    ("Adagrad", optim.torch_adagrad,
     dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-3)),
    ("Adadelta", optim.torch_adadelta, dict()),
    ("Adadelta", optim.torch_adadelta, dict(lr=0.5, rho=0.8, eps=1e-3, weight_decay=0.1)),
]


@pytest.mark.parametrize("torch_name,ours,kwargs", TORCH_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_torch_optimizers_match_torch_optim(torch_name, ours, kwargs):
    params, grads = _data()
    tparams = {n: torch.tensor(p, requires_grad=True) for n, p in params.items()}
    topt = getattr(torch.optim, torch_name)(list(tparams.values()), **kwargs)
    tx = ours(**kwargs)
    jparams = {n: jnp.asarray(p) for n, p in params.items()}
    state = tx.init(jparams)
    lr0 = float(optim.get_learning_rate(state))
    assert lr0 == pytest.approx(topt.param_groups[0]["lr"])

    @jax.jit
    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s

    for i, g in enumerate(grads):
        if i == 3:                       # change the learning rate mid-run in both
            for group in topt.param_groups:
                group["lr"] = lr0 * 0.3
            state = optim.set_learning_rate(state, lr0 * 0.3)
        for n, tp in tparams.items():
            tp.grad = torch.tensor(g[n])
        topt.step()
        jparams, state = step(jparams, state, {n: jnp.asarray(v) for n, v in g.items()})
        for n, tp in tparams.items():
            np.testing.assert_allclose(np.asarray(jparams[n]), tp.detach().numpy(),
                                       rtol=1e-5, atol=1e-5, err_msg=f"step {i}, param {n}")


def _run(tx, steps=3):
    params, grads = _data(1)
    p = {n: jnp.asarray(v) for n, v in params.items()}
    s = tx.init(p)
    for g in grads[:steps]:
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
    return p


@pytest.mark.parametrize("name,reference", [
    ("adam", lambda: optax.adam(1e-3)),
    ("SGD", lambda: optax.sgd(0.01)),
    ("RMSprop", lambda: optax.rmsprop(1e-3)),
    ("adagrad", lambda: optax.adagrad(1e-3)),
    ("Adadelta", lambda: optax.adadelta(1e-3)),
    ("nadam", lambda: optax.nadam(1e-3)),
    ("lamb", lambda: optax.lamb(1e-3)),
    ("lion", lambda: optax.lion(1e-3)),
    ("adamw", lambda: optax.adamw(1e-3)),
])
def test_get_name_resolves_to_optax_with_keras_default_lr(name, reference):
    tx = optim.get(name)
    assert float(optim.get_learning_rate(tx.init({"w": jnp.zeros(3)}))) == pytest.approx(
        0.01 if name.lower() == "sgd" else 1e-3)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                           _run(tx), _run(reference()))


def test_get_passes_learning_rate_and_kwargs():
    mask = lambda p: {n: n != "b" for n in p}  # noqa: E731  (a callable that is not a schedule)
    got = _run(optim.get("adamw", 0.05, weight_decay=0.5, mask=mask))
    want = _run(optax.adamw(0.05, weight_decay=0.5, mask=mask))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
    got = _run(optim.get("sgd", 0.1, momentum=0.9, nesterov=True))
    want = _run(optax.sgd(0.1, momentum=0.9, nesterov=True))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)


def test_get_passes_transformations_through():
    tx = optax.adam(1e-2)
    assert optim.get(tx) is tx


def test_get_errors():
    with pytest.raises(ConfigError, match=r"optimizer: unknown value 'adamm'; expected one of .*'adam'.*'sgd'"):
        optim.get("adamm")
    with pytest.raises(ConfigError, match=r"optimizer: got an optax transformation and also \['learning_rate'\]"):
        optim.get(optax.sgd(0.1), learning_rate=0.1)
    with pytest.raises(ConfigError, match=r"optimizer: expected a name or an optax GradientTransformation, got int 3"):
        optim.get(3)
    with pytest.raises(ConfigError, match=r"optimizer 'sgd': unknown arguments \['beta'\]; expected some of .*'momentum'"):
        optim.get("sgd", beta=0.9)


def test_learning_rate_found_nested_in_chain():
    tx = optax.chain(optax.clip_by_global_norm(1.0), optim.get("sgd", 0.2))
    s = tx.init({"w": jnp.zeros(3)})
    assert float(optim.get_learning_rate(s)) == pytest.approx(0.2)
    s2 = optim.set_learning_rate(s, 0.7)
    assert float(optim.get_learning_rate(s2)) == pytest.approx(0.7)
    assert float(optim.get_learning_rate(s)) == pytest.approx(0.2)        # pure
    g = {"w": jnp.array([0.1, -0.2, 0.3])}
    u, _ = tx.update(g, s2, {"w": jnp.zeros(3)})
    np.testing.assert_allclose(u["w"], -0.7 * g["w"], rtol=1e-6)


def test_learning_rate_errors():
    p = {"w": jnp.zeros(3)}
    with pytest.raises(ConfigError, match=r"get_learning_rate: opt_state expected an optax.inject_hyperparams state with a 'learning_rate', found none\nHint: build"):
        optim.get_learning_rate(optax.adam(1e-3).init(p))
    with pytest.raises(ConfigError, match=r"set_learning_rate: opt_state expected an optax.inject_hyperparams state"):
        optim.set_learning_rate(optax.sgd(0.1).init(p), 0.1)
    two = optax.chain(optim.get("sgd"), optim.get("adam")).init(p)
    with pytest.raises(ConfigError, match=r"get_learning_rate: opt_state expected one injectable 'learning_rate', found 2 at \['\[0\]', '\[1\]'\]"):
        optim.get_learning_rate(two)
    sched = optim.get("sgd", optax.linear_schedule(1.0, 0.0, 10)).init(p)
    with pytest.raises(ConfigError, match=r"set_learning_rate: learning_rate expected a constant, got a schedule"):
        optim.set_learning_rate(sched, 0.1)
    with pytest.raises(ShapeError, match=r"set_learning_rate: learning_rate expected shape \(\), got \(2,\)"):
        optim.set_learning_rate(optim.get("sgd").init(p), jnp.ones(2))


def test_schedule_learning_rate_is_readable():
    tx = optim.get("sgd", optax.linear_schedule(1.0, 0.0, 10))
    p = {"w": jnp.zeros(2)}
    s = tx.init(p)
    for _ in range(4):
        _, s = tx.update({"w": jnp.ones(2)}, s, p)
    assert float(optim.get_learning_rate(s)) == pytest.approx(1.0 - 0.1 * 3)


def test_set_learning_rate_does_not_retrace():
    tx = optim.torch_sgd(lr=0.1, momentum=0.0)
    traces = []

    @jax.jit
    def step(p, s, g, lr):
        traces.append(1)
        s = optim.set_learning_rate(s, lr)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    @jax.jit
    def plain_step(p, s, g):
        traces.append(2)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p = {"w": jnp.ones(3)}
    s = tx.init(p)
    g = {"w": jnp.array([1.0, 2.0, 3.0])}
    for lr in [0.1, 0.01, 0.5, 0.2]:
        new_p, s = step(p, s, g, lr)
        np.testing.assert_allclose(new_p["w"], p["w"] - float(lr) * g["w"], rtol=1e-6)
        p = new_p
    assert traces.count(1) == 1
    for lr in [0.3, 0.03, 1.0]:                         # set outside jit between steps
        s = optim.set_learning_rate(s, lr)
        new_p, s = plain_step(p, s, g)
        np.testing.assert_allclose(new_p["w"], p["w"] - lr * g["w"], rtol=1e-6)
        p = new_p
    assert traces.count(2) == 1


def test_torch_constructor_errors():
    with pytest.raises(ConfigError, match=r"nesterov: expected momentum > 0 and dampening == 0, got momentum=0.0"):
        optim.torch_sgd(0.1, nesterov=True)
    with pytest.raises(ConfigError, match=r"lr: expected a number >= 0, got -0.1"):
        optim.torch_adam(lr=-0.1)
    with pytest.raises(ConfigError, match=r"betas\[1\]: expected a number in \[0, 1\), got 1.0"):
        optim.torch_adamw(betas=(0.9, 1.0))
    with pytest.raises(ConfigError, match=r"betas: expected a pair \(beta1, beta2\), got \(0.9,\)"):
        optim.torch_adam(betas=(0.9,))
    with pytest.raises(ConfigError, match=r"eps: expected a number >= 0, got -1e-08"):
        optim.torch_rmsprop(eps=-1e-8)
    with pytest.raises(ConfigError, match=r"weight_decay: expected a number >= 0, got -1"):
        optim.torch_adagrad(weight_decay=-1)
    with pytest.raises(ConfigError, match=r"momentum: expected a number >= 0, got -0.5"):
        optim.torch_rmsprop(momentum=-0.5)
    with pytest.raises(ConfigError, match=r"alpha: expected a number >= 0, got -0.1"):
        optim.torch_rmsprop(alpha=-0.1)
    with pytest.raises(ConfigError, match=r"lr_decay: expected a number >= 0, got -0.1"):
        optim.torch_adagrad(lr_decay=-0.1)
    with pytest.raises(ConfigError, match=r"initial_accumulator_value: expected a number >= 0, got -1"):
        optim.torch_adagrad(initial_accumulator_value=-1)
    with pytest.raises(ConfigError, match=r"rho: expected a number in \[0, 1\], got 1.5"):
        optim.torch_adadelta(rho=1.5)
