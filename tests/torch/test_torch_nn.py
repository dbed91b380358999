"""torch.nn layers against PyTorch 2.13 with the same weights: outputs, input gradients and
parameter gradients to 1e-5; initialisation; module registration, state dicts and errors."""
import math

import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F

R = real_torch.nn

# (id, factory(lib_nn), input shape, integer input?)
LAYERS = [
    ("linear", lambda n: n.Linear(7, 5), (4, 7)),
    ("linear_nobias_3d", lambda n: n.Linear(7, 5, bias=False), (2, 3, 7)),
    ("conv1d", lambda n: n.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 11)),
    ("conv2d", lambda n: n.Conv2d(3, 4, 3), (2, 3, 9, 8)),
    ("conv2d_stride_pad_dil", lambda n: n.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), (2, 2, 9, 9)),
    ("conv2d_groups", lambda n: n.Conv2d(4, 6, 3, groups=2, bias=False), (2, 4, 7, 7)),
    ("conv2d_same", lambda n: n.Conv2d(3, 2, 3, padding="same"), (2, 3, 6, 6)),
    ("maxpool2d", lambda n: n.MaxPool2d(2), (2, 3, 8, 8)),
    ("maxpool2d_overlap_pad", lambda n: n.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    ("maxpool2d_odd_floor", lambda n: n.MaxPool2d(2), (2, 3, 7, 7)),
    ("maxpool1d", lambda n: n.MaxPool1d(3, stride=2), (2, 3, 10)),
    ("avgpool2d", lambda n: n.AvgPool2d(2), (2, 3, 8, 8)),
    ("avgpool2d_pad", lambda n: n.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    ("avgpool2d_pad_exclude", lambda n: n.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 9)),
    ("adaptive_avgpool2d", lambda n: n.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    ("adaptive_avgpool2d_1", lambda n: n.AdaptiveAvgPool2d(1), (2, 3, 7, 5)),
    ("layernorm", lambda n: n.LayerNorm(6), (3, 4, 6)),
    ("layernorm_2d_noaffine", lambda n: n.LayerNorm((4, 6), elementwise_affine=False), (3, 4, 6)),
    ("relu", lambda n: n.ReLU(), (3, 5)),
    ("leaky_relu", lambda n: n.LeakyReLU(0.2), (3, 5)),
    ("gelu", lambda n: n.GELU(), (3, 5)),
    ("gelu_tanh", lambda n: n.GELU(approximate="tanh"), (3, 5)),
    ("elu", lambda n: n.ELU(), (3, 5)),
    ("silu", lambda n: n.SiLU(), (3, 5)),
    ("softplus", lambda n: n.Softplus(), (3, 5)),
    ("tanh", lambda n: n.Tanh(), (3, 5)),
    ("sigmoid", lambda n: n.Sigmoid(), (3, 5)),
    ("softmax", lambda n: n.Softmax(dim=1), (3, 5)),
    ("log_softmax", lambda n: n.LogSoftmax(dim=-1), (3, 5)),
    ("flatten", lambda n: n.Flatten(), (2, 3, 4)),
    ("identity", lambda n: n.Identity(), (2, 3)),
    ("dropout_eval", lambda n: n.Dropout(0.5).eval(), (3, 5)),
    ("sequential", lambda n: n.Sequential(n.Conv2d(1, 3, 3), n.ReLU(), n.MaxPool2d(2), n.Flatten(),
                                           n.Linear(27, 4), n.Tanh()), (2, 1, 8, 8)),
]


def _run(module, x_np, lib):
    x = lib.tensor(x_np, requires_grad=True)
    y = module(x)
    w = np.random.default_rng(7).standard_normal(tuple(y.shape)).astype(np.float32)
    (y * lib.tensor(w)).sum().backward()
    return y, x


@pytest.mark.parametrize("name,factory,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_pytorch_outputs_and_gradients(name, factory, shape):
    real_torch.manual_seed(0)
    real = factory(R)
    ours = copy_weights(real, factory(nn))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    yr, xr = _run(real, x, real_torch)
    y, xo = _run(ours, x, torch)
    assert_close(y, yr)
    assert_close(xo.grad, xr.grad)
    real_params = dict(real.named_parameters())
    for n, p in ours.named_parameters():
        assert_close(p.grad, real_params[n].grad, atol=1e-4)
    assert list(dict(ours.state_dict())) == list(real.state_dict())


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (8, 5, 3)),
                                       ("BatchNorm2d", (4, 3, 5, 5))])
def test_batchnorm_train_and_eval_match_pytorch(cls, shape):
    real = getattr(R, cls)(shape[1], momentum=0.2)
    ours = copy_weights(real, getattr(nn, cls)(shape[1], momentum=0.2))
    rng = np.random.default_rng(2)
    for step in range(3):  # running statistics accumulate over steps
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        yr, xr = _run(real, x, real_torch)
        y, xo = _run(ours, x, torch)
        assert_close(y, yr)
        assert_close(xo.grad, xr.grad, atol=1e-4)
        assert_close(ours.weight.grad, real.weight.grad, atol=1e-4)
        assert_close(ours.bias.grad, real.bias.grad, atol=1e-4)
        real.weight.grad = real.bias.grad = None
        ours.zero_grad()
    assert_close(ours.running_mean, real.running_mean)
    assert_close(ours.running_var, real.running_var)
    assert ours.num_batches_tracked.item() == real.num_batches_tracked.item() == 3
    assert not ours.running_mean.requires_grad
    real.eval(), ours.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    yr, xr = _run(real, x, real_torch)
    y, xo = _run(ours, x, torch)
    assert_close(y, yr)
    assert_close(xo.grad, xr.grad)
    assert list(ours.state_dict()) == list(real.state_dict())


def test_batchnorm_without_running_stats_uses_batch_statistics():
    real, ours = R.BatchNorm1d(4, track_running_stats=False), nn.BatchNorm1d(4, track_running_stats=False)
    copy_weights(real, ours)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    real.eval(), ours.eval()
    assert_close(ours(torch.tensor(x)), real(real_torch.tensor(x)))
    assert list(ours.state_dict()) == list(real.state_dict()) == ["weight", "bias"]


def test_embedding_matches_pytorch_with_padding_idx():
    real = R.Embedding(10, 4, padding_idx=2)
    ours = copy_weights(real, nn.Embedding(10, 4, padding_idx=2))
    ids = np.array([[1, 2, 5], [2, 9, 1]])
    yr = real(real_torch.tensor(ids))
    y = ours(torch.tensor(ids))
    assert_close(y, yr)
    w = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    (yr * real_torch.tensor(w)).sum().backward()
    (y * torch.tensor(w)).sum().backward()
    assert_close(ours.weight.grad, real.weight.grad)
    fresh = nn.Embedding(10, 4, padding_idx=2)
    assert fresh.weight[2].tolist() == [0.0] * 4
    plain = R.Embedding(6, 3)
    assert_close(copy_weights(plain, nn.Embedding(6, 3))(torch.tensor([0, 5])), plain(real_torch.tensor([0, 5])))


def test_dropout_train_zeroes_and_rescales_and_eval_is_identity():
    d = nn.Dropout(0.25)
    x = torch.ones(200, 100, requires_grad=True)
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.75) < 0.02
    vals = np.unique(y.detach().numpy())
    assert len(vals) == 2 and vals[0] == 0.0 and vals[1] == pytest.approx(1 / 0.75)
    y.sum().backward()
    assert_close(x.grad, (y != 0).float() / 0.75)
    other = d(torch.ones(200, 100))
    assert (other != y).any().item()  # a fresh mask every call
    d.eval()
    assert d(x) is x
    assert F.dropout(x, 0.5, training=False) is x


def test_default_initialisation_follows_pytorch_bounds():
    lin = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert w.shape == (200, 300) and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.002
    conv = nn.Conv2d(8, 16, 3)
    cb = 1 / math.sqrt(8 * 9)
    cw = conv.weight.detach().numpy()
    assert cw.shape == (16, 8, 3, 3) and np.abs(cw).max() <= cb and np.abs(cw).max() > 0.95 * cb
    emb = nn.Embedding(1000, 50).weight.detach().numpy()
    assert abs(emb.std() - 1) < 0.05
    ln = nn.LayerNorm(5)
    assert ln.weight.tolist() == [1.0] * 5 and ln.bias.tolist() == [0.0] * 5
    torch.manual_seed(5)
    a = nn.Linear(3, 3).weight.tolist()
    torch.manual_seed(5)
    assert nn.Linear(3, 3).weight.tolist() == a


def test_linear_shape_mismatch_names_the_module_and_both_shapes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(100, 10)

        def forward(self, x):
            return self.fc1(x)
    with pytest.raises(RuntimeError, match=r"Linear 'fc1': mat1 and mat2 shapes cannot be multiplied: "
                                           r"input of shape \(64, 784\) has last dim 784, expected "
                                           r"in_features=100 \(weight of shape \(10, 100\)\)"):
        Net()(torch.ones(64, 784))
    seq = nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="Linear '1': mat1 and mat2"):
        seq(torch.ones(2, 4))
    outer = nn.Sequential()
    outer.add_module("head", seq)
    with pytest.raises(nn.ModuleShapeError, match="Linear 'head.1'"):
        outer(torch.ones(2, 4))


def test_conv_channel_mismatch_names_module():
    net = nn.Sequential(nn.Conv2d(1, 4, 3))
    with pytest.raises(RuntimeError, match=r"Conv2d '0': Given groups=1, weight of size \[4, 1, 3, 3\], "
                                           r"expected input\[2, 3, 8, 8\] to have 1 channels, but got 3 "
                                           r"channels instead"):
        net(torch.ones(2, 3, 8, 8))
    with pytest.raises(RuntimeError, match=r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d"):
        F.conv2d(torch.ones(8, 8), torch.ones(4, 1, 3, 3))


def test_unbatched_conv_and_pool_inputs():
    conv = R.Conv2d(2, 3, 3)
    ours = copy_weights(conv, nn.Conv2d(2, 3, 3))
    x = np.random.default_rng(0).standard_normal((2, 6, 6)).astype(np.float32)
    assert_close(ours(torch.tensor(x)), conv(real_torch.tensor(x)))
    assert_close(F.max_pool2d(torch.tensor(x), 2), real_torch.nn.functional.max_pool2d(real_torch.tensor(x), 2))


def test_other_layer_errors():
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel size, but got pad=2, kernel_size=2"):
        F.max_pool2d(torch.ones(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(NotImplementedError, match="ceil_mode, return_indices, dilation and divisor_override are not supported"):
        nn.MaxPool2d(2, ceil_mode=True)(torch.ones(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match=r"BatchNorm2d: running_mean should contain 4 elements not 3"):
        nn.BatchNorm2d(3)(torch.ones(2, 4, 3, 3))
    with pytest.raises(RuntimeError, match=r"expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(torch.ones(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(torch.ones(1, 3))
    with pytest.raises(RuntimeError, match=r"LayerNorm: Given normalized_shape=\[5\], expected input with shape \[\*, 5\]"):
        nn.LayerNorm(5)(torch.ones(2, 4))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(NotImplementedError, match="padding_mode='reflect' is not supported"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices'"):
        nn.Embedding(3, 2)(torch.ones(2))
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(torch.ones(2), approximate="fast")


# ----------------------------------------------------------------------------- Module API

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 4)])
        self.register_buffer("scale", torch.ones(1))
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x):
        x = self.bn(self.conv(x)).flatten(1)[:, :8]
        for b in self.blocks:
            x = b(x)
        return self.head(x) * self.alpha * self.scale


def test_module_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["alpha", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "blocks.0.weight",
                     "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "head.1.weight", "head.1.bias"]
    assert len(list(net.parameters())) == 11
    assert [n for n, _ in net.named_buffers()] == ["scale", "bn.running_mean", "bn.running_var",
                                                   "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "blocks", "head"]
    assert len(list(net.modules())) == 9
    assert isinstance(net.blocks[1], nn.Linear) and len(net.blocks) == 2 and len(net.head) == 2
    assert net.get_submodule("head.1") is net.head[1]
    sd = net.state_dict()
    assert list(sd)[:3] == ["alpha", "scale", "conv.weight"]
    assert not any(v.requires_grad for v in sd.values())
    y = net(torch.randn(3, 1, 5, 5))
    assert y.shape == (3, 2)
    assert "(blocks): ModuleList(" in repr(net) and "(0): Linear(in_features=8, out_features=8, bias=True)" in repr(net)


def test_module_state_dict_keys_match_pytorch_for_the_same_architecture():
    def build(n):
        return n.Sequential(n.Conv2d(1, 4, 3), n.BatchNorm2d(4), n.ReLU(), n.Flatten(),
                            n.Linear(4 * 6 * 6, 10), n.LayerNorm(10), n.Embedding(3, 2))
    real, ours = build(R), build(nn)
    assert list(ours.state_dict()) == list(real.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in real.state_dict().values()]


def test_train_eval_zero_grad_and_requires_grad():
    net = Net()
    assert net.training and net.bn.training
    net.eval()
    assert not net.training and not net.head[1].training
    net.train()
    assert net.bn.training
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.to("cpu") is net and net.to(torch.device("cpu")) is net


def test_load_state_dict_roundtrip_and_torch_like_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 5, 5)
    a.eval(), b.eval()
    assert_close(a(x), b(x))
    sd = a.state_dict()
    sd.pop("alpha")
    sd["extra.weight"] = torch.ones(1)
    with pytest.raises(RuntimeError, match=r'Error\(s\) in loading state_dict for Net:\n\tMissing key\(s\) in state_dict: "alpha". \n\tUnexpected key\(s\) in state_dict: "extra.weight".'):
        b.load_state_dict(sd)
    result = b.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["alpha"] and result.unexpected_keys == ["extra.weight"]
    bad = a.state_dict()
    bad["head.1.weight"] = torch.ones(3, 4)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.1.weight: copying a param with shape torch.Size\(\[3, 4\]\) from checkpoint, the shape in current model is torch.Size\(\[2, 4\]\)."):
        b.load_state_dict(bad)


def test_load_pytorch_state_dict_gives_identical_outputs():
    def build(n):
        return n.Sequential(n.Conv2d(1, 4, 3), n.BatchNorm2d(4), n.ReLU(), n.MaxPool2d(2),
                            n.Flatten(), n.Linear(144, 10))
    real = build(R)
    real.train()
    real(real_torch.randn(8, 1, 14, 14))  # non-trivial running statistics
    real.eval()
    ours = copy_weights(real, build(nn)).eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 14, 14)).astype(np.float32)
    assert_close(ours(torch.tensor(x)), real(real_torch.tensor(x)))


def test_module_assignment_errors():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(torch.ones(1))
    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        Early()

    class EarlyModule(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(1, 1)
    with pytest.raises(AttributeError, match=r"cannot assign module before Module.__init__\(\) call"):
        EarlyModule()
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight' \(torch.nn.Parameter or None expected\)"):
        m.weight = torch.ones(2, 2)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        m.nope
    with pytest.raises(KeyError, match='module name can.{1,2}t contain "."'):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(torch.ones(1))
    with pytest.raises(TypeError, match="modules are not pickled; save model.state_dict"):
        import pickle
        pickle.dumps(m)


def test_init_functions():
    w = nn.Parameter(torch.empty(64, 32))
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / (64 + 32))
    assert np.abs(w.detach().numpy()).max() <= a and w.requires_grad
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.detach().numpy().std() - math.sqrt(2 / 32)) < 0.02
    nn.init.zeros_(w)
    assert w.abs().sum().item() == 0
    nn.init.constant_(w, 0.3)
    # every element is float32(0.3) (a float32 mean of them is not exactly 0.3: it rounds
    # differently with each CPU's reduction order, 0.2999996 on an AVX2 machine)
    assert np.all(w.detach().numpy() == np.float32(0.3))
    assert nn.init.calculate_gain("relu") == math.sqrt(2)
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        nn.init.calculate_gain("foo")


def test_clip_grad_norm_matches_pytorch():
    real = R.Linear(5, 3)
    ours = copy_weights(real, nn.Linear(5, 3))
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32) * 10
    real(real_torch.tensor(x)).pow(2).sum().backward()
    ours(torch.tensor(x)).pow(2).sum().backward()
    nr = real_torch.nn.utils.clip_grad_norm_(real.parameters(), 1.0)
    no = nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
    assert_close(no, nr, rtol=1e-5)
    assert_close(ours.weight.grad, real.weight.grad)


def _block(n, F_, torch_):
    class Block(n.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = n.Conv2d(3, 3, 3, padding=1)
            self.bn1 = n.BatchNorm2d(3)
            self.conv2 = n.Conv2d(3, 3, 3, padding=1, bias=False)
            self.bn2 = n.BatchNorm2d(3)
            self.head = n.Linear(12, 4)
            self.c1d = n.Conv1d(3, 2, 3)

        def forward(self, x):
            h = F_.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h)) * 0.5
            h = F_.relu(h + x)                       # residual: channels-last + channels-first
            h = F_.max_pool2d(h, 2) - 1.0
            feat = F_.adaptive_avg_pool2d(F_.avg_pool2d(h, 1), (2, 2))
            side = self.c1d(h.mean(dim=2)).sum(dim=(1, 2))
            return self.head(torch_.flatten(feat, 1)) + side[:, None], h
    return Block()


def test_channels_last_replay_of_conv_blocks_matches_pytorch():
    real_torch.manual_seed(0)
    real = _block(R, real_torch.nn.functional, real_torch)
    ours = copy_weights(real, _block(nn, F, torch))
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    for step in range(2):
        xr, xo = real_torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        (yr, hr), (yo, ho) = real(xr), ours(xo)
        (yr.pow(2).sum() + hr.sum()).backward()
        (yo.pow(2).sum() + ho.sum()).backward()
        assert_close(yo, yr, atol=1e-4)
        assert_close(ho, hr, atol=1e-5)                # an intermediate returned to the user
        assert_close(xo.grad, xr.grad, atol=1e-4)
        for (name, p), q in zip(ours.named_parameters(), real.parameters()):
            assert_close(p.grad, q.grad, atol=1e-3, rtol=1e-4)
        for name, b in ours.named_buffers():
            assert_close(b, dict(real.named_buffers())[name], atol=1e-5)
        ours.zero_grad()
        real.zero_grad()


def _flat_head(n, torch_, how):
    class FlatHead(n.Module):
        def __init__(self):
            super().__init__()
            self.conv = n.Conv2d(2, 3, 3, padding=1)
            features = 3 * 3 * (8 if how == "pool_2x1" else 4)
            self.fc = n.Linear(features, 5)
            self.fc_io = n.Linear(features, 2, bias=False)
            self.flatten = n.Flatten()

        def forward(self, x):
            h = torch_.nn.functional.max_pool2d(torch_.relu(self.conv(x)),
                                                (2, 1) if how == "pool_2x1" else 2)
            if how == "view":
                flat = h.view(h.size(0), -1)
            elif how == "module":
                flat = self.flatten(h)
            else:
                flat = torch_.flatten(h, 1)
            flat = torch_.tanh(flat) * 2.0
            # a second Linear, and the flattened value read by other ops and returned
            return self.fc(flat) + (flat @ self.fc_io.weight.t()).sum(1, keepdim=True), flat
    return FlatHead()


@pytest.mark.parametrize("how", ["flatten", "view", "module", "pool_2x1"])
def test_flatten_of_a_channels_last_value_into_linear_matches_pytorch(how):
    """torch/layout.py: the ways PyTorch code flattens a conv's (channels-last inside) value
    before a Linear; values, gradients and the flattened tensor itself are PyTorch's (NCHW
    order), the flattened value also read by a matmul and returned."""
    real_torch.manual_seed(0)
    real = _flat_head(R, real_torch, how)
    ours = copy_weights(real, _flat_head(nn, torch, how))
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 8)).astype(np.float32)
    xr, xo = real_torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (yr, fr), (yo, fo) = real(xr), ours(xo)
    (yr.pow(2).sum() + (fr * fr[:, :1]).sum()).backward()
    (yo.pow(2).sum() + (fo * fo[:, :1]).sum()).backward()
    assert_close(yo, yr, atol=1e-5)
    assert_close(fo, fr, atol=1e-6)
    assert_close(xo.grad, xr.grad, atol=1e-5)
    for (name, p), q in zip(ours.named_parameters(), real.parameters()):
        assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-5)


def test_deepcopy_of_a_module_is_independent():
    import copy
    net = Net()
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    twin = copy.deepcopy(net)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in net.named_parameters()]
    assert twin.blocks[0].weight is not net.blocks[0].weight and twin.blocks[0].weight.requires_grad
    assert_close(twin.blocks[0].weight.grad, net.blocks[0].weight.grad)
    with torch.no_grad():
        twin.blocks[0].weight.mul_(0)
    assert net.blocks[0].weight.abs().sum().item() > 0
    twin.eval()
    assert net.training and not twin.training
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    twin(torch.randn(2, 1, 5, 5)).sum().backward()
    opt.step()                                             # the copy trains on its own
    with pytest.raises(RuntimeError, match="Only Tensors created explicitly by the user"):
        copy.deepcopy(net.alpha * 2)
