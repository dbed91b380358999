"""The torch adapter's training graph run in pieces of the minibatch (torch/chunks.py): the same
loss, gradients, update and outputs as the whole batch, including graphs with ops that mix the
batch in the middle (they get the pieces joined first)."""
import numpy as np
import pytest

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
from functorch_lite.torch import chunks, graph

_RUN = chunks.run_in_pieces


class Net(nn.Module):
    def __init__(self, mix=False, bn=False):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else None
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.shift = nn.Parameter(torch.zeros(5))
        self.mix = mix

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        if self.bn is not None:
            x = self.bn(x)
        if self.mix:                       # mixes the batch: must see the whole batch
            x = x - x.mean(0, keepdim=True)
        x = torch.flatten(x, 1) * 0.5 + 1.0
        return self.fc(x) + self.shift


def _train(monkeypatch, pieces, **kw):
    monkeypatch.setenv("FUNCTORCH_LITE_TRAIN_CHUNKS", str(pieces))
    monkeypatch.setattr(graph, "_CACHE", {})
    split = []
    monkeypatch.setattr(chunks, "run_in_pieces", lambda *a: split.append(a[-1]) or _RUN(*a))
    torch.manual_seed(0)
    model = Net(**kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    xs = torch.from_numpy(rng.standard_normal((24, 1, 8, 8)).astype(np.float32))
    ys = torch.from_numpy(rng.integers(0, 5, 24))
    perm = torch.from_numpy(rng.permutation(24))
    losses = []
    for i in range(2):
        idx = perm[i * 12:(i + 1) * 12]
        opt.zero_grad()
        out = model(xs[idx])
        loss = F.cross_entropy(out, ys[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in model.parameters()], \
        out.detach().numpy(), split


@pytest.mark.parametrize("mix", [False, True])
def test_pieces_give_the_whole_batchs_training(monkeypatch, mix):
    l1, p1, o1, s1 = _train(monkeypatch, 1, mix=mix)
    l3, p3, o3, s3 = _train(monkeypatch, 3, mix=mix)
    assert s1 == [] and s3 and set(s3) == {3}
    np.testing.assert_allclose(l1, l3, rtol=1e-6)
    np.testing.assert_allclose(o1, o3, rtol=1e-5, atol=1e-6)
    for a, b in zip(p1, p3):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_batchnorm_graph_stays_whole(monkeypatch):
    *_, split = _train(monkeypatch, 3, bn=True)
    assert split == []


def test_per_example_ops():
    n, piece = 12, 4
    a = np.zeros((piece, 3, 2), np.float32)
    assert chunks._per_example("relu", {}, [a], [True], n, piece)
    assert chunks._per_example("add", {}, [a, np.zeros((2,))], [True, False], n, piece)
    assert not chunks._per_example("add", {}, [a, np.zeros((n, 3, 2))], [True, False], n, piece)
    assert chunks._per_example("reshape", {"shape": (n, 6)}, [a], [True], n, piece)
    assert chunks._per_example("reshape", {"shape": (-1, 6)}, [a], [True], n, piece)
    assert not chunks._per_example("reshape", {"shape": (n * 3, 2)}, [a], [True], n, piece)
    assert not chunks._per_example("sum_", {"dim": 0}, [a], [True], n, piece)
