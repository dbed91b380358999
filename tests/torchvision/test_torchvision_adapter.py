"""functorch_lite.torchvision: MNIST/FashionMNIST datasets (bundled, root layouts, offline
errors) and the ToTensor / Normalize / Compose transforms (per sample and batched)."""
import numpy as np
import pytest

import functorch_lite.datasets.mnist as fl_mnist
import functorch_lite.torch as torch
from functorch_lite.datasets import write_idx
from functorch_lite.torch.utils.data import DataLoader
from functorch_lite.torchvision import datasets, transforms

real_torch = pytest.importorskip("torch")

MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist_test():
    return datasets.MNIST("../data", train=False, download=False)


def test_mnist_is_served_from_the_bundled_files_offline(mnist_test):
    train = datasets.MNIST("/nonexistent/root", train=True, download=False)
    assert len(train) == 60000 and len(mnist_test) == 10000
    img, label = mnist_test[0]
    assert isinstance(img, np.ndarray) and img.shape == (28, 28) and img.dtype == np.uint8
    assert isinstance(label, int) and label == 7           # the first t10k digit is a 7
    assert mnist_test.data.shape == (10000, 28, 28) and mnist_test.data.dtype == torch.uint8
    assert mnist_test.targets.dtype == torch.int64 and mnist_test.targets[:3].tolist() == [7, 2, 1]
    assert mnist_test.classes[7] == "7 - seven" and mnist_test.class_to_idx["0 - zero"] == 0
    assert "Number of datapoints: 10000" in repr(mnist_test) and "Split: Test" in repr(mnist_test)


def test_transforms_match_the_torch_formula(mnist_test):
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    ds = datasets.MNIST(None, train=False, transform=tf)
    x, y = ds[5]
    img = real_torch.tensor(mnist_test[5][0]).float().div(255).unsqueeze(0)
    expected = (img - MEAN) / STD
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), expected.numpy(), atol=1e-6)
    assert y == mnist_test[5][1]


def test_batched_loader_equals_per_sample_transforms():
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    ds = datasets.MNIST(None, train=False, transform=tf)
    loader = DataLoader(ds, batch_size=16)
    data, target = next(iter(loader))
    assert data.shape == (16, 1, 28, 28) and data.dtype == torch.float32 and target.dtype == torch.int64
    for i in (0, 7, 15):
        x, y = ds[i]
        np.testing.assert_allclose(data[i].numpy(), x.numpy(), atol=1e-6)
        assert target[i].item() == y
    torch.manual_seed(0)
    shuffled = np.concatenate([t.numpy() for _, t in DataLoader(ds, batch_size=1000, shuffle=True)])
    assert sorted(shuffled.tolist()) == sorted(ds.targets.tolist())


def test_lambda_transform_falls_back_to_per_sample_collation():
    ds = datasets.MNIST(None, train=False,
                        transform=transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda t: t * 2)]))
    assert ds._fl_arrays() is None
    data, target = next(iter(DataLoader(ds, batch_size=4)))
    assert data.shape == (4, 1, 28, 28) and target.tolist() == [7, 2, 1, 0]
    assert data.max().item() == pytest.approx(2.0)


def test_root_in_torchvision_layout_is_used(tmp_path):
    import shutil
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in fl_mnist.BUNDLED_MNIST.glob("*.gz"):
        shutil.copy(f, raw / f.name)
    ds = datasets.MNIST(str(tmp_path), train=False)
    assert len(ds) == 10000 and ds[0][1] == 7


def test_root_files_are_authoritative(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("t10k", 3)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    # the local files do not carry MNIST's checksums: the loader must say so, not use others
    with pytest.raises(RuntimeError, match="Dataset not found. You can use download=True to download it"):
        datasets.MNIST(str(tmp_path), train=True, download=False)


def test_fashion_mnist_offline_without_files_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTORCH_LITE_CACHE", str(tmp_path))
    monkeypatch.delenv("FUNCTORCH_LITE_DATA", raising=False)
    monkeypatch.setattr(fl_mnist, "FASHION_SYSTEM_DIRS", [])
    with pytest.raises(RuntimeError, match=r"Dataset not found. You can use download=True to download it \(load_fashion_mnist: fashion-mnist files"):
        datasets.FashionMNIST(str(tmp_path / "root"), train=False, download=False)


def test_to_tensor_and_normalize_single_samples():
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)    # HWC
    t = transforms.ToTensor()(img)
    assert t.shape == (3, 2, 2) and t.numpy()[1, 0, 1] == pytest.approx(4 / 255)
    f = transforms.ToTensor()(np.full((2, 2), 0.5, np.float32))  # floats are not rescaled
    assert f.shape == (1, 2, 2) and f.numpy().max() == 0.5
    n = transforms.Normalize((0.5, 0.0, 1.0), (0.5, 1.0, 2.0))(t)
    expected = (t.numpy() - np.array([0.5, 0.0, 1.0])[:, None, None]) / np.array([0.5, 1.0, 2.0])[:, None, None]
    np.testing.assert_allclose(n.numpy(), expected, atol=1e-6)
    assert "Normalize(mean=(0.5, 0.0, 1.0)" in repr(transforms.Compose([transforms.Normalize((0.5, 0.0, 1.0), (0.5, 1.0, 2.0))]))


def test_transform_errors():
    with pytest.raises(ValueError, match="std evaluated to zero after conversion to float32, leading to division by zero"):
        transforms.Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="ToTensor: pic should be 2 or 3 dimensional. Got 1 dimensions."):
        transforms.ToTensor()(np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"Expected tensor to be a tensor image of size \(..., C, H, W\)"):
        transforms.Normalize((0.5,), (0.5,))(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"Normalize: mean \(0.5, 0.5\) and std \(1.0, 1.0\) need 1 or 3 values for 3 channels"):
        transforms.Normalize((0.5, 0.5), (1.0, 1.0))(torch.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="Argument lambd should be callable, got 'int'"):
        transforms.Lambda(3)
