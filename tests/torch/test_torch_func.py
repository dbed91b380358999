"""The escape hatch into the functional world: functional_call / make_functional give pure JAX
functions of a torch-style model (jit, grad, vmap work), torch.func transforms, and
functorch_lite.functional_call's ``__functional_call__`` protocol; save/load of state dicts."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

import functorch_lite as fl
import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
from functorch_lite.core.errors import TreeMismatchError


def _net(n=nn):
    return n.Sequential(n.Conv2d(1, 3, 3), n.BatchNorm2d(3), n.ReLU(), n.Flatten(), n.Linear(48, 4))


def _x(n=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 6, 6)).astype(np.float32)


def test_make_functional_is_a_pure_jittable_function_equal_to_the_module():
    model = _net().eval()
    apply, params = torch.func.make_functional(model)
    assert list(params) == [n for n, _ in model.named_parameters()]
    x = _x()
    y = jax.jit(apply)(params, jnp.asarray(x))
    assert isinstance(y, jax.Array)
    assert_close(np.asarray(y), model(torch.tensor(x)))
    doubled = {k: v * 2 for k, v in params.items()}
    assert not np.allclose(np.asarray(apply(doubled, x)), np.asarray(y))
    assert_close(model(torch.tensor(x)), np.asarray(y))  # the module itself is untouched


def test_jax_grad_of_the_functional_model_equals_backward_and_pytorch():
    real_torch.manual_seed(0)
    real = _net(real_torch.nn)
    model = copy_weights(real, _net())
    x, y = _x(), np.array([0, 1, 2, 3, 0])
    apply, params = torch.func.make_functional(model)

    def loss(p):
        return fl.losses.cross_entropy(apply(p, x), jnp.asarray(y, jnp.int32))
    grads = jax.grad(loss)(params)
    real_torch.nn.functional.cross_entropy(real(real_torch.tensor(x)), real_torch.tensor(y)).backward()
    F.cross_entropy(model(torch.tensor(x)), torch.tensor(y)).backward()
    for (name, p), q in zip(model.named_parameters(), real.parameters()):
        assert_close(np.asarray(grads[name]), q.grad, atol=1e-5)
        assert_close(p.grad, q.grad, atol=1e-5)


def test_vmap_per_example_gradients():
    model = nn.Linear(3, 1)
    apply, params = torch.func.make_functional(model)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)

    def loss(p, xi):
        return apply(p, xi[None]).sum()
    per = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, x)
    assert per["weight"].shape == (4, 1, 3)
    assert_close(np.asarray(per["weight"][:, 0]), x)       # d(w.x + b)/dw = x
    assert_close(np.asarray(per["bias"]), np.ones((4, 1)))


def test_functional_call_with_tensors_returns_tensors_and_buffers_stay_put():
    model = _net()
    state = {n: p.detach() * 0 for n, p in model.named_parameters()}
    out = torch.func.functional_call(model, state, (torch.tensor(_x()),))
    assert isinstance(out, torch.Tensor) and out.abs().sum().item() == 0
    assert model.training and model[1].num_batches_tracked.item() == 0  # train-mode BN restored
    with pytest.raises(TreeMismatchError, match=r"unexpected key 'nope'"):
        torch.func.functional_call(model, {"nope": torch.ones(1)}, (torch.tensor(_x()),))
    with pytest.raises(ValueError, match=r"functional_call got multiple values for keys \['0.bias'\]"):
        torch.func.functional_call(model, ({"0.bias": torch.ones(3)}, {"0.bias": torch.ones(3)}),
                                   (torch.tensor(_x()),))


def test_functorch_lite_functional_call_protocol_with_state_and_train():
    model = _net()
    params = {n: p._value() for n, p in model.named_parameters()}
    state = {n: b._value() for n, b in model.named_buffers()}
    x = jnp.asarray(_x())
    y, new_state = fl.functional_call(model, params, (x,), state=state, train=True)
    assert y.shape == (5, 4)
    assert not np.allclose(new_state["1.running_mean"], state["1.running_mean"])
    assert int(new_state["1.num_batches_tracked"]) == 1
    assert model[1].running_mean.abs().sum().item() == 0    # the module is unchanged
    y_eval = fl.functional_call(model, params, (x,), train=False, strict=True)
    model.eval()
    assert_close(np.asarray(y_eval), model(torch.tensor(np.asarray(x))))
    with pytest.raises(TreeMismatchError, match=r"missing: \['4.bias'\]"):
        fl.functional_call(model, {k: v for k, v in params.items() if k != "4.bias"}, (x,))


def test_dropout_under_functional_call_uses_the_given_key():
    model = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5))
    params = {n: p._value() for n, p in model.named_parameters()}
    x = jnp.ones((2, 4))
    a = fl.functional_call(model, params, (x,), key=jax.random.key(0), train=True)
    b = fl.functional_call(model, params, (x,), key=jax.random.key(0), train=True)
    c = fl.functional_call(model, params, (x,), key=jax.random.key(1), train=True)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_torch_func_transforms_on_tensor_code():
    def f(x):
        return (x ** 3).sum()
    x = torch.tensor([1.0, 2.0])
    g = torch.func.grad(f)(x)
    assert isinstance(g, torch.Tensor) and g.tolist() == [3.0, 12.0]
    gg, v = torch.func.grad_and_value(f)(x)
    assert v.item() == 9.0 and gg.tolist() == [3.0, 12.0]
    h = torch.func.hessian(f)(x)
    assert h.tolist() == [[6.0, 0.0], [0.0, 12.0]]
    batched = torch.func.vmap(lambda r: r.sum() * 2)(torch.ones(3, 4))
    assert batched.tolist() == [8.0, 8.0, 8.0]
    j = torch.func.jacrev(lambda r: r * r)(x)
    assert j.tolist() == [[2.0, 0.0], [0.0, 4.0]]
    with pytest.raises(ValueError, match="Only allowed values for randomness are 'error', 'different', or 'same'"):
        torch.func.vmap(f, randomness="sometimes")


# ----------------------------------------------------------------------------- save / load

def test_save_load_roundtrip_of_state_dicts_and_checkpoints(tmp_path):
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    F.cross_entropy(model(torch.tensor(_x())), torch.tensor([0, 1, 2, 3, 0])).backward()
    opt.step()
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "loss": 0.25, "note": "x", "shape": (1, 2), "none": None}, str(path))
    ck = torch.load(str(path))
    assert ck["epoch"] == 3 and ck["loss"] == 0.25 and ck["shape"] == (1, 2) and ck["none"] is None
    other = _net()
    other.load_state_dict(ck["model"])
    for (n, p), q in zip(model.state_dict().items(), other.state_dict().values()):
        assert np.array_equal(p.numpy(), q.numpy()), n
    assert ck["model"]["1.num_batches_tracked"].dtype == torch.int64
    opt2 = torch.optim.Adam(other.parameters(), lr=0.5)
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.state_dict()["state"][0]["step"].item() == 1.0
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    assert list(torch.load(buf)) == list(model.state_dict())


def test_save_refuses_code_and_load_refuses_foreign_files(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save an object of type Sequential at <root>.*save model.state_dict\(\)"):
        torch.save(_net(), str(tmp_path / "m.pt"))
    with pytest.raises(TypeError, match=r"cannot save an object of type function at /f"):
        torch.save({"f": lambda: 0}, str(tmp_path / "f.pt"))
    real_path = tmp_path / "real.pt"
    real_torch.save({"w": real_torch.ones(2)}, str(real_path))
    with pytest.raises(RuntimeError, match="is not a functorch_lite.torch.save file.*Checkpoints written by PyTorch are pickles"):
        torch.load(str(real_path))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="is not a functorch_lite.torch.save file"):
        torch.load(str(junk))


def test_params_trained_functionally_load_back_into_the_module():
    import optax
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    apply, params = torch.func.make_functional(model)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((16, 4)), jnp.float32)
    target = jnp.asarray(np.random.default_rng(1).standard_normal((16, 2)), jnp.float32)
    tx = optax.sgd(0.1)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(lambda q: jnp.mean((apply(q, x) - target) ** 2))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss
    first = None
    for _ in range(20):
        params, state, loss = step(params, state)
        first = first if first is not None else loss
    assert loss < first
    model.load_state_dict(params)                          # and back into the module
    assert_close(model(torch.tensor(np.asarray(x))), np.asarray(apply(params, x)))
