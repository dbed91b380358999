"""Save and load pytrees of arrays as one ``.npz`` file, without pickle.

Each leaf is stored under its key path, ``'/'``-joined (``'params/0_dense/kernel'``; sequence
indices and NamedTuple fields appear as ``'0'``, ``'mu'``). Dtypes ``.npz`` cannot hold
(``bfloat16``, ``float8_*``, ``int4``, ...) are stored as same-width unsigned ints and their
names recorded in the JSON entry ``'__meta__'``, with the format version and the key order.

``save`` writes exactly to the path given (no suffix added) and atomically: a temporary file in
the same directory is flushed, fsynced and ``os.replace``-d over ``path``; on any error it is
removed and a previous file at ``path`` stays untouched.

``load(path, target)`` checks the whole file against ``target`` (key paths, shapes, dtypes)
before building anything and returns ``target``'s structure. Its leaves follow the target
leaf's kind: jax arrays and ``ShapeDtypeStruct`` give jax arrays (on the target's sharding),
numpy arrays give numpy arrays, Python scalars give Python scalars. Without ``target`` it
returns nested dicts of numpy arrays rebuilt from the key paths, so sequence indices and
NamedTuple fields become string dict keys (``tree['opt_state']['0']['mu']``).
"""
from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from .core.errors import CheckpointError, TreeMismatchError
from .datasets.idx import atomic_file

__all__ = ["save", "load", "CheckpointMismatchError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_FORMAT = "functorch_lite.checkpoint"
_META = "__meta__"
_NATIVE_KINDS = "biufc"  # bool, int, uint, float, complex: stored as they are


class CheckpointMismatchError(CheckpointError, TreeMismatchError):
    """The checkpoint's key paths, shapes or dtypes differ from the target tree."""


def _keystr(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def _encode(key: str, leaf) -> tuple[np.ndarray, str | None]:
    """The array to store for one leaf, and the dtype name to record when it is re-encoded."""
    array = np.asarray(leaf)
    if array.dtype.kind in _NATIVE_KINDS:
        return array, None
    if array.dtype.kind == "V" and hasattr(ml_dtypes, array.dtype.name):
        return array.view(f"u{array.dtype.itemsize}"), array.dtype.name
    raise CheckpointError(f"save: leaf '{key}' has dtype {array.dtype}, which cannot be stored "
                          "without pickle\nHint: keep only numeric arrays and scalars in the "
                          "tree.")


def _write_npz(f, arrays: dict) -> None:
    np.savez(f, **arrays)


def save(path, tree) -> Path:
    """Write the pytree ``tree`` of arrays/scalars to ``path`` (one ``.npz``); return the path."""
    path = Path(path)
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays, dtypes = {}, {}
    for key_path, leaf in flat:
        key = _keystr(key_path)
        if key in arrays or key == _META:
            raise CheckpointError(f"save: two leaves (or a leaf and the metadata) share the key "
                                  f"path '{key}'\nHint: rename dict keys that contain '/' or "
                                  f"are named '{_META}'.")
        arrays[key], dtype = _encode(key, leaf)
        if dtype is not None:
            dtypes[key] = dtype
    meta = {"format": _FORMAT, "version": FORMAT_VERSION, "keys": list(arrays),
            "dtypes": dtypes}
    arrays[_META] = np.array(json.dumps(meta))
    with atomic_file(path) as f:
        _write_npz(f, arrays)
    return path


def _bad_file(path, what: str) -> CheckpointError:
    return CheckpointError(f"load '{path}': {what}\nHint: pass a file written by "
                           "functorch_lite.checkpoint.save; re-save it if it was cut short.")


def _read(path) -> dict[str, np.ndarray]:
    """All leaves of the checkpoint at ``path``, decoded, in saved order."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise _bad_file(path, "not an .npz archive (a single .npy array?)")
        with npz:
            files = {name: npz[name] for name in npz.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"load '{path}': no such file\nHint: check the path; save() "
                              "writes exactly the path it is given.") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error, KeyError) as e:
        raise _bad_file(path, f"not a readable .npz archive (truncated or corrupt: {e})") \
            from None
    if _META not in files:
        raise _bad_file(path, f"an .npz without the '{_META}' entry; it was not written by "
                              "functorch_lite.checkpoint.save")
    try:
        meta = json.loads(str(files.pop(_META)))
        keys, dtypes, version = meta["keys"], meta["dtypes"], meta["version"]
    except (ValueError, KeyError, TypeError) as e:
        raise _bad_file(path, f"unreadable '{_META}' entry ({e})") from None
    if meta.get("format") != _FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise _bad_file(path, f"format {meta.get('format')!r} version {version!r}; this "
                              f"functorch_lite reads {_FORMAT!r} up to version {FORMAT_VERSION}")
    if set(keys) != set(files):
        raise _bad_file(path, f"entries {sorted(set(files) ^ set(keys))} disagree with the "
                              "metadata")
    out = {}
    for key in keys:
        array = files[key]
        if key in dtypes:
            name = dtypes[key]
            if not hasattr(ml_dtypes, name):
                raise _bad_file(path, f"leaf '{key}' has unknown dtype {name!r}")
            array = array.view(getattr(ml_dtypes, name))
        out[key] = array
    return out


def _nest(path, arrays: dict):
    if list(arrays) == [""]:  # the tree was a single leaf
        return arrays[""]
    root: dict = {}
    for key, array in arrays.items():
        *parents, last = key.split("/")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _bad_file(path, f"key path '{key}' runs through a leaf")
        if last in node:
            raise _bad_file(path, f"key path '{key}' clashes with another entry")
        node[last] = array
    return root


_SCALAR_KINDS = {bool: "b", int: "iu", float: "f", complex: "c"}


def _check(key, saved: np.ndarray, want) -> str | None:
    """Why ``saved`` cannot stand for the target leaf ``want`` (None when it can)."""
    if type(want) in _SCALAR_KINDS:
        if saved.shape != () or saved.dtype.kind not in _SCALAR_KINDS[type(want)]:
            return (f"dtype: {key} (saved {saved.dtype}{list(saved.shape)} vs expected a "
                    f"Python {type(want).__name__} scalar)")
        return None
    if not (hasattr(want, "shape") and hasattr(want, "dtype")):
        want = np.asarray(want)
    shape, dtype = tuple(want.shape), np.dtype(want.dtype)
    if saved.shape != shape:
        return f"shape: {key} (saved {saved.shape} vs expected {shape})"
    if saved.dtype != dtype:
        return f"dtype: {key} (saved {saved.dtype} vs expected {dtype})"
    return None


def _build(saved: np.ndarray, want):
    if type(want) in _SCALAR_KINDS:
        return type(want)(saved.item())
    if isinstance(want, (np.ndarray, np.generic)):
        return saved
    if isinstance(want, jax.Array):
        return jax.device_put(saved, want.sharding)
    sharding = getattr(want, "sharding", None)
    return jax.device_put(saved, sharding) if sharding is not None else jnp.asarray(saved)


def load(path, target=None):
    """Read a checkpoint written by :func:`save`; see the module docstring for ``target``."""
    arrays = _read(path)
    if target is None:
        return _nest(path, arrays)
    flat, treedef = jax.tree_util.tree_flatten_with_path(target)
    wanted = {_keystr(p): leaf for p, leaf in flat}
    if len(wanted) != len(flat):
        raise CheckpointMismatchError(f"load '{path}': target has leaves sharing a key path; "
                                      "dict keys must not contain '/'")
    problems = []
    missing = [k for k in wanted if k not in arrays]
    extra = [k for k in arrays if k not in wanted]
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("extra: " + ", ".join(extra))
    problems += filter(None, (_check(k, arrays[k], w) for k, w in wanted.items()
                              if k in arrays))
    if problems:
        lines = "\n  ".join(problems)
        raise CheckpointMismatchError(
            f"load '{path}': checkpoint does not match the target tree:\n  {lines}\nHint: "
            "build the target from the same model and optimizer configuration that was saved, "
            "or load without target to inspect the file.")
    return treedef.unflatten([_build(arrays[k], w) for k, w in wanted.items()])
