"""torch dtypes over JAX dtypes, and ``torch.device``.

JAX runs with 64-bit types disabled, so ``torch.int64`` (``long``) tensors are stored as int32
and ``torch.float64`` (``double``) tensors as float32; an int32 array reports ``torch.int64``
(the dtype torch code checks for labels and indices).
"""
from __future__ import annotations

import builtins as _builtins

import jax.numpy as jnp
import numpy as np

__all__ = ["dtype", "float32", "float", "float64", "double", "float16", "half", "bfloat16",
           "int8", "uint8", "int16", "short", "int32", "int", "int64", "long", "bool",
           "device", "as_jax_dtype", "from_jax_dtype", "get_default_dtype", "set_default_dtype"]


class dtype:
    """A torch dtype: a name and the JAX dtype its tensors are stored in."""
    __slots__ = ("name", "jax", "is_floating_point", "itemsize")

    def __init__(self, name: str, jax_dtype):
        self.name = name
        self.jax = jnp.dtype(jax_dtype)
        self.is_floating_point = bool(jnp.issubdtype(self.jax, jnp.floating))
        self.itemsize = {"float64": 8, "int64": 8}.get(name, self.jax.itemsize)

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


def _by_name(name):
    return _NAMES[name]


float32 = dtype("float32", jnp.float32)
float64 = dtype("float64", jnp.float32)   # stored as float32 (x64 disabled)
float16 = dtype("float16", jnp.float16)
bfloat16 = dtype("bfloat16", jnp.bfloat16)
uint8 = dtype("uint8", jnp.uint8)
int8 = dtype("int8", jnp.int8)
int16 = dtype("int16", jnp.int16)
int32 = dtype("int32", jnp.int32)
int64 = dtype("int64", jnp.int32)         # stored as int32 (x64 disabled)
bool_ = dtype("bool", jnp.bool_)
globals()["bool"] = bool_
float = float32   # noqa: A001  torch.float
double = float64
half = float16
short = int16
int = int32       # noqa: A001  torch.int
long = int64

_NAMES = {d.name: d for d in (float32, float64, float16, bfloat16, uint8, int8, int16, int32,
                              int64, bool_)}
# jax storage dtype -> the torch dtype a tensor reports
_FROM_JAX = {jnp.dtype(jnp.float32): float32, jnp.dtype(jnp.float16): float16,
             jnp.dtype(jnp.bfloat16): bfloat16, jnp.dtype(jnp.uint8): uint8,
             jnp.dtype(jnp.int8): int8, jnp.dtype(jnp.int16): int16,
             jnp.dtype(jnp.int32): int64, jnp.dtype(jnp.bool_): bool_,
             jnp.dtype(np.float64): float32, jnp.dtype(np.int64): int64}

_DEFAULT = [float32]


def get_default_dtype() -> dtype:
    return _DEFAULT[0]


def set_default_dtype(d) -> None:
    d = as_torch_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: expected a floating point dtype, got {d!r}")
    _DEFAULT[0] = d


def as_torch_dtype(d) -> dtype:
    if isinstance(d, dtype):
        return d
    if isinstance(d, str):
        name = d.replace("torch.", "")
        if name in _NAMES:
            return _NAMES[name]
    try:
        return _FROM_JAX[jnp.dtype(d)]
    except (TypeError, KeyError):
        raise TypeError(f"expected a torch dtype (torch.float32, torch.long, ...), got {d!r}") from None


def as_jax_dtype(d):
    """The JAX storage dtype of a torch dtype (or of anything ``jnp.dtype`` accepts)."""
    if d is None:
        return None
    if isinstance(d, dtype):
        return d.jax
    return as_torch_dtype(d).jax


def from_jax_dtype(d) -> dtype:
    try:
        return _FROM_JAX[jnp.dtype(d)]
    except KeyError:
        raise TypeError(f"no torch dtype for JAX dtype {jnp.dtype(d)}") from None


class device:
    """``torch.device('cpu')``: everything runs on JAX's default device; kept for API parity."""
    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cpu', got {type!r}")
        if ":" in type:
            type, idx = type.split(":", 1)
            index = _builtins.int(idx)
        if type not in ("cpu", "cuda", "mps", "xla", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, mps, xla, meta device type at start of "
                               f"device string: {type}")
        self.type, self.index = type, index

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type + (f":{self.index}" if self.index is not None else "")

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

