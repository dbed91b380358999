"""The core contract: a model is a frozen dataclass of hyper-parameters with two pure methods.

    params, state = model.init(key, spec)
    y, state = model.apply(params, state, x, key=None, train=False)

``spec`` is a shape tuple (batch axis included, any size) or a ``jax.ShapeDtypeStruct``, or a
pytree of them.  Params and state are nested dicts of arrays (``{}`` when empty).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp

from .errors import ShapeError, format_error

__all__ = ["Module", "Params", "State", "as_spec", "output_spec", "without_state",
           "Stateless", "has_state", "check_rank", "module_name"]

Params = dict
State = dict
Array = jax.Array


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name)
    return name.lower()


def module_name(obj) -> str:
    """The short name used in parameter keys: ``Dense`` -> ``dense``, ``relu`` -> ``relu``."""
    if isinstance(obj, Module):
        return obj.name
    return getattr(obj, "__name__", type(obj).__name__).lower()


def _is_spec_leaf(x) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct) or (
        isinstance(x, tuple) and all(isinstance(d, int) for d in x))


def as_spec(spec, dtype=jnp.float32):
    """Turn a shape tuple / ShapeDtypeStruct / array (or a pytree of them) into ShapeDtypeStructs."""
    def one(s):
        if isinstance(s, jax.ShapeDtypeStruct):
            return s
        if hasattr(s, "shape") and hasattr(s, "dtype"):
            return jax.ShapeDtypeStruct(tuple(s.shape), s.dtype)
        if isinstance(s, tuple) and all(isinstance(d, int) for d in s):
            return jax.ShapeDtypeStruct(s, dtype)
        raise TypeError(
            f"spec: expected a shape tuple of ints (batch axis first), a jax.ShapeDtypeStruct or an "
            f"array, got {s!r}")
    return jax.tree_util.tree_map(one, spec, is_leaf=lambda s: _is_spec_leaf(s) or hasattr(s, "shape"))


class Module:
    """Base class of every layer and model of the functional core.

    Subclasses are ``@dataclasses.dataclass(frozen=True)``: hashable by value (usable as a static
    argument of ``jax.jit``), printable (``Dense(features=128)``), holding no arrays.
    """

    #: True for layers that draw randomness when ``train=True`` (Dropout).
    needs_key: bool = False
    #: True for layers whose output row ``i`` depends only on input row ``i`` (no batch
    #: statistics, nothing mixed across the batch axis) and whose ``apply`` returns the state it
    #: was given: a train step may then run the batch in pieces (``core/xla.py: train_chunks``).
    #: Conservative default: a layer that does not say so is run on the whole batch.
    per_example: bool = False

    @property
    def name(self) -> str:
        return _snake(type(self).__name__)

    def init(self, key, spec) -> tuple[Params, State]:
        raise NotImplementedError

    def apply(self, params: Params, state: State, x, *, key=None, train: bool = False):
        raise NotImplementedError

    # A short repr that lists only the fields that differ from their defaults.
    def __repr__(self) -> str:
        if not dataclasses.is_dataclass(self):
            return type(self).__name__ + "()"
        parts = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            v = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            if default is dataclasses.MISSING or not _same(v, default):
                parts.append(f"{f.name}={_short(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __call__(self, params, state, x, *, key=None, train=False):
        return self.apply(params, state, x, key=key, train=train)


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return a is b


def _short(v) -> str:
    if callable(v) and not isinstance(v, Module):
        return getattr(v, "__name__", repr(v))
    return repr(v)


def output_spec(model, spec, *, train: bool = False):
    """The output ``ShapeDtypeStruct`` of ``model`` for input ``spec``, computed by ``jax.eval_shape``
    (nothing is run or allocated)."""
    spec = as_spec(spec)

    def run(x):
        params, state = model.init(jax.random.key(0), spec)
        y, _ = model.apply(params, state, x, key=jax.random.key(0) if train else None, train=train)
        return y
    return jax.eval_shape(run, spec)


def has_state(model, spec) -> bool:
    """Whether ``model.init`` returns any state leaves for ``spec`` (checked without computing)."""
    _, state = jax.eval_shape(lambda: model.init(jax.random.key(0), as_spec(spec)))
    return bool(jax.tree_util.tree_leaves(state))


@dataclasses.dataclass(frozen=True, repr=False)
class Stateless:
    """The stateless view of a model: ``init(key, spec) -> params``, ``apply(params, x) -> y``."""
    model: Any

    def init(self, key, spec) -> Params:
        params, state = self.model.init(key, spec)
        if jax.tree_util.tree_leaves(state):
            raise ValueError(
                f"without_state({self.model!r}): the model has state "
                f"({', '.join(_leaf_paths(state))}); use model.init/model.apply, which return and take "
                f"state, instead of the stateless view")
        return params

    def apply(self, params: Params, x, *, key=None, train: bool = False):
        # Combinators read a missing child state as {}, so a stateless model takes {} whole.
        y, _ = self.model.apply(params, {}, x, key=key, train=train)
        return y

    def __call__(self, params, x, *, key=None, train=False):
        return self.apply(params, x, key=key, train=train)

    def __repr__(self):
        return f"without_state({self.model!r})"


def _leaf_paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p, simple=True, separator="/")
            for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def without_state(model) -> Stateless:
    """The stateless view of ``model``; ``init`` raises a clear error if the model has state."""
    return Stateless(model)


def check_rank(x, ranks, what: str = "input", layer: str | None = None):
    """Raise ``ShapeError`` (naming the layer path) unless ``x.ndim`` is one of ``ranks``."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if x.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(format_error(layer or "Layer",
                                      f"{what} rank expected {want}, got {x.ndim} (shape {tuple(x.shape)})"))
