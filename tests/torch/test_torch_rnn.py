"""nn.RNN / nn.LSTM / nn.GRU (over the core's recurrent layers) against PyTorch 2.13 with the
same weights: outputs, final states, gradients, initial states, layouts and errors."""
import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn

CASES = [
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(batch_first=True, bias=False)),
    ("GRU", dict(num_layers=2)),
    ("GRU", dict(batch_first=True, bidirectional=True)),
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
]


def _flat(out):
    y, h = out
    return [y] + (list(h) if isinstance(h, tuple) else [h])


@pytest.mark.parametrize("cls,kw", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_recurrent_layers_match_pytorch(cls, kw, with_hx):
    real_torch.manual_seed(0)
    real = getattr(real_torch.nn, cls)(3, 5, **kw)
    ours = copy_weights(real, getattr(nn, cls)(3, 5, **kw))
    assert list(ours.state_dict()) == list(real.state_dict())
    rng = np.random.default_rng(1)
    shape = (2, 6, 3) if kw.get("batch_first") else (6, 2, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    hx = None
    if with_hx:
        hs = [rng.standard_normal((layers, 2, 5)).astype(np.float32) for _ in range(2 if cls == "LSTM" else 1)]
        hx = (tuple(hs), tuple(hs)) if cls == "LSTM" else (hs[0], hs[0])
    xr, xo = real_torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    args_r = () if hx is None else ((tuple(real_torch.tensor(h) for h in hx[0]) if cls == "LSTM" else real_torch.tensor(hx[0])),)
    args_o = () if hx is None else ((tuple(torch.tensor(h) for h in hx[1]) if cls == "LSTM" else torch.tensor(hx[1])),)
    outs_r, outs_o = _flat(real(xr, *args_r)), _flat(ours(xo, *args_o))
    w = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outs_r]
    sum((o * real_torch.tensor(c)).sum() for o, c in zip(outs_r, w)).backward()
    sum((o * torch.tensor(c)).sum() for o, c in zip(outs_o, w)).backward()
    for a, b in zip(outs_o, outs_r):
        assert_close(a, b)
    assert_close(xo.grad, xr.grad)
    real_params = dict(real.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, real_params[name].grad, atol=1e-4)


def test_unbatched_input_and_initialisation():
    real = real_torch.nn.GRU(3, 4)
    ours = copy_weights(real, nn.GRU(3, 4))
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    yo, ho = ours(torch.tensor(x))
    yr, hr = real(real_torch.tensor(x))
    assert yo.shape == (7, 4) and ho.shape == (1, 4)
    assert_close(yo, yr)
    assert_close(ho, hr)
    lstm = nn.LSTM(10, 64)
    w = lstm.weight_ih_l0.detach().numpy()
    assert w.shape == (256, 10) and np.abs(w).max() <= 1 / 8 and np.abs(w).max() > 0.95 / 8
    assert "LSTM(10, 64)" in repr(lstm)


def test_dropout_between_layers_only_in_training():
    m = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(4, 2, 3)
    m.eval()
    a, b = m(x)[0], m(x)[0]
    assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c, d = m(x)[0], m(x)[0]
    assert not np.array_equal(c.detach().numpy(), d.detach().numpy())


def test_recurrent_errors():
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 3, got 4"):
        nn.LSTM(3, 5)(torch.ones(2, 1, 4))
    with pytest.raises(RuntimeError, match=r"GRU: Expected hidden size \(1, 2, 5\), got \(1, 3, 5\)"):
        nn.GRU(3, 5)(torch.ones(4, 2, 3), torch.zeros(1, 3, 5))
    with pytest.raises(RuntimeError, match="input must have 2 dimensions \\(unbatched\\) or 3 dimensions"):
        nn.RNN(3, 5)(torch.ones(3))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'."):
        nn.RNN(3, 5, nonlinearity="gelu")
    with pytest.raises(NotImplementedError, match=r"LSTM\(proj_size=2\) is not supported"):
        nn.LSTM(3, 5, proj_size=2)
