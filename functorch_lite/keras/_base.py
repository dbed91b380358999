"""The Keras Layer base class, symbolic KerasTensors and the trace context of subclassed models.

A Keras layer object holds configuration and a functional-core module (``layer.module``); its
weights live either on the layer itself (a layer built on its own, by calling it on an array)
or in the params/state tree of the model that holds it (``layer._k.home = (model, key)``).

While a subclassed model's ``call`` runs under a model's ``init``/``apply`` (always inside
``jax.jit`` or ``jax.eval_shape``), a :class:`_Trace` is the current context: calling a layer
object looks its params and state up in the trace by the attribute name the model holds it
under (``self.conv1`` -> ``'conv1'``; a list ``self.blocks`` -> ``'blocks_0'``...), or, for a
layer created inline in ``call``, by call order (``'inline_0_activation'``).  Nothing is stored
on the objects during a trace except bookkeeping (names, shapes), so the traced function is pure.
"""
from __future__ import annotations

import contextvars
import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import xla
from ..core.errors import ConfigError, ShapeError, format_error, scope
from ..core.interrupts import InterruptGuard
from ..core.module import Module, as_spec, module_name

__all__ = ["Layer", "KerasTensor", "Node", "KerasOp", "next_key", "next_seed", "unique_name",
           "reset_names", "set_seed", "to_array"]

# ------------------------------------------------------------------ names and seeds
_NAME_COUNTS: dict[str, int] = {}
_SEED = {"seed": 0, "count": 0}


def snake(name: str) -> str:
    """Keras's ``to_snake_case``: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``... (reset by ``keras.backend.clear_session()``)."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def reset_names():
    _NAME_COUNTS.clear()


def set_seed(seed: int):
    _SEED["seed"], _SEED["count"] = int(seed), 0


def next_seed() -> int:
    """A fresh integer seed from the global seed (``keras.utils.set_random_seed``)."""
    _SEED["count"] += 1
    return int(np.random.default_rng((_SEED["seed"], _SEED["count"])).integers(2 ** 31 - 1))


def next_key():
    return jax.random.key(next_seed())


def to_array(x, what="x"):
    """numpy / jax / list input -> numpy or jax array; float64 becomes float32 (as jax would)."""
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, KerasTensor):
        raise ConfigError(f"{what}: expected an array, got a symbolic KerasTensor {x!r}")
    a = np.asarray(x)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.int64:
        a = a.astype(np.int32)
    elif a.dtype == object:
        raise ConfigError(f"{what}: expected a numeric array, got an object array of shape {a.shape}")
    return a


# ------------------------------------------------------------------ symbolic tensors
class Node:
    """One layer call of a functional graph."""

    def __init__(self, layer, inputs, outputs=None):
        self.layer, self.inputs, self.outputs = layer, inputs, outputs


class KerasTensor:
    """A symbolic tensor of the functional API: a shape with ``None`` batch, a dtype, and the
    layer call (``Node``) that produced it (``None`` for ``keras.Input``)."""

    def __init__(self, shape, dtype="float32", node=None, name=None):
        self.shape = tuple(shape)
        self.dtype = jnp.dtype(dtype)
        self._node = node
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def _spec(self):
        return jax.ShapeDtypeStruct((1,) + tuple(self.shape[1:]), self.dtype)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"


def _is_kt(x) -> bool:
    return isinstance(x, KerasTensor)


def _has_kt(x) -> bool:
    return any(_is_kt(l) for l in jax.tree_util.tree_leaves(x, is_leaf=_is_kt))


# ------------------------------------------------------------------ the trace context
_TRACE: contextvars.ContextVar["_Trace | None"] = contextvars.ContextVar("keras_trace",
                                                                          default=None)


class _Trace:
    """The params/state of one model's direct children while its ``call`` is traced."""

    def __init__(self, model, mode, params, state, key, train):
        self.model, self.mode, self.key, self.train = model, mode, key, train
        self.params = params if mode == "apply" else {}
        self.state_in = state if mode == "apply" else {}
        self.state_out: dict = {}
        self.names = model._child_names()
        self.inline = 0
        self.calls = 0
        self.shapes: dict = {}
        self.types: dict = {}

    def call(self, layer, x, training):
        name = self.names.get(id(layer))
        if name is None:
            name = f"inline_{self.inline}_{layer._k.base}"
            self.inline += 1
        train = self.train if training is None else bool(training)
        sub = None if self.key is None else jax.random.fold_in(self.key, self.calls)
        self.calls += 1
        with scope(name):
            if name not in self.params:
                if self.mode == "init":
                    have = layer._weights_tree()
                    if have is None or not _fits(layer.module, have, x):
                        have = layer.module.init(sub, as_spec(x))
                    self.params[name], self.state_in[name] = have
                else:
                    p_spec, s_spec = jax.eval_shape(
                        lambda: layer.module.init(jax.random.key(0), as_spec(x)))
                    if jax.tree_util.tree_leaves((p_spec, s_spec)):
                        raise ConfigError(format_error(
                            type(layer).__name__,
                            f"layer '{layer.name}' has weights but was not called when the model "
                            f"was built (built with training=False)",
                            hint="call every layer that has weights unconditionally in call(); "
                                 "only weightless layers may depend on `training`"))
            p = self.params.get(name, {})
            s = self.state_out.get(name, self.state_in.get(name, {}))
            y, s2 = layer.module.apply(p, s, x, key=sub if train else None, train=train)
        if name in self.state_in and self.mode == "apply":
            self.state_out[name] = s2
        if self.mode == "init" and name not in self.shapes:
            self.types[name] = type(layer).__name__
            self.shapes[name] = jax.tree_util.tree_map(
                lambda a: (None,) + tuple(a.shape[1:]), y)
        return y


def _fits(module, have, x) -> bool:
    """Whether existing (params, state) have the structure and shapes ``module.init`` gives."""
    want = jax.eval_shape(lambda: module.init(jax.random.key(0), as_spec(x)))
    got = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), have)
    return (jax.tree_util.tree_structure(want) == jax.tree_util.tree_structure(got) and
            all(a.shape == b.shape for a, b in zip(jax.tree_util.tree_leaves(want),
                                                   jax.tree_util.tree_leaves(got))))


def current_trace():
    return _TRACE.get()


class _Internal:
    """Bookkeeping of a Layer, kept in one attribute (``_k``) so that a subclassed model's
    attribute scan never mistakes it for a child layer."""

    def __init__(self, base):
        self.base = base
        self.home = None        # (owner model, key in the owner's params)
        self.own = None         # (params, state) of a layer built on its own
        self.input_shape = None  # per-example input shape given by input_shape=/input_dim=
        self.eager = {}         # cached jitted eager calls


# ------------------------------------------------------------------ the core wrapper module
@dataclasses.dataclass(frozen=True, repr=False)
class KerasOp(Module):
    """A core module with Keras's input handling around it: integer inputs cast to float32
    (``float_input``), ``channels_first`` inputs transposed to the core's channels_last and
    back, and an ``activation`` after.  Its params and state are exactly the inner module's."""
    inner: Any
    activation: Any = None
    float_input: bool = True
    channels_first: bool = False

    @property
    def name(self) -> str:
        return module_name(self.inner)

    needs_key = property(lambda self: getattr(self.inner, "needs_key", False))

    @property
    def per_example(self) -> bool:
        from .activations import ACTIVATIONS
        return getattr(self.inner, "per_example", False) is True and (
            self.activation is None or any(self.activation is f for f in ACTIVATIONS.values()))

    def _spec_in(self, spec):
        spec = as_spec(spec)
        shape, dtype = tuple(spec.shape), spec.dtype
        if self.float_input and not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.float32
        if self.channels_first and len(shape) > 2:
            shape = (shape[0],) + shape[2:] + (shape[1],)
        return jax.ShapeDtypeStruct(shape, dtype)

    def init(self, key, spec):
        return self.inner.init(key, self._spec_in(spec))

    def apply(self, params, state, x, *, key=None, train=False):
        if self.float_input and not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        if self.channels_first and x.ndim > 2:
            x = jnp.moveaxis(x, 1, -1)
        y, state = self.inner.apply(params, state, x, key=key, train=train)
        if self.channels_first and y.ndim > 2:
            y = jnp.moveaxis(y, -1, 1)
        if self.activation is not None:
            y = self.activation(y)
        return y, state

    def __repr__(self):
        act = "" if self.activation is None else f", activation={module_name(self.activation)}"
        return f"KerasOp({self.inner!r}{act})"


# ------------------------------------------------------------------ Layer
class Layer:
    """Base class of the Keras layers. ``layer.module`` is the functional-core module."""

    #: (('params', 'kernel'), ('params', 'bias')): the Keras order of get_weights().
    _weight_order: tuple = ()

    def __init__(self, *, name=None, input_shape=None, input_dim=None, batch_input_shape=None,
                 dtype=None, trainable=True):
        cls = type(self).__name__
        self._k = _Internal(snake(cls))
        self.name = name or unique_name(self._k.base)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None:
            input_shape = (int(input_dim),)
        if input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            if any(d is None for d in tuple(input_shape)):
                raise ConfigError(f"{cls} '{self.name}': input_shape expected known sizes (no "
                                  f"None; the batch axis is left out), got {tuple(input_shape)}")
            self._k.input_shape = tuple(int(d) for d in input_shape)
        if dtype not in (None, "float32", jnp.float32):
            raise ConfigError(f"{cls} '{self.name}': dtype expected 'float32' (the only policy "
                              f"supported), got {dtype!r}")
        if trainable is not True:
            raise ConfigError(_FREEZE_MSG.format(cls=cls, name=self.name))

    # -------------------------------------------------------------- the core module
    @property
    def module(self) -> Module:
        m = getattr(self._k, "module", None)
        if m is None:
            m = self._k.module = self._make_module()
        return m

    def _make_module(self) -> Module:
        raise NotImplementedError(f"{type(self).__name__} defines no core module")

    # -------------------------------------------------------------- calling
    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        if args or kwargs:
            given = [f"{len(args)} extra positional"] * bool(args) + sorted(kwargs)
            raise TypeError(f"{type(self).__name__} '{self.name}': call takes one input (a tensor "
                            f"or a list of tensors) and training=, got {given}")
        if _has_kt(inputs):
            return self._symbolic_call(inputs)
        trace = current_trace()
        if trace is not None:
            return trace.call(self, inputs, training)
        return self._eager_call(inputs, training)

    def _symbolic_call(self, inputs):
        specs = jax.tree_util.tree_map(lambda t: t._spec(), inputs, is_leaf=_is_kt)
        try:
            with scope(self.name):
                out = jax.eval_shape(
                    lambda s: self.module.apply(*self.module.init(jax.random.key(0), s), s)[0],
                    specs)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{type(self).__name__} '{self.name}' called on "
                          f"{_kt_shapes(inputs)}: {e}") from None
        node = Node(self, inputs)
        outs = jax.tree_util.tree_map(
            lambda o: KerasTensor((None,) + tuple(o.shape[1:]), o.dtype, node, self.name), out)
        node.outputs = outs
        return outs

    def _eager_call(self, inputs, training):
        x = jax.tree_util.tree_map(lambda a: jnp.asarray(to_array(a)), inputs)
        if self._weights_tree() is None:
            self._build_own(x)
        params, state = self._weights_tree()
        train = bool(training)
        with scope(self.name):  # trace-time errors name the layer
            y, new_state = self._eager_fn(train)(params, state, x, next_key() if train else None)
        if train and jax.tree_util.tree_leaves(new_state):
            self._assign_state(new_state)
        return y

    def _eager_fn(self, train):
        """``jit(apply)`` for this layer's module and one ``train`` flag, cached on the layer."""
        fn = self._k.eager.get(train)
        if fn is None:
            module = self.module
            fn = self._k.eager[train] = xla.jit(
                lambda p, s, x, k: module.apply(p, s, x, key=k, train=train),
                convolutions=xla.uses_convolution(module))
        return fn

    def _build_own(self, x):
        spec = as_spec(x)
        with scope(self.name):
            self._k.own = self.module.init(next_key(), spec)

    # -------------------------------------------------------------- weights
    def _weights_tree(self):
        """``(params, state)`` of this layer, or None when it is not built."""
        home = self._k.home
        if home is not None:
            owner, key = home
            trees = owner._weights_tree()
            if trees is not None and key in trees[0]:
                return trees[0][key], trees[1].get(key, {})
            return None
        return self._k.own

    @property
    def built(self) -> bool:
        return self._weights_tree() is not None

    def _require_built(self, what):
        trees = self._weights_tree()
        if trees is None:
            raise ConfigError(f"{what}: {type(self).__name__} '{self.name}' has no weights yet; "
                              f"it is built on its first call (or build the model that holds it)")
        return trees

    def _weight_paths(self, params, state):
        """[(tree, path)] in Keras's get_weights order."""
        paths = [(t, (k,)) for t, k in self._weight_order
                 if k in (params if t == "params" else state)]
        listed = {(t, p) for t, p in paths}
        for t, tree in (("params", params), ("state", state)):
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
                keys = tuple(getattr(q, "key", getattr(q, "idx", q)) for q in path)
                if (t, keys) not in listed:
                    paths.append((t, keys))
        return paths

    def _weight_list(self):
        params, state = self._weights_tree()
        return [(t, p, _get_path(params if t == "params" else state, p))
                for t, p in self._weight_paths(params, state)]

    def get_weights(self) -> list:
        """The weights as numpy arrays, in Keras's order (Dense: kernel, bias; BatchNorm:
        gamma, beta, moving_mean, moving_variance)."""
        self._require_built("get_weights")
        return [np.array(a) for _, _, a in self._weight_list()]

    def set_weights(self, weights):
        """Replace the weights from arrays in :meth:`get_weights` order (shapes must match)."""
        self._require_built("set_weights")
        params, state = self._weights_tree()
        current = self._weight_list()
        weights = list(weights)
        if len(weights) != len(current):
            names = ["/".join(map(str, p)) for _, p, _ in current]
            raise ShapeError(f"set_weights: {type(self).__name__} '{self.name}' expected "
                             f"{len(current)} arrays ({', '.join(names) or 'none'}), got "
                             f"{len(weights)}")
        bad = [f"{'/'.join(map(str, p))}: expected {tuple(a.shape)}, got {tuple(np.shape(w))}"
               for (t, p, a), w in zip(current, weights) if tuple(a.shape) != tuple(np.shape(w))]
        if bad:
            raise ShapeError(f"set_weights: {type(self).__name__} '{self.name}' shape mismatch: "
                             + "; ".join(bad))
        staged = [jnp.asarray(w, a.dtype) for (_, _, a), w in zip(current, weights)]
        with InterruptGuard():   # all converted first, then all written: never half applied
            for (t, p, _), w in zip(current, staged):
                _set_path(params if t == "params" else state, p, w)

    def _assign_state(self, new_state):
        _, state = self._weights_tree()
        _assign_into(state, new_state)

    @property
    def weights(self) -> list:
        return [a for _, _, a in self._weight_list()] if self.built else []

    @property
    def trainable_weights(self) -> list:
        return [a for t, _, a in self._weight_list() if t == "params"] if self.built else []

    @property
    def non_trainable_weights(self) -> list:
        return [a for t, _, a in self._weight_list() if t == "state"] if self.built else []

    trainable_variables = trainable_weights
    variables = weights

    def count_params(self) -> int:
        params, state = self._require_built("count_params")
        return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves((params, state))))

    @property
    def trainable(self) -> bool:
        return True

    @trainable.setter
    def trainable(self, value):
        if value is not True:
            raise ConfigError(_FREEZE_MSG.format(cls=type(self).__name__, name=self.name))

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_FREEZE_MSG = ("{cls} '{name}': trainable=False (freezing weights) is not supported by "
               "functorch_lite.keras\nHint: train the functional pytrees instead: mask the "
               "frozen part of model.params with optax.masked or optax.multi_transform")


def _kt_shapes(inputs):
    shapes = [t.shape for t in jax.tree_util.tree_leaves(inputs, is_leaf=_is_kt)]
    return shapes[0] if len(shapes) == 1 else shapes


def _get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set_path(tree, path, value):
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def _assign_into(tree, new):
    """Write the leaves of ``new`` into the nested dicts of ``tree`` in place (same structure),
    so that every holder of ``tree`` (a model, a running fit) sees them.  All or nothing: a
    Ctrl-C meanwhile waits until every leaf is written."""
    with InterruptGuard():
        _assign_leaves(tree, new)


def _assign_leaves(tree, new):
    for k, v in new.items():
        if isinstance(v, dict):
            _assign_leaves(tree[k], v)
        else:
            tree[k] = v
