"""torch.optim against PyTorch 2.13: parameters after every step, state, param groups,
schedulers (learning rates and momentum per step, no recompilation), state dicts."""
import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
import functorch_lite.torch.optim as optim

RO = real_torch.optim


def _model(n):
    return n.Sequential(n.Linear(6, 8), n.Tanh(), n.Linear(8, 3))


def _data(k, seed=0):
    rng = np.random.default_rng(seed + k)
    return rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, 5)


def _pair():
    real_torch.manual_seed(0)
    real = _model(real_torch.nn)
    return real, copy_weights(real, _model(nn))


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.01, initial_accumulator_value=0.5)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizer_steps_match_pytorch(name, kw):
    real, ours = _pair()
    ro, oo = getattr(RO, name)(real.parameters(), **kw), getattr(optim, name)(ours.parameters(), **kw)
    for k in range(3):
        x, y = _data(k)
        ro.zero_grad()
        lr_ = RF_cross_entropy(real(real_torch.tensor(x)), real_torch.tensor(y))
        lr_.backward()
        ro.step()
        oo.zero_grad()
        lo = F.cross_entropy(ours(torch.tensor(x)), torch.tensor(y))
        lo.backward()
        oo.step()
        assert lo.item() == pytest.approx(lr_.item(), rel=1e-5, abs=1e-6)
        for (n, p), q in zip(ours.named_parameters(), real.parameters()):
            assert_close(p, q, atol=1e-5, rtol=1e-4)
    # the state tensors carry torch's names and values
    for p, q in zip(ours.parameters(), real.parameters()):
        ours_state, real_state = oo.state[p], ro.state[q]
        assert set(ours_state) == set(real_state)
        for key, v in real_state.items():
            if v is not None:
                assert_close(ours_state[key], v, atol=1e-5, rtol=1e-4)


def RF_cross_entropy(logits, labels):
    return real_torch.nn.functional.cross_entropy(logits, labels)


def test_param_groups_with_their_own_hyperparameters_and_skipped_params():
    real, ours = _pair()

    def groups(m, lib_params):
        ps = list(lib_params(m))
        return [{"params": ps[:2], "lr": 0.5, "momentum": 0.5}, {"params": ps[2:]}]
    ro = RO.SGD(groups(real, lambda m: m.parameters()), lr=0.1, momentum=0.9)
    oo = optim.SGD(groups(ours, lambda m: m.parameters()), lr=0.1, momentum=0.9)
    assert [g["lr"] for g in oo.param_groups] == [0.5, 0.1]
    assert oo.param_groups[1]["momentum"] == 0.9
    for k in range(3):
        x, y = _data(k)
        for mod, opt, lib, fn in ((real, ro, real_torch, real_torch.nn.functional), (ours, oo, torch, F)):
            opt.zero_grad()
            out = mod(lib.tensor(x))
            fn.cross_entropy(out, lib.tensor(y)).backward()
            if k == 1:  # a parameter without a gradient is skipped (its state does not advance)
                mod[2].bias.grad = None
            opt.step()
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p, q, atol=1e-5, rtol=1e-4)
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(oo.state[p]["momentum_buffer"], ro.state[q]["momentum_buffer"], atol=1e-5)


def test_unfused_step_with_concrete_gradients_matches_pytorch():
    real, ours = _pair()
    ro, oo = RO.Adam(real.parameters(), lr=0.05), optim.Adam(ours.parameters(), lr=0.05)
    for k in range(2):
        for p, q in zip(ours.parameters(), real.parameters()):
            g = np.random.default_rng(k).standard_normal(tuple(q.shape)).astype(np.float32)
            q.grad = real_torch.tensor(g)
            p.grad = torch.tensor(g)
        ro.step()
        oo.step()
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p, q, atol=1e-6)


def test_gradient_accumulation_over_two_backwards_matches_pytorch():
    real, ours = _pair()
    ro, oo = RO.SGD(real.parameters(), lr=0.1, momentum=0.9), optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    for mod, opt, lib, fn in ((real, ro, real_torch, real_torch.nn.functional), (ours, oo, torch, F)):
        opt.zero_grad()
        for k in range(2):
            x, y = _data(k)
            fn.cross_entropy(mod(lib.tensor(x)), lib.tensor(y)).backward()
        opt.step()
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p, q, atol=1e-5)


def test_zero_grad_and_closure():
    _, ours = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.1)
    x, y = _data(0)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(ours(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        return loss
    before = ours[0].weight.detach().numpy().copy()
    loss = opt.step(closure)
    assert loss.item() > 0 and not np.allclose(before, ours[0].weight.detach().numpy())
    opt.zero_grad()
    assert all(p.grad is None for p in ours.parameters())
    F.cross_entropy(ours(torch.tensor(x)), torch.tensor(y)).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad.abs().sum().item() == 0 for p in ours.parameters())


def test_optimizer_errors_are_pytorch_like():
    _, ours = _pair()
    with pytest.raises(ValueError, match="Invalid learning rate: -0.1"):
        optim.SGD(ours.parameters(), lr=-0.1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1 value: 1.0"):
        optim.Adam(ours.parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(ours.parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an iterable"):
        optim.Adam(ours[0].weight)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optim.SGD([{"params": [ours[0].weight]}, {"params": [ours[0].weight]}], lr=0.1)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([ours[0].weight * 2], lr=0.1)
    with pytest.raises(TypeError, match="optimizer parameters need to be organized in ordered collections"):
        optim.SGD({ours[0].weight}, lr=0.1)


def test_optimizer_state_dict_roundtrip_continues_identically():
    _, a = _pair()
    _, b = _pair()
    oa, ob = optim.Adam(a.parameters(), lr=0.01), optim.Adam(b.parameters(), lr=0.01)

    def step(m, o, k):
        x, y = _data(k)
        o.zero_grad()
        F.cross_entropy(m(torch.tensor(x)), torch.tensor(y)).backward()
        o.step()
    for k in range(2):
        step(a, oa, k)
    b.load_state_dict(a.state_dict())
    sd = oa.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    ob.load_state_dict(sd)
    step(a, oa, 5)
    step(b, ob, 5)
    for p, q in zip(a.parameters(), b.parameters()):
        assert_close(p, q, atol=0, rtol=0)
    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        ob.load_state_dict({"state": {}, "param_groups": []})


# ----------------------------------------------------------------------------- schedulers

SCHEDULERS = [
    ("StepLR", "SGD", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", "SGD", dict(milestones=[2, 5], gamma=0.1)),
    ("ExponentialLR", "Adam", dict(gamma=0.9)),
    ("CosineAnnealingLR", "SGD", dict(T_max=4, eta_min=0.001)),
    ("OneCycleLR", "SGD", dict(max_lr=0.5, total_steps=10)),
    ("OneCycleLR", "Adam", dict(max_lr=0.05, total_steps=10, anneal_strategy="linear", three_phase=True)),
    ("LambdaLR", "Adam", dict(lr_lambda=lambda e: 1.0 / (1 + e))),
]


@pytest.mark.parametrize("sched,opt,kw", SCHEDULERS, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(SCHEDULERS)])
def test_scheduler_matches_pytorch_without_recompiling(sched, opt, kw):
    real, ours = _pair()
    okw = dict(lr=0.1, momentum=0.9) if opt == "SGD" else dict(lr=0.01)
    ro, oo = getattr(RO, opt)(real.parameters(), **okw), getattr(optim, opt)(ours.parameters(), **okw)
    rs = getattr(RO.lr_scheduler, sched)(ro, **kw)
    os_ = getattr(optim.lr_scheduler, sched)(oo, **kw)
    compiles = []
    for k in range(9):
        x, y = _data(k)
        for mod, o, lib, fn in ((real, ro, real_torch, real_torch.nn.functional), (ours, oo, torch, F)):
            o.zero_grad()
            fn.cross_entropy(mod(lib.tensor(x)), lib.tensor(y)).backward()
            o.step()
        rs.step()
        os_.step()
        compiles.append(torch.compile_count())
        assert os_.get_last_lr() == pytest.approx(rs.get_last_lr(), rel=1e-12)
        for key in ("momentum", "betas"):
            if key in ro.param_groups[0]:
                assert oo.param_groups[0][key] == pytest.approx(ro.param_groups[0][key], rel=1e-12)
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p, q, atol=1e-5, rtol=1e-4)
    assert compiles[-1] == compiles[0], torch.compile_log().reasons[-3:]


def test_scheduler_errors():
    _, ours = _pair()
    o = optim.SGD(ours.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="int is not an Optimizer"):
        optim.lr_scheduler.StepLR(3, step_size=1)
    with pytest.raises(ValueError, match=r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"):
        optim.lr_scheduler.OneCycleLR(o, max_lr=0.1)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start, but got 2"):
        optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=5, pct_start=2)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum` option enabled"):
        optim.lr_scheduler.OneCycleLR(optim.Adagrad(ours.parameters()), max_lr=0.1, total_steps=5)
    s = optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of total steps is 2"):
        s.step()
