"""MNIST / Fashion-MNIST lookup, checksums and downloads (file:// URLs, no network)."""
import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from functorch_lite.core.errors import DataError
from functorch_lite.datasets import download, load_fashion_mnist, load_mnist, mnist_stats
from functorch_lite.datasets import mnist as M
from functorch_lite.datasets import write_idx

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
README = Path(M.__file__).parent / "data" / "README.md"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No user data dir, and a cache that is empty and private to the test."""
    monkeypatch.delenv("FUNCTORCH_LITE_DATA", raising=False)
    monkeypatch.setenv("FUNCTORCH_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(M, "MNIST_MIRRORS", [])
    monkeypatch.setattr(M, "FASHION_MIRRORS", [])


def make_fake(directory, *, seed=0, n=(6, 4), gz=True):
    """Four small MNIST-shaped IDX files; returns the arrays and {name: sha256, name.gz: md5}."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (n[0], 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n[0], dtype=np.uint8),
              rng.integers(0, 256, (n[1], 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n[1], dtype=np.uint8)]
    sha, md5 = {}, {}
    for name, a in zip(FILES, arrays):
        path = write_idx(directory / (f"{name}.gz" if gz else name), a)
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        sha[name] = hashlib.sha256(raw).hexdigest()
        md5[f"{name}.gz"] = hashlib.md5(path.read_bytes()).hexdigest()
    return arrays, sha, md5


def assert_loaded(result, arrays):
    (x_tr, y_tr), (x_te, y_te) = result
    for got, want in zip((x_tr, y_tr, x_te, y_te), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the real bundled MNIST
def test_bundled_mnist():
    (x_tr, y_tr), (x_te, y_te) = load_mnist(download=False)
    assert (x_tr.shape, y_tr.shape, x_te.shape, y_te.shape) == \
        ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert {a.dtype for a in (x_tr, y_tr, x_te, y_te)} == {np.dtype(np.uint8)}
    assert np.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                          5851, 5949]
    assert np.bincount(y_te).sum() == 10000 and y_te.max() == 9
    assert (y_tr[0], y_te[0]) == (5, 7)  # the famous first digits of each split
    counts = np.bincount(x_tr.ravel(), minlength=256)  # exact moments from a histogram
    v = np.arange(256) / 255
    mean = (counts * v).sum() / counts.sum()
    std = np.sqrt((counts * v**2).sum() / counts.sum() - mean**2)
    assert abs(mean - mnist_stats[0]) < 5e-5 and abs(std - mnist_stats[1]) < 5e-5


def test_bundled_checksums_match_readme():
    """The module's table equals the README's, and the bundled files hash to it."""
    table = dict((name, digest) for digest, name in
                 re.findall(r"^\s+([0-9a-f]{64})\s+(\S+)$", README.read_text(), re.M))
    assert table == M.MNIST_SHA256 and len(table) == 4
    for name, digest in table.items():
        raw = gzip.decompress((M.BUNDLED_MNIST / f"{name}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest


# ---------------------------------------------------------------- lookup order
def test_env_dir_beats_bundled(tmp_path, monkeypatch):
    arrays, sha, _ = make_fake(tmp_path / "data")
    monkeypatch.setattr(M, "MNIST_SHA256", sha)
    monkeypatch.setenv("FUNCTORCH_LITE_DATA", str(tmp_path / "data"))
    assert_loaded(load_mnist(download=False), arrays)


def test_env_mnist_subdir_and_raw_files(tmp_path, monkeypatch):
    arrays, sha, _ = make_fake(tmp_path / "data" / "mnist", gz=False)
    monkeypatch.setattr(M, "MNIST_SHA256", sha)
    monkeypatch.setenv("FUNCTORCH_LITE_DATA", str(tmp_path / "data"))
    assert_loaded(load_mnist(download=False), arrays)


def test_explicit_dir_beats_env(tmp_path, monkeypatch):
    env_arrays, sha_env, _ = make_fake(tmp_path / "env", seed=1)
    arrays, sha, _ = make_fake(tmp_path / "mine", seed=2)
    monkeypatch.setattr(M, "MNIST_SHA256", {})  # no table: both sets are acceptable
    monkeypatch.setenv("FUNCTORCH_LITE_DATA", str(tmp_path / "env"))
    assert_loaded(load_mnist(tmp_path / "mine", download=False), arrays)
    assert_loaded(load_mnist(download=False), env_arrays)


def test_incomplete_env_dir_falls_back_to_bundled(tmp_path, monkeypatch):
    make_fake(tmp_path / "data")
    (tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("FUNCTORCH_LITE_DATA", str(tmp_path / "data"))
    (x_tr, _), _ = load_mnist(download=False)
    assert x_tr.shape == (60000, 28, 28)


def test_not_found_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "BUNDLED_MNIST", tmp_path / "none")
    with pytest.raises(DataError, match=r"load_mnist: mnist files \['train-images-idx3-ubyte', "
                                        r".*\] not found \(looked in '.*none', '.*cache.mnist'"
                                        r".*\nHint: pass data_dir=, set \$FUNCTORCH_LITE_DATA, "
                                        r"or use download=True"):
        load_mnist(download=False)


def test_explicit_dir_is_authoritative(tmp_path):
    make_fake(tmp_path / "mine")
    (tmp_path / "mine" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"\['train-labels-idx1-ubyte'\] not found \(looked in "
                                        r"'.*mine'; each as name or name.gz\)"):
        load_mnist(tmp_path / "mine", download=False)


def test_unpaired_files(tmp_path, monkeypatch):
    make_fake(tmp_path / "a", n=(6, 4))
    make_fake(tmp_path / "b", n=(5, 4))
    (tmp_path / "b" / "train-labels-idx1-ubyte.gz").replace(
        tmp_path / "a" / "train-labels-idx1-ubyte.gz")
    monkeypatch.setattr(M, "MNIST_SHA256", {})
    with pytest.raises(DataError, match=r"train images \(6, 28, 28\) and labels \(5,\) do not "
                                        r"pair up.*\nHint: the directory mixes files"):
        load_mnist(tmp_path / "a", download=False)


# ---------------------------------------------------------------- checksums
def test_checksum_mismatch(tmp_path, monkeypatch):
    _, sha, _ = make_fake(tmp_path / "d")
    wrong = dict(sha, **{"t10k-images-idx3-ubyte": "0" * 64})
    monkeypatch.setattr(M, "MNIST_SHA256", wrong)
    with pytest.raises(DataError, match=rf"IDX file '.*t10k-images-idx3-ubyte\.gz': SHA-256 of "
                                        rf"the decompressed data is {sha['t10k-images-idx3-ubyte']}"
                                        rf", expected 0{{64}}\nHint: .*delete it"):
        load_mnist(tmp_path / "d", download=False)


def test_changed_file_is_hashed_again(tmp_path, monkeypatch):
    arrays, sha, _ = make_fake(tmp_path / "d")
    monkeypatch.setattr(M, "MNIST_SHA256", sha)
    assert_loaded(load_mnist(tmp_path / "d", download=False), arrays)
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte.gz", np.zeros(6, np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz': SHA-256"):
        load_mnist(tmp_path / "d", download=False)


# ---------------------------------------------------------------- downloads over file://
def test_download_file_url(tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    write_idx(src / "x.idx.gz", np.arange(5, dtype=np.uint8))
    md5 = hashlib.md5((src / "x.idx.gz").read_bytes()).hexdigest()
    path = download(src.as_uri(), "x.idx.gz", tmp_path / "dest", md5)
    assert path == tmp_path / "dest" / "x.idx.gz"
    assert path.read_bytes() == (src / "x.idx.gz").read_bytes()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["x.idx.gz"]
    # already there with the right MD5: kept, no mirror needed
    assert download([], "x.idx.gz", tmp_path / "dest", md5) == path


def test_download_first_mirror_fails(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "f.bin").write_bytes(b"payload")
    md5 = hashlib.md5(b"payload").hexdigest()
    mirrors = [(tmp_path / "missing").as_uri() + "/", (tmp_path / "good").as_uri()]
    path = download(mirrors, "f.bin", tmp_path / "dest", md5)
    assert path.read_bytes() == b"payload"


def test_download_wrong_md5(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.bin").write_bytes(b"payload")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "f.bin").write_bytes(b"old")
    actual = hashlib.md5(b"payload").hexdigest()
    with pytest.raises(DataError, match=rf"download: could not fetch 'f.bin' into '.*dest' from "
                                        rf"any mirror:\n  file://.*m/f.bin: MD5 {actual} != "
                                        rf"expected 0{{32}}\nHint: check the network"):
        download((tmp_path / "m").as_uri(), "f.bin", tmp_path / "dest", "0" * 32)
    # the old file is untouched and no temporary file is left behind
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["f.bin"]
    assert (tmp_path / "dest" / "f.bin").read_bytes() == b"old"


def test_download_no_mirror_works(tmp_path):
    with pytest.raises(DataError, match=r"from any mirror:\n  file://.*nowhere/f.bin: .*\n  "
                                        r"nonsense/f.bin: "):
        download([(tmp_path / "nowhere").as_uri(), "nonsense"], "f.bin", tmp_path / "d")


def test_load_mnist_downloads_into_cache(tmp_path, monkeypatch):
    arrays, sha, md5 = make_fake(tmp_path / "mirror")
    monkeypatch.setattr(M, "BUNDLED_MNIST", tmp_path / "no-bundle")
    monkeypatch.setattr(M, "MNIST_SHA256", sha)
    monkeypatch.setattr(M, "MNIST_MD5", md5)
    monkeypatch.setattr(M, "MNIST_MIRRORS", [(tmp_path / "gone").as_uri(),
                                             (tmp_path / "mirror").as_uri()])
    assert_loaded(load_mnist(), arrays)
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(f"{n}.gz" for n in FILES)
    monkeypatch.setattr(M, "MNIST_MIRRORS", [])  # second load: from the cache only
    assert_loaded(load_mnist(download=False), arrays)


def test_download_into_explicit_dir_checks_md5(tmp_path, monkeypatch):
    _, _, md5 = make_fake(tmp_path / "mirror")
    monkeypatch.setattr(M, "MNIST_MD5", dict(md5, **{"t10k-labels-idx1-ubyte.gz": "f" * 32}))
    monkeypatch.setattr(M, "MNIST_MIRRORS", [(tmp_path / "mirror").as_uri()])
    with pytest.raises(DataError, match=r"could not fetch 't10k-labels-idx1-ubyte.gz' into "
                                        r"'.*mine'(?s:.*)MD5 .* != expected f{32}"):
        load_mnist(tmp_path / "mine")


# ---------------------------------------------------------------- Fashion-MNIST
def test_fashion_env_subdir_beats_system_dir(tmp_path, monkeypatch):
    arrays, sha, _ = make_fake(tmp_path / "data" / "fashion-mnist", seed=3)
    make_fake(tmp_path / "system", seed=4)
    monkeypatch.setattr(M, "FASHION_SHA256", sha)
    monkeypatch.setattr(M, "FASHION_SYSTEM_DIRS", [tmp_path / "system"])
    monkeypatch.setenv("FUNCTORCH_LITE_DATA", str(tmp_path / "data"))
    assert_loaded(load_fashion_mnist(download=False), arrays)


def test_fashion_system_dir_and_checksum(tmp_path, monkeypatch):
    arrays, sha, _ = make_fake(tmp_path / "system", seed=4)
    monkeypatch.setattr(M, "FASHION_SYSTEM_DIRS", [tmp_path / "system"])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz': SHA-256 .* expected "
                                        r"c59f468a"):
        load_fashion_mnist(download=False)  # the real table rejects the fake files
    monkeypatch.setattr(M, "FASHION_SHA256", sha)
    assert_loaded(load_fashion_mnist(download=False), arrays)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs apt package dataset-fashion-mnist")
def test_real_fashion_mnist_from_debian():
    (x_tr, y_tr), (x_te, y_te) = load_fashion_mnist(download=False)
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28)
    assert x_tr.dtype == y_tr.dtype == np.uint8
    assert np.bincount(y_tr).tolist() == [6000] * 10  # balanced by construction
    assert np.bincount(y_te).tolist() == [1000] * 10
