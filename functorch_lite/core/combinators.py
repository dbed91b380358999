"""Combinators: Sequential, Parallel, Residual, Lambda.

Each child gets an entry named ``'{i}_{name}'`` in BOTH params and state (``{}`` when empty), so
params, state and gradients stay parallel trees; ``key`` is split into one subkey per child.
"""
from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Any, Callable

import jax
import jax.numpy as jnp

from . import xla
from .errors import ShapeError, format_error, scope
from .module import Module, as_spec, module_name

__all__ = ["Sequential", "Parallel", "Residual", "Lambda", "as_module"]


@dataclasses.dataclass(frozen=True, repr=False)
class Lambda(Module):
    """Wraps a plain function ``fn(x) -> y`` (e.g. ``relu``) as a parameter-free module."""
    fn: Callable

    @property
    def name(self) -> str:
        return module_name(self.fn)

    @property
    def per_example(self) -> bool:
        """Only for the library's own activations: an arbitrary function may mix the batch."""
        from ..layers.activations import is_per_example
        return is_per_example(self.fn)

    def init(self, key, spec):
        return {}, {}

    def apply(self, params, state, x, *, key=None, train=False):
        return self.fn(x), state

    def __repr__(self):
        return module_name(self.fn)


def as_module(layer) -> Module:
    """A Module as is; a plain callable wrapped in ``Lambda``; anything else is a TypeError."""
    if isinstance(layer, Module):
        return layer
    if callable(layer):
        return Lambda(layer)
    raise TypeError(f"expected a functorch_lite Module or a function x -> y, got {layer!r} "
                    f"({type(layer).__name__})")


def _child_keys(key, n):
    if key is None:
        return (None,) * n
    return tuple(jax.random.split(key, n)) if n else ()


def _names(layers) -> tuple[str, ...]:
    return tuple(f"{i}_{module_name(l)}" for i, l in enumerate(layers))


class _Container(Module):
    layers: tuple

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        object.__setattr__(self, "layers", tuple(as_module(l) for l in layers))

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self.layers)

    @property
    def per_example(self) -> bool:
        return all(getattr(l, "per_example", False) is True for l in self.layers)

    def __repr__(self):
        inner = ", ".join(repr(l) for l in self.layers)
        return f"{type(self).__name__}({inner})"

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Sequential(_Container):
    """Applies its layers in order: ``Sequential([Dense(128), relu, Dense(10)])``."""
    layers: tuple = ()

    def init(self, key, spec):
        spec = as_spec(spec)
        if not isinstance(key, jax.core.Tracer):
            # Called eagerly: run the whole init as ONE compiled computation instead of
            # dispatching (and compiling) every initializer op on its own (5 s -> 0.3 s).
            return _jitted_init(self, spec)(key)
        return self._init(key, spec)

    def _init(self, key, spec):
        params, state = {}, {}
        for name, layer, k in zip(self.names, self.layers, _child_keys(key, len(self.layers))):
            with scope(name):
                p, s = layer.init(k, spec)
                spec = jax.eval_shape(lambda p, s, x: layer.apply(p, s, x)[0], p, s, spec)
            params[name], state[name] = p, s
        return params, state

    def apply(self, params, state, x, *, key=None, train=False):
        new_state = {}
        for name, layer, k in zip(self.names, self.layers, _child_keys(key, len(self.layers))):
            with scope(name):
                x, new_state[name] = layer.apply(_get(params, name), state.get(name, {}), x,
                                                 key=k, train=train)
        return x, new_state


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Parallel(_Container):
    """Applies every layer to the same input and returns the tuple of outputs
    (or their combination ``combine(*outputs)`` when ``combine`` is given, e.g. ``jnp.add``)."""
    layers: tuple = ()
    combine: Callable | None = None

    def __init__(self, *layers, combine=None):
        super().__init__(*layers)
        object.__setattr__(self, "combine", combine)

    @property
    def per_example(self) -> bool:
        # an arbitrary ``combine`` may mix the batch; the elementwise ones cannot
        return super().per_example and (self.combine is None or any(
            self.combine is f for f in (jnp.add, jnp.multiply, jnp.maximum, operator.add,
                                        operator.mul)))

    def init(self, key, spec):
        spec = as_spec(spec)
        params, state = {}, {}
        for name, layer, k in zip(self.names, self.layers, _child_keys(key, len(self.layers))):
            with scope(name):
                params[name], state[name] = layer.init(k, spec)
        return params, state

    def apply(self, params, state, x, *, key=None, train=False):
        outs, new_state = [], {}
        for name, layer, k in zip(self.names, self.layers, _child_keys(key, len(self.layers))):
            with scope(name):
                y, new_state[name] = layer.apply(_get(params, name), state.get(name, {}), x,
                                                 key=k, train=train)
            outs.append(y)
        return (self.combine(*outs) if self.combine is not None else tuple(outs)), new_state


@dataclasses.dataclass(frozen=True, repr=False)
class Residual(Module):
    """``body(x) + shortcut(x)``; the shortcut is the identity when not given."""
    body: Any
    shortcut: Any = None

    def __post_init__(self):
        object.__setattr__(self, "body", as_module(self.body))
        if self.shortcut is not None:
            object.__setattr__(self, "shortcut", as_module(self.shortcut))

    @property
    def per_example(self) -> bool:
        return all(getattr(l, "per_example", False) is True for l in self._children().values())

    def _children(self):
        kids = {"0_" + module_name(self.body): self.body}
        if self.shortcut is not None:
            kids["1_" + module_name(self.shortcut)] = self.shortcut
        return kids

    def init(self, key, spec):
        spec = as_spec(spec)
        kids = self._children()
        params, state = {}, {}
        for (name, layer), k in zip(kids.items(), _child_keys(key, len(kids))):
            with scope(name):
                params[name], state[name] = layer.init(k, spec)
        return params, state

    def apply(self, params, state, x, *, key=None, train=False):
        kids = self._children()
        outs, new_state = [], {}
        for (name, layer), k in zip(kids.items(), _child_keys(key, len(kids))):
            with scope(name):
                y, new_state[name] = layer.apply(_get(params, name), state.get(name, {}), x,
                                                 key=k, train=train)
            outs.append(y)
        y = outs[0]
        skip = outs[1] if len(outs) > 1 else x
        if y.shape != skip.shape:
            raise ShapeError(format_error(
                "Residual", f"body output shape {tuple(y.shape)} != shortcut shape {tuple(skip.shape)}",
                hint="give Residual a shortcut (e.g. a 1x1 Conv) that maps the input to the body's shape"))
        return y + skip, new_state


@functools.lru_cache(maxsize=32)
def _jitted_init(model, spec):
    """The compiled init of ``model`` for ``spec`` (cached: a second init compiles nothing),
    compiled for one run (core/xla.py: 3.2 s -> 0.7 s to compile the MNIST CNN's init)."""
    return xla.jit(lambda key: model._init(key, spec), once=True)


def _get(params, name):
    try:
        return params[name]
    except (KeyError, TypeError):
        have = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ShapeError(format_error("Params", f"missing entry {name!r} (have {have})",
                                      hint="params must come from this model's init")) from None
