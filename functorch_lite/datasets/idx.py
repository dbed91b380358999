"""The IDX file format of MNIST-like datasets: a vectorised reader and a writer.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions, one uint32 per
dimension, then the data in C order. Files may be gzipped; the reader detects gzip by its magic
bytes, whatever the file is called.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import DataError, ShapeError

__all__ = ["read_idx", "write_idx"]

# IDX dtype code -> big-endian numpy dtype.
_CODES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"

_FIX = ("delete the file (a cached download is fetched again on the next load) or point "
        "$FUNCTORCH_LITE_DATA at a directory holding intact copies")


def _data_error(name: str, what: str) -> DataError:
    return DataError(f"IDX file '{name}': {what}\nHint: {_FIX}.")


def read_bytes(source) -> tuple[bytes, str]:
    """The decompressed bytes of a path or a bytes object, and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, name = bytes(source), "<bytes>"
    else:
        name = os.fspath(source)
        try:
            with open(name, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise DataError(f"IDX file '{name}': no such file\nHint: check the path, or let "
                            "the loader download the dataset (download=True).") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw, name
    try:
        return gzip.decompress(raw), name
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise _data_error(name, f"truncated or corrupt gzip data ({e})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX bytes into a native-endian array (a copy, so writable)."""
    if len(data) < 4:
        raise _data_error(name, f"expected at least a 4-byte header, got {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise _data_error(name, f"bad magic: expected the file to start with two zero bytes, "
                                f"got {data[:2].hex()} (not an IDX file)")
    code, ndim = data[2], data[3]
    if code not in _CODES:
        valid = ", ".join(f"0x{c:02X}" for c in _CODES)
        raise _data_error(name, f"unknown dtype code 0x{code:02X}; expected one of {valid}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _data_error(name, f"truncated header: {ndim} dimensions need {header} bytes, "
                                f"got {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = _CODES[code]
    count = int(np.prod(shape, dtype=np.int64))
    need = header + dtype.itemsize * count
    if len(data) != need:
        state = "truncated" if len(data) < need else "trailing garbage"
        raise _data_error(name, f"{state}: shape {shape} of {dtype.name} needs {need} bytes, "
                                f"got {len(data)}")
    flat = np.frombuffer(data, dtype, count, header) if count else np.zeros(0, dtype)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(source) -> np.ndarray:
    """Read an IDX file (a path, gzipped or not, or its bytes) into a numpy array."""
    data, name = read_bytes(source)
    return parse_idx(data, name)


@contextlib.contextmanager
def atomic_file(path):
    """Open a temporary file next to ``path``; on success fsync it and ``os.replace`` it over
    ``path``, on any exception remove it and leave ``path`` untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file at ``path`` (gzipped when the name ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in _CODES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(dt.name for dt in codes)
        raise ShapeError(f"write_idx: array dtype {array.dtype} has no IDX code; expected one "
                         f"of {names}\nHint: cast first, e.g. array.astype(np.int32).")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array, _CODES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    with atomic_file(path) as f:
        f.write(data)
    return path
