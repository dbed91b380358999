"""MNIST and Fashion-MNIST as uint8 numpy arrays, like ``keras.datasets.mnist.load_data()``.

Where the files are looked for, first hit wins (a directory counts when it holds all four files,
each either gzipped ``name.gz`` or raw ``name``):

* MNIST: ``data_dir``; ``$FUNCTORCH_LITE_DATA`` or its ``mnist/`` subdirectory; the copy bundled
  with the package; the cache ``$FUNCTORCH_LITE_CACHE/mnist`` (default
  ``~/.cache/functorch_lite/mnist``), which a download fills.
* Fashion-MNIST: ``data_dir``; ``$FUNCTORCH_LITE_DATA/fashion-mnist``; Debian's
  ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``); the cache.

An explicit ``data_dir`` is authoritative: missing files are downloaded into it (or reported
with ``download=False``), never silently taken from elsewhere. Every file is checked against
the SHA-256 of its decompressed bytes; downloads are also checked against the mirrors' MD5.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .idx import atomic_file, parse_idx, read_bytes

__all__ = ["load_mnist", "load_fashion_mnist", "download", "mnist_stats"]

mnist_stats = (0.1307, 0.3081)  # pixel mean and std of the training images after /255

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST_SHA256 = {  # of the decompressed files
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MD5 = {  # of the .gz files the mirrors serve
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"]

FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                   "data/fashion/"]

BUNDLED_MNIST = Path(__file__).parent / "data" / "mnist"
FASHION_SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
TIMEOUT_S = 60

# (realpath, mtime_ns, size) -> SHA-256 of the decompressed bytes, so a file is hashed once.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(mirrors, filename: str, dest_dir, md5: str | None = None) -> Path:
    """Fetch ``filename`` from the first mirror that serves it into ``dest_dir``; return its path.

    ``mirrors`` is a base URL or a list of them (``https://``, ``http://`` or ``file://``); the
    URL is ``mirror + filename``. With ``md5`` the bytes must match, else the next mirror is
    tried. The file appears atomically (temporary file, fsync, ``os.replace``) and an existing
    file with the right MD5 is kept as is.
    """
    mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    dest_dir = Path(dest_dir)
    dest = dest_dir / filename
    if dest.exists() and md5 is not None and _md5(dest) == md5:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += filename
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, atomic_file(dest) as f:
                h = hashlib.md5(usedforsecurity=False)
                for block in iter(lambda: r.read(1 << 20), b""):
                    h.update(block)
                    f.write(block)
                if md5 is not None and h.hexdigest() != md5:
                    raise DataError(f"MD5 {h.hexdigest()} != expected {md5}")
            return dest
        except (OSError, ValueError) as e:  # URLError is an OSError; DataError a ValueError
            failures.append(f"  {url}: {e}")
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise DataError(f"download: could not fetch '{filename}' into '{dest_dir}' from any "
                    f"mirror:\n{tried}\nHint: check the network, or copy the file there by "
                    "hand, or set $FUNCTORCH_LITE_DATA to a directory that holds it.")


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _complete(directory: Path) -> bool:
    return all(_find(directory, n) is not None for n in FILES)


def _cache_dir(name: str) -> Path:
    root = os.environ.get("FUNCTORCH_LITE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "functorch_lite"
    return base / name


def _read_verified(path: Path, sha256: dict) -> np.ndarray:
    data, label = read_bytes(path)
    expected = sha256.get(path.name.removesuffix(".gz"))
    if expected is not None:
        st = path.stat()
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
        actual = _DIGESTS.get(key) or hashlib.sha256(data).hexdigest()
        _DIGESTS[key] = actual
        if actual != expected:
            raise DataError(
                f"IDX file '{label}': SHA-256 of the decompressed data is {actual}, expected "
                f"{expected}\nHint: the file is corrupt or not the original dataset; delete it "
                "(a cached download is fetched again on the next load) or point "
                "$FUNCTORCH_LITE_DATA at a directory holding intact copies.")
    return parse_idx(data, label)


def _load(func: str, dataset: str, data_dir, download_ok: bool, *, env_subdirs, fallback_dirs,
          sha256, md5, mirrors):
    if data_dir is not None:
        directory = Path(data_dir)
        searched = [directory]
    else:
        env = os.environ.get("FUNCTORCH_LITE_DATA")
        candidates = [Path(env) / s for s in env_subdirs] if env else []
        candidates += [Path(d) for d in fallback_dirs]
        searched = candidates + [_cache_dir(dataset)]
        directory = next((d for d in candidates if _complete(d)), searched[-1])
    missing = [n for n in FILES if _find(directory, n) is None]
    if missing and not download_ok:
        where = ", ".join(f"'{d}'" for d in searched)
        raise DataError(
            f"{func}: {dataset} files {missing} not found (looked in {where}; each as name or "
            f"name.gz)\nHint: pass data_dir=, set $FUNCTORCH_LITE_DATA, or use download=True.")
    for n in missing:
        download(mirrors, f"{n}.gz", directory, md5.get(f"{n}.gz"))
    x_tr, y_tr, x_te, y_te = (_read_verified(_find(directory, n), sha256) for n in FILES)
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{func}: '{directory}' {split} images {x.shape} and labels "
                            f"{y.shape} do not pair up; expected (n, rows, cols) and (n,)\n"
                            "Hint: the directory mixes files of different datasets.")
    return (x_tr, y_tr), (x_te, y_te)


def load_mnist(data_dir=None, *, download: bool = True):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``: uint8 (60000, 28, 28), (60000,),
    (10000, 28, 28), (10000,)."""
    return _load("load_mnist", "mnist", data_dir, download, env_subdirs=("", "mnist"),
                 fallback_dirs=[BUNDLED_MNIST], sha256=MNIST_SHA256, md5=MNIST_MD5,
                 mirrors=MNIST_MIRRORS)


def load_fashion_mnist(data_dir=None, *, download: bool = True):
    """Fashion-MNIST, same layout as :func:`load_mnist` (labels: 0 T-shirt ... 9 ankle boot)."""
    return _load("load_fashion_mnist", "fashion-mnist", data_dir, download, env_subdirs=("fashion-mnist",),
                 fallback_dirs=FASHION_SYSTEM_DIRS, sha256=FASHION_SHA256, md5=FASHION_MD5,
                 mirrors=FASHION_MIRRORS)
