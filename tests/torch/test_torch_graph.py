"""The recorded graph: laziness, one compiled call per training step, the compile cache (no
recompiles after the first step, one for a partial batch), materialisation, backward
semantics (seeds, accumulation, freed graphs) and the guards against unbounded graphs."""
import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
import functorch_lite.torch.optim as optim
from functorch_lite.torch import graph
from functorch_lite.torch.utils.data import DataLoader, TensorDataset


def _mlp(n=nn):
    return n.Sequential(n.Linear(4, 16), n.ReLU(), n.Linear(16, 3))


def _dataset(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return TensorDataset(torch.tensor(rng.standard_normal((n, 4)).astype(np.float32)),
                         torch.tensor(rng.integers(0, 3, n)))


def _train_step(model, opt, data, target):
    opt.zero_grad()
    output = model(data)
    loss = F.cross_entropy(output, target)
    loss.backward()
    opt.step()
    return output, loss


def test_ops_are_lazy_under_autograd_and_eager_otherwise():
    w = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(2, 3)
    assert x._node.value is not None                     # factories are concrete
    y = x @ w
    assert y._node.value is None and y.requires_grad      # recorded
    z = x * 2
    assert z._node.value is not None                      # no grad involved: eager
    with torch.no_grad():
        v = x @ w
        assert v._node.value is not None and not v.requires_grad
        u = y * 2                                         # a lazy input keeps it lazy
        assert u._node.value is None and not u.requires_grad
    assert u.sum().item() == pytest.approx(2 * (x.numpy() @ w.detach().numpy()).sum(), rel=1e-5)


def test_a_training_step_is_one_compiled_call_and_never_recompiles():
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(_dataset(96), batch_size=32, shuffle=True)
    log = torch.compile_log()
    runs, counts, losses = [], [], []
    for epoch in range(2):
        for data, target in loader:
            _, loss = _train_step(model, opt, data, target)
            runs.append(log.runs)
            counts.append(log.count)
            losses.append(loss.item())                     # reuses the step's value
            runs[-1] = (runs[-1], log.runs)
    first = counts[0]
    assert all(c == first for c in counts), log.reasons[-3:]
    assert all(after == before for before, after in runs)  # .item() ran nothing
    assert [b - a for (a, _), (b, _) in zip(runs, runs[1:])] == [1] * (len(runs) - 1)
    assert log.reasons[-1].startswith("step:")
    assert losses[-1] < losses[0]


def test_partial_last_batch_costs_one_extra_compile_then_none():
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(_dataset(100), batch_size=32)
    assert len(loader) == 4
    log = torch.compile_log()
    start = log.count
    for data, target in loader:
        _train_step(model, opt, data, target)
    assert log.count - start == 2
    assert "(32,) int32 -> input (4,) int32" in log.reasons[-1]   # the batch's row indices
    for data, target in loader:
        _train_step(model, opt, data, target)
    assert log.count - start == 2


def test_loss_item_after_backward_reuses_the_backward_value():
    model = _mlp()
    data, target = _dataset(8)[:]
    log = torch.compile_log()
    loss = F.cross_entropy(model(data), target)
    loss.backward()
    before = (log.count, log.runs)
    value = loss.item()
    after = (log.count, log.runs)
    assert after[1] == before[1] + 1        # the pending backward ran once ...
    assert loss.item() == value and (log.count, log.runs) == after  # ... and nothing more
    assert all(p.grad._node.value is not None for p in model.parameters())


def test_recorded_values_are_captured_when_recorded_not_when_run():
    torch.manual_seed(0)
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.5)
    data, target = _dataset(8)[:]
    with torch.no_grad():
        expected = model(data).numpy()
    output, _ = _train_step(model, opt, data, target)   # params change in the same call
    assert_close(output.detach(), expected)
    with torch.no_grad():
        assert not np.allclose(model(data).numpy(), expected)


def test_training_matches_pytorch_through_the_fused_step():
    real_torch.manual_seed(0)
    real = _mlp(real_torch.nn)
    ours = copy_weights(real, _mlp())
    ro, oo = real_torch.optim.SGD(real.parameters(), lr=0.1, momentum=0.9), optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    ds = _dataset(64)
    x, y = ds.tensors[0].numpy(), ds.tensors[1].numpy().astype(np.int64)
    for i in range(4):
        xb, yb = x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
        ro.zero_grad()
        lr_ = real_torch.nn.functional.cross_entropy(real(real_torch.tensor(xb)), real_torch.tensor(yb))
        lr_.backward()
        ro.step()
        _, lo = _train_step(ours, oo, torch.tensor(xb), torch.tensor(yb))
        assert lo.item() == pytest.approx(lr_.item(), rel=1e-5)
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p, q)


def test_backward_with_gradient_argument_and_input_gradients_match_pytorch():
    x_np = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    g_np = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    x, xr = torch.tensor(x_np, requires_grad=True), real_torch.tensor(x_np, requires_grad=True)
    (x.tanh() * 3).backward(torch.tensor(g_np))
    (xr.tanh() * 3).backward(real_torch.tensor(g_np))
    assert_close(x.grad, xr.grad)


def test_backward_errors_are_pytorch_like():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (w * 2).backward()
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does not have a grad_fn"):
        torch.ones(2).sum().backward()
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of torch.Size\(\[2\]\) and output\[0\] has a shape of torch.Size\(\[3\]\)"):
        (w * 2).backward(torch.ones(2))
    with pytest.raises(NotImplementedError, match="backward\\(create_graph=True\\) is not supported"):
        (w * 2).sum().backward(create_graph=True)


def test_second_backward_needs_retain_graph_and_gradients_accumulate():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    wr = real_torch.tensor([1.0, 2.0], requires_grad=True)
    loss, loss_r = (w ** 3).sum(), (wr ** 3).sum()
    loss.backward(retain_graph=True)
    loss_r.backward(retain_graph=True)
    loss.backward()
    loss_r.backward()
    assert_close(w.grad, wr.grad)                         # 2 x 3 w^2
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        loss.backward()
    (w * 5).sum().backward()                              # a new graph is fine
    assert_close(w.grad, wr.grad.numpy() + 5)


def test_materialising_in_the_middle_keeps_gradients_exact():
    real_torch.manual_seed(0)
    real = _mlp(real_torch.nn)
    ours = copy_weights(real, _mlp())
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    h = ours[1](ours[0](torch.tensor(x)))
    assert "grad_fn=<ReluBackward0>" in repr(h)           # printing materialises h ...
    ours[2](h).pow(2).mean().backward()                   # ... and backward still reaches fc0
    real(real_torch.tensor(x)).pow(2).mean().backward()
    for p, q in zip(ours.parameters(), real.parameters()):
        assert_close(p.grad, q.grad)


def test_python_control_flow_on_values():
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    y = (w * 3).sum()
    branch = "pos" if y > 0 else "neg"
    assert branch == "neg"
    z = y * 2 if bool((w > 0).any()) else y
    z.backward()
    assert w.grad.tolist() == [6.0, 6.0]


def test_dropout_inside_the_compiled_step_draws_new_masks_without_recompiling():
    model = nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.5), nn.Linear(64, 1))
    opt = optim.SGD(model.parameters(), lr=0.0)
    x = torch.randn(8, 4)
    log = torch.compile_log()
    outs, counts = [], []
    for _ in range(4):
        opt.zero_grad()
        out = model(x)
        out.sum().backward()
        opt.step()
        outs.append(out.detach().numpy())
        counts.append(log.count)
    assert log.reasons[-1].startswith("step:") and counts[1:] == counts[:-1]  # compiled once
    assert not np.allclose(outs[1], outs[2])
    torch.manual_seed(1)
    a = model(x).detach().numpy()
    torch.manual_seed(1)
    assert np.array_equal(a, model(x).detach().numpy())   # seeded


def test_batchnorm_statistics_join_the_step_and_recalibration_loops_stay_bounded():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(_dataset(96), batch_size=32)
    log = torch.compile_log()
    runs = log.runs
    for data, target in loader:
        _train_step(model, opt, data, target)
    assert log.runs - runs == 3                            # statistics computed inside the steps
    assert model[1].num_batches_tracked.item() == 3
    counts = []
    with torch.no_grad():
        for data, _ in loader:                             # forward only: nothing asks for a value
            model(data)
            assert model[1].running_mean._node.value is None
            counts.append(log.count)
    assert model[1].num_batches_tracked.item() == 6
    assert counts[1] == counts[2] == log.count           # flushed at each batch: one graph


def test_graph_growth_without_materialisation_is_cut(monkeypatch):
    monkeypatch.setattr(graph, "MAX_PENDING", 50)
    w = torch.ones(3, requires_grad=True)
    total = torch.zeros(())
    runs = torch.compile_log().runs
    for _ in range(200):
        total = total + (w * 2).sum()
    assert torch.compile_log().runs > runs
    assert total.item() == pytest.approx(1200.0)


def test_recompile_reasons_name_what_changed():
    w = torch.ones(4, 2, requires_grad=True)
    (torch.ones(3, 4) @ w).sum().backward()
    (torch.ones(5, 4) @ w).sum().backward()
    w.grad.sum().item()
    assert "(3, 4) float32 -> input (5, 4) float32" in " ".join(torch.compile_log().reasons[-3:])


def test_chains_of_cheap_view_ops_are_cut_too(monkeypatch):
    monkeypatch.setattr(graph, "MAX_PENDING", 30)
    x = next(iter(DataLoader(_dataset(8), batch_size=8)))[0]
    for _ in range(100):
        x = x.view(4, 8).view(8, 4)
    depth, n = 0, x._node
    while n.value is None and n.inputs:
        n, depth = n.inputs[0], depth + 1
    assert depth <= 62
    assert x.shape == (8, 4) and x.sum().item() == pytest.approx(_dataset(8).tensors[0].sum().item())


def test_cross_entropy_checks_indexed_targets_through_their_source_once():
    # the familiar loop's ``target = targets[idx]``: reading each batch would wait for the
    # previous (queued) training step; the whole targets tensor is checked once instead
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = _dataset(64).tensors
    F._RANGE_CHECKED.clear()
    for i in range(2):
        idx = torch.tensor(np.arange(i * 16, (i + 1) * 16))
        _train_step(model, opt, xs[idx], ys[idx])
    assert list(F._RANGE_CHECKED) == [id(ys._node.value)]


def test_rows_of_a_concrete_tensor_are_gathered_inside_the_training_step():
    # the familiar in-memory loop: ``idx = perm[i:i + b]; data, target = xs[idx], ys[idx]``; the
    # batch is a lazy selection that the one compiled step computes (no separate dispatch
    # per step, no compile per slice), and training matches batches built on the host
    xs, ys = _dataset(64).tensors
    x_np, y_np = xs.numpy(), ys.numpy()
    order = np.random.default_rng(1).permutation(64)
    perm = torch.from_numpy(order)
    model, twin = _mlp(), _mlp()
    twin.load_state_dict(model.state_dict())
    opt, opt2 = optim.Adam(model.parameters(), lr=1e-2), optim.Adam(twin.parameters(), lr=1e-2)
    log = torch.compile_log()
    runs, steps = [], log.by_kind.get("step", 0)
    for epoch in range(2):
        for i in range(4):
            idx = perm[i * 16:(i + 1) * 16]
            data, target = xs[idx], ys[idx]
            assert data._node.value is None and target._node.value is None
            start = log.runs
            _train_step(model, opt, data, target)
            runs.append(log.runs - start)
            sel = order[i * 16:(i + 1) * 16]
            _train_step(twin, opt2, torch.tensor(x_np[sel]), torch.tensor(y_np[sel]))
    assert runs == [1] * 8
    assert log.by_kind.get("step", 0) - steps <= 2   # one each: lazy batches, host batches
    for p, q in zip(model.parameters(), twin.parameters()):
        assert_close(p, q, atol=1e-6, rtol=1e-6)
    assert np.array_equal(data.numpy(), x_np[order[48:]])   # still readable after the step


def _adam_steps(model, opt, n, x, y, hold=None):
    for _ in range(n):
        if hold is not None:
            hold.append((model[0].weight.detach(), opt.state_dict()))
        _train_step(model, opt, x, y)


def test_the_fused_step_consumes_its_own_buffers_and_copies_what_anything_else_holds(monkeypatch):
    x, y = _dataset(32).tensors
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    consumed = []
    owned = graph._owned

    def spy(params, state):
        p2, s2 = owned(params, state)
        consumed.append(all(a is b for a, b in zip(params, p2)) and
                        all(s[k] is t[k] for s, t in zip(state, s2) for k in s))
        return p2, s2
    monkeypatch.setattr(graph, "_owned", spy)
    _adam_steps(model, opt, 3, x, y)
    # the initial weights are the user's (copied); then the step's own outputs, held by
    # nothing else, are donated as they are
    assert consumed == [False, True, True]

    # whatever a user keeps (a detached weight, an optimizer state_dict, a numpy view) stays
    # readable and correct, nothing recompiles, and the numbers equal an unaliased twin's
    twin = copy_weights(model, _mlp())
    twin_opt = optim.Adam(twin.parameters(), lr=1e-2)
    twin_opt.load_state_dict(opt.state_dict())
    log = torch.compile_log()
    log.reset()
    held, views = [], []
    _adam_steps(model, opt, 3, x, y, hold=held)
    views.append((model[2].bias.detach().numpy(), model[2].bias.detach().numpy().copy()))
    _adam_steps(model, opt, 1, x, y)
    _adam_steps(twin, twin_opt, 4, x, y)
    assert consumed[3:6] == [False] * 3 and log.by_kind == {}, log.reasons
    for (w, sd), (w_next, _) in zip(held, held[1:]):
        assert np.isfinite(sd["state"][0]["exp_avg"].numpy()).all()
        assert not np.array_equal(w.numpy(), w_next.numpy())   # each a different step's value
    np.testing.assert_array_equal(*views[0])
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_deep_copied_or_replicated_model_keeps_its_weights_while_the_original_trains():
    import copy
    x, y = _dataset(32).tensors
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    _adam_steps(model, opt, 2, x, y)
    snapshot = copy.deepcopy(model)               # shares the arrays of the trained weights
    expected = [p.detach().numpy().copy() for p in snapshot.parameters()]
    _adam_steps(model, opt, 2, x, y)
    for p, e in zip(snapshot.parameters(), expected):
        np.testing.assert_array_equal(p.detach().numpy(), e)
