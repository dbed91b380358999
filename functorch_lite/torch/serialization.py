"""``torch.save`` / ``torch.load`` for state dicts: an ``.npz`` of arrays plus a JSON layout.

Only data is stored (nested dicts/lists/tuples of tensors, arrays, numbers, strings, None); no
code is pickled, so loading a file can never run anything.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib

import jax
import numpy as np

from ..core.errors import CheckpointError
from ..datasets.idx import atomic_file
from . import dtypes as _dt
from .tensor import Tensor

__all__ = ["save", "load"]

_LAYOUT = "__functorch_lite_torch_layout__"


def _encode(obj, arrays, path):
    if isinstance(obj, Tensor):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj._value())
        return {"tensor": key, "dtype": obj.dtype.name,
                **({"param": True} if type(obj).__name__ == "Parameter" else {})}
    if isinstance(obj, (np.ndarray, jax.Array)):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj)
        return {"ndarray": key}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return {"int": int(obj)}
    if isinstance(obj, (float, np.floating)):
        return {"float": repr(float(obj))}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"torch.save: dict keys must be str or int, got {type(k).__name__} "
                                f"at {path or '<root>'}")
            items.append([k, _encode(v, arrays, f"{path}/{k}")])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, _dt.dtype):
        return {"dtype": obj.name}
    hint = (" (save model.state_dict() and rebuild the model from code)"
            if hasattr(obj, "state_dict") else "")
    raise TypeError(f"torch.save: cannot save an object of type {type(obj).__name__} at "
                    f"{path or '<root>'}; functorch_lite.torch saves only state dicts (nested "
                    f"dicts/lists of tensors, numbers and strings), never pickled code{hint}")


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Write ``obj`` (a state dict or a nest of them) to a path or a binary file object.  A path
    is written atomically: on any error (a full disk, Ctrl-C) a previous file stays intact."""
    arrays: dict = {}
    layout = _encode(obj, arrays, "")
    arrays[_LAYOUT] = np.asarray(json.dumps(layout))
    if isinstance(f, (str, os.PathLike)):
        with atomic_file(f) as fh:   # temp file, fsync, rename: a failed save keeps the old file
            _write_npz(fh, arrays)
    else:
        _write_npz(f, arrays)


def _write_npz(f, arrays):
    np.savez(f, **arrays)


def _decode(node, arrays):
    if node is None or isinstance(node, (bool, str)):
        return node
    if "tensor" in node:
        t = Tensor._from(arrays[node["tensor"]], _dt.as_torch_dtype(node["dtype"]))
        if node.get("param"):
            from .nn.module import Parameter
            return Parameter(t)
        return t
    if "ndarray" in node:
        return arrays[node["ndarray"]]
    if "int" in node:
        return node["int"]
    if "float" in node:
        return float(node["float"])
    if "dict" in node:
        return {k: _decode(v, arrays) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    if "dtype" in node:
        return _dt.as_torch_dtype(node["dtype"])
    raise LoadError(f"torch.load: corrupt layout entry {node!r}")


class LoadError(CheckpointError, RuntimeError):
    """``torch.load`` of a damaged file or one of another format (a RuntimeError for torch code,
    a CheckpointError for functorch_lite)."""


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """Read what :func:`save` wrote (tensors come back as concrete tensors).  A truncated or
    corrupted file, or one of another format, raises :class:`LoadError` naming the file."""
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file>")
    try:
        return _load(f, name)
    except (LoadError, FileNotFoundError):
        raise
    except (ValueError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile,
            zlib.error) as e:
        raise LoadError(f"torch.load: '{name}' is truncated or corrupt ({type(e).__name__}: {e})"
                        f"\nHint: save it again; a file cut short by a crash cannot be "
                        f"recovered") from None


def _load(f, name):
    try:
        data = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise LoadError(f"torch.load: '{name}' is not a functorch_lite.torch.save file ({e})") from None
    with data:
        if not hasattr(data, "files") or _LAYOUT not in data.files:
            raise LoadError(
                f"torch.load: '{name}' is not a functorch_lite.torch.save file (no layout record). "
                f"Checkpoints written by PyTorch are pickles, which functorch_lite never loads; "
                f"load them with PyTorch and save the state dict's arrays with numpy.savez")
        arrays = {k: data[k] for k in data.files if k != _LAYOUT}
        layout = json.loads(str(data[_LAYOUT]))
    return _decode(layout, arrays)
