"""Losses (modules and ``nn.functional``) against PyTorch 2.13: values and input gradients
for every reduction, class weights, ignore_index, label smoothing; and their errors."""
import numpy as np
import pytest
from torch_helpers import assert_close, real_torch

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F

RF = real_torch.nn.functional


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((6, 5)).astype(np.float32) * 2
    labels = rng.integers(0, 5, 6)
    labels[1] = 3
    return logits, labels


CASES = [
    ("ce_mean", lambda f, x, y, t: f.cross_entropy(x, y)),
    ("ce_sum", lambda f, x, y, t: f.cross_entropy(x, y, reduction="sum")),
    ("ce_none", lambda f, x, y, t: f.cross_entropy(x, y, reduction="none")),
    ("ce_weight", lambda f, x, y, t: f.cross_entropy(x, y, weight=t.tensor([1.0, 2.0, 0.5, 1.5, 3.0]))),
    ("ce_ignore_index", lambda f, x, y, t: f.cross_entropy(x, t.where(y == 3, -100, y))),
    ("ce_ignore_weight_sum", lambda f, x, y, t: f.cross_entropy(x, t.where(y == 3, 7, y), ignore_index=7,
                                                              weight=t.tensor([1.0, 2.0, 0.5, 1.5, 3.0]),
                                                              reduction="sum")),
    ("ce_label_smoothing", lambda f, x, y, t: f.cross_entropy(x, y, label_smoothing=0.1)),
    ("ce_smoothing_weight", lambda f, x, y, t: f.cross_entropy(x, y, label_smoothing=0.2,
                                                             weight=t.tensor([1.0, 2.0, 0.5, 1.5, 3.0]))),
    ("ce_probabilities", lambda f, x, y, t: f.cross_entropy(x, f.softmax(x * 0.3, dim=1).detach())),
    ("ce_spatial", lambda f, x, y, t: f.cross_entropy(x.view(2, 5, 3), y.view(2, 3))),
    ("nll_mean", lambda f, x, y, t: f.nll_loss(f.log_softmax(x, dim=1), y)),
    ("nll_sum_weight", lambda f, x, y, t: f.nll_loss(f.log_softmax(x, 1), y, reduction="sum",
                                                     weight=t.tensor([1.0, 2.0, 0.5, 1.5, 3.0]))),
    ("nll_none_ignore", lambda f, x, y, t: f.nll_loss(x, y, ignore_index=3, reduction="none")),
    ("mse", lambda f, x, y, t: f.mse_loss(x, x.detach() * 0.5 + 1)),
    ("mse_sum", lambda f, x, y, t: f.mse_loss(x, x.detach().flip(0), reduction="sum")),
    ("l1", lambda f, x, y, t: f.l1_loss(x, x.detach().flip(1))),
    ("l1_none", lambda f, x, y, t: f.l1_loss(x, x.detach() * 0.3, reduction="none")),
    ("smooth_l1", lambda f, x, y, t: f.smooth_l1_loss(x, x.detach().flip(0), beta=0.5)),
    ("bce_logits", lambda f, x, y, t: f.binary_cross_entropy_with_logits(x, (x.detach() > 0).float())),
    ("bce_logits_pos_weight", lambda f, x, y, t: f.binary_cross_entropy_with_logits(
        x, (x.detach() > 0.3).float(), pos_weight=t.tensor([1.0, 2.0, 3.0, 0.5, 1.0]), reduction="sum")),
    ("bce_logits_weight_none", lambda f, x, y, t: f.binary_cross_entropy_with_logits(
        x, t.sigmoid(x.detach() * 2), weight=t.tensor([1.0, 2.0, 3.0, 0.5, 1.0]), reduction="none")),
    ("bce", lambda f, x, y, t: f.binary_cross_entropy(t.sigmoid(x), (x.detach() > 0).float())),
]


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_functional_loss_matches_pytorch(name, fn):
    logits, labels = _inputs()
    x, xr = torch.tensor(logits, requires_grad=True), real_torch.tensor(logits, requires_grad=True)
    y, yr = torch.tensor(labels), real_torch.tensor(labels)
    ours, theirs = fn(F, x, y, torch), fn(RF, xr, yr, real_torch)
    w = np.random.default_rng(3).standard_normal(tuple(theirs.shape)).astype(np.float32)
    (ours * torch.tensor(w)).sum().backward()
    (theirs * real_torch.tensor(w)).sum().backward()
    assert_close(ours, theirs)
    assert_close(x.grad, xr.grad)


MODULES = [
    ("CrossEntropyLoss", dict(), "labels"),
    ("CrossEntropyLoss", dict(reduction="sum", label_smoothing=0.05), "labels"),
    ("NLLLoss", dict(reduction="none"), "labels"),
    ("MSELoss", dict(), "float"),
    ("L1Loss", dict(reduction="sum"), "float"),
    ("SmoothL1Loss", dict(), "float"),
    ("BCEWithLogitsLoss", dict(), "binary"),
]


@pytest.mark.parametrize("cls,kw,target", MODULES, ids=[f"{c[0]}-{i}" for i, c in enumerate(MODULES)])
def test_loss_modules_match_pytorch(cls, kw, target):
    logits, labels = _inputs(1)
    tgt = {"labels": labels, "float": logits[::-1].copy() * 0.5,
           "binary": (logits > 0).astype(np.float32)}[target]
    x, xr = torch.tensor(logits, requires_grad=True), real_torch.tensor(logits, requires_grad=True)
    ours = getattr(nn, cls)(**kw)(x, torch.tensor(tgt))
    theirs = getattr(real_torch.nn, cls)(**kw)(xr, real_torch.tensor(tgt))
    ours.sum().backward()
    theirs.sum().backward()
    assert_close(ours, theirs)
    assert_close(x.grad, xr.grad)


def test_class_weight_is_a_buffer_of_the_module():
    crit = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0]))
    assert [n for n, _ in crit.named_buffers()] == ["weight"]
    assert nn.CrossEntropyLoss().weight is None


def test_loss_errors_are_pytorch_like():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"Expected input batch_size \(4\) to match target batch_size \(3\)."):
        F.cross_entropy(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.nll_loss(x, torch.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(RuntimeError, match=r"cross_entropy: expected target of integer dtype \(class indices, torch.long\), got torch.float32"):
        F.cross_entropy(x, torch.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(RuntimeError, match=r"nll_loss: expected target of shape \[4\] \(class indices\) for input of shape \[4, 3\], got \[4, 1\]"):
        F.nll_loss(x, torch.tensor([[0], [1], [2], [0]]))
    with pytest.raises(ValueError, match=r"Target size \(torch.Size\(\[4\]\)\) must be the same as input size \(torch.Size\(\[4, 1\]\)\)"):
        F.binary_cross_entropy_with_logits(torch.randn(4, 1), torch.ones(4))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        F.cross_entropy(x, torch.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="class-probability targets must be floating point"):
        F.cross_entropy(x, torch.ones(4, 3, dtype=torch.long))


def test_mse_with_different_shapes_broadcasts_and_warns_like_torch():
    x = torch.randn(4, 1)
    t = torch.randn(4)
    with pytest.warns(UserWarning, match="Using a target size"):
        ours = F.mse_loss(x, t)
    with pytest.warns(UserWarning, match="Using a target size"):
        theirs = RF.mse_loss(real_torch.tensor(x.numpy()), real_torch.tensor(t.numpy()))
    assert_close(ours, theirs)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="mse_loss: The size of tensor a"):
        F.mse_loss(torch.randn(4, 3), torch.randn(4, 2))


def test_functional_layers_match_pytorch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    t, r = torch.tensor(x), real_torch.tensor(x)
    assert_close(F.conv2d(t, torch.tensor(w), torch.tensor(b), stride=2, padding=1),
                 RF.conv2d(r, real_torch.tensor(w), real_torch.tensor(b), stride=2, padding=1))
    lw = rng.standard_normal((5, 8)).astype(np.float32)
    assert_close(F.linear(t, torch.tensor(lw)), RF.linear(r, real_torch.tensor(lw)))
    assert_close(F.avg_pool2d(t, 2), RF.avg_pool2d(r, 2))
    assert_close(F.max_pool2d(t, 3, 1, 1), RF.max_pool2d(r, 3, 1, 1))
    assert_close(F.adaptive_avg_pool2d(t, (3, 3)), RF.adaptive_avg_pool2d(r, (3, 3)))
    assert_close(F.layer_norm(t, (8, 8)), RF.layer_norm(r, (8, 8)))
    assert_close(F.normalize(t, dim=1), RF.normalize(r, dim=1))
    assert_close(F.pad(t, (1, 2, 0, 1), value=3.0), RF.pad(r, (1, 2, 0, 1), value=3.0))
    assert_close(F.one_hot(torch.tensor([0, 2, 1])), RF.one_hot(real_torch.tensor([0, 2, 1])))
    assert_close(F.softplus(t, beta=2.0, threshold=1.0), RF.softplus(r, beta=2.0, threshold=1.0))
    assert_close(F.leaky_relu(t, 0.3), RF.leaky_relu(r, 0.3))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(48x8 and 7x5\)"):
        F.linear(t, torch.tensor(lw[:, :7]))
