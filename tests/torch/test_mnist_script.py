"""A PyTorch MNIST training script (the structure of pytorch/examples mnist/main.py) whose only
difference between PyTorch and functorch_lite is its import lines.

The same script text runs on real PyTorch 2.13 and on functorch_lite.torch with identical
initial weights and batches (3 SGD and 3 Adam steps compared), and trains one epoch on the
bundled MNIST to >= 98% test accuracy (slow test).
"""
import functools
import sys
import types

import numpy as np
import pytest
from torch_helpers import assert_close, copy_weights, real_torch

IMPORTS_PYTORCH = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms
"""

IMPORTS_FUNCTORCH_LITE = """\
import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
import functorch_lite.torch.optim as optim
from functorch_lite.torch.optim.lr_scheduler import StepLR
from functorch_lite.torchvision import datasets, transforms
"""

SCRIPT = '''
import argparse


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, 1)
        self.conv2 = nn.Conv2d(16, 32, 5, 1)
        self.fc1 = nn.Linear(512, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    losses = []
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break
    return losses


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.2f}%)\\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    return correct / len(test_loader.dataset)


def main(argv=None):
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch-size', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--no-cuda', action='store_true', default=False)
    parser.add_argument('--dry-run', action='store_true', default=False)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=200)
    parser.add_argument('--save-model', default=None)
    args = parser.parse_args(argv)
    use_cuda = not args.no_cuda and torch.cuda.is_available()

    torch.manual_seed(args.seed)

    device = torch.device("cuda" if use_cuda else "cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_cuda:
        cuda_kwargs = {'num_workers': 1, 'pin_memory': True, 'shuffle': True}
        train_kwargs.update(cuda_kwargs)
        test_kwargs.update(cuda_kwargs)
    train_kwargs['shuffle'] = True

    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,))
        ])
    dataset1 = datasets.MNIST('../data', train=True, download=False, transform=transform)
    dataset2 = datasets.MNIST('../data', train=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        accuracy = test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), args.save_model)
    return accuracy
'''


def _namespace(imports, monkeypatch=None):
    ns = {"__name__": "mnist_script"}
    exec(compile(imports + SCRIPT, "mnist_script.py", "exec"), ns)
    return ns


@pytest.fixture
def pytorch_script(monkeypatch):
    """The script on real PyTorch. torchvision is not installed here and the parity steps do not
    use it, so an empty stand-in satisfies the import line."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            stub = types.ModuleType("torchvision")
            stub.datasets, stub.transforms = types.ModuleType("datasets"), types.ModuleType("transforms")
            monkeypatch.setitem(sys.modules, "torchvision", stub)
    return _namespace(IMPORTS_PYTORCH)


@pytest.fixture
def our_script():
    return _namespace(IMPORTS_FUNCTORCH_LITE)


def test_the_two_scripts_differ_only_in_import_lines():
    a, b = IMPORTS_PYTORCH.splitlines(), IMPORTS_FUNCTORCH_LITE.splitlines()
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.split()[0] in ("import", "from") and y.split()[0] == x.split()[0]
        assert y.replace("functorch_lite.", "").replace("import torch as torch", "import torch") == x
    assert SCRIPT.count("import") == 1  # the body imports nothing but argparse


@functools.lru_cache(maxsize=1)
def _mnist():
    from functorch_lite.datasets import load_mnist
    return load_mnist()[0]


def _batches(n_batches, batch_size=64):
    x, y = _mnist()
    x = ((x[: n_batches * batch_size].astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]
    y = y[: n_batches * batch_size].astype(np.int64)
    return [(x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size])
            for i in range(n_batches)]


class _Loader(list):
    """A list of batches with the attributes the script's train() reads."""

    def __init__(self, batches, dataset_len):
        super().__init__(batches)
        self.dataset = range(dataset_len)


@pytest.mark.parametrize("opt,kw,tol", [("SGD", dict(lr=0.05, momentum=0.5), 1e-5),
                                        ("Adam", dict(lr=1e-3), 1e-4)])
def test_script_steps_match_pytorch_with_identical_weights_and_batches(pytorch_script, our_script,
                                                                        opt, kw, tol):
    import functorch_lite.torch as flt
    real_torch.manual_seed(1)
    real_model = pytorch_script["Net"]()
    our_model = copy_weights(real_model, our_script["Net"]())
    batches = _batches(3)
    real_loader = _Loader([[real_torch.tensor(x), real_torch.tensor(y)] for x, y in batches], 192)
    our_loader = _Loader([[flt.tensor(x), flt.tensor(y)] for x, y in batches], 192)
    args = types.SimpleNamespace(log_interval=1, dry_run=False)
    real_opt = getattr(real_torch.optim, opt)(real_model.parameters(), **kw)
    our_opt = getattr(flt.optim, opt)(our_model.parameters(), **kw)
    real_losses = pytorch_script["train"](args, real_model, real_torch.device("cpu"), real_loader, real_opt, 1)
    our_losses = our_script["train"](args, our_model, flt.device("cpu"), our_loader, our_opt, 1)
    np.testing.assert_allclose(our_losses, real_losses, rtol=tol, atol=tol)
    real_params = dict(real_model.named_parameters())
    for name, p in our_model.named_parameters():
        assert_close(p, real_params[name], atol=tol, rtol=tol)
    # and the script's evaluation agrees on the same weights
    real_acc = pytorch_script["test"](real_model, real_torch.device("cpu"), _Loader(real_loader[:2], 128))
    our_acc = our_script["test"](our_model, flt.device("cpu"), _Loader(our_loader[:2], 128))
    assert our_acc == real_acc


@pytest.mark.slow
def test_script_trains_one_epoch_to_98_percent(our_script, tmp_path, capsys):
    import functorch_lite.torch as flt
    compiles = flt.compile_count()
    accuracy = our_script["main"](["--epochs", "1", "--save-model", str(tmp_path / "mnist_cnn.pt")])
    out = capsys.readouterr().out
    assert "Train Epoch: 1 [0/60000 (0%)]" in out and "Test set: Average loss" in out
    assert accuracy >= 0.98, out[-300:]
    # one compile for the training step, one for the epoch's partial last batch, one per
    # evaluation graph: nothing per step
    assert flt.compile_count() - compiles <= 6, flt.compile_log().reasons
    state = flt.load(str(tmp_path / "mnist_cnn.pt"))
    assert list(state) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                           "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
