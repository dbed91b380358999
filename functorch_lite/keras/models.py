"""``keras.Model`` (subclassed and functional) and ``keras.Sequential`` over the functional core.

Every model has ``model.module``, a functional-core module: ``Sequential`` is the core
``Sequential`` of its layers' modules; a subclassed model (or a functional-API model) is a
module whose ``apply`` runs ``call`` under a trace context that hands each layer its params and
state (see ``_base``).  The escape hatch: ``model.params`` / ``model.state`` are the pytrees,
``model.apply_fn(params, state, x, key=None, train=False) -> (y, state)`` the pure function.
Weights live in one place, the model's tree (or, during ``fit``, the running TrainState);
layer objects read and write them there by key.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import checkpoint as _ckpt
from ..core import xla
from ..core import Sequential as CoreSequential
from ..core.errors import ConfigError, ShapeError, TreeMismatchError, scope
from ..core.module import Module, as_spec
from ._base import (KerasTensor, Layer, _assign_into, _has_kt, _is_kt, _Trace, _TRACE, next_key,
                    snake, to_array, unique_name)
from .layers import InputLayer
from .trainer import TrainingMixin

__all__ = ["Model", "Sequential", "Functional"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CallModule(Module):
    """The core module of a subclassed/functional model: ``apply`` traces ``model.call``.
    Hashed by identity (it refers to the live model object)."""
    model: Any

    @property
    def name(self) -> str:
        return self.model._k.base

    @property
    def needs_key(self):
        return True

    @property
    def uses_convolution(self):
        """Whether a layer of the model has convolutions (they get XLA's conv options)."""
        return xla.uses_convolution([layer.module for layer in self.model.layers])

    def init(self, key, spec):
        return self.model._trace_init(key, spec)

    def apply(self, params, state, x, *, key=None, train=False):
        return self.model._trace_apply(params, state, x, key, train)

    def __repr__(self):
        return f"{type(self.model).__name__}Module({self.model.name!r})"


class Model(TrainingMixin, Layer):
    """Subclass it (layers assigned in ``__init__``, a ``call(self, x, training=None)``), or
    build a functional model with ``keras.Model(inputs, outputs)``."""

    def __new__(cls, *args, **kwargs):
        if cls is Model and (("inputs" in kwargs and "outputs" in kwargs) or len(args) >= 2):
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, dtype=None, **kwargs):
        if args or kwargs:
            raise TypeError(f"Model.__init__: unexpected arguments {list(args) + sorted(kwargs)}; "
                            f"a functional model takes inputs= and outputs=")
        base = snake(type(self).__name__)
        Layer.__init__(self, name=name or unique_name(base), trainable=trainable, dtype=dtype)
        self._k.base = base
        self._k.root = None          # {'params', 'state'} of a built model
        self._k.opt = None           # {'opt_state', 'step', 'rng'} once fit/train_on_batch ran
        self._k.live = None          # the Trainer of a running fit
        self._k.input_spec = None    # per-example ShapeDtypeStruct the model was built for
        self._k.shapes = {}          # child key -> output shape (for summary)
        self._k.compiled = None
        self._k.stop = False
        self._k.call_takes_training = None

    # ------------------------------------------------------------------ lazily created _k
    def __getattr__(self, item):
        # A subclass that forgets super().__init__() gets one on first use, as Keras does.
        if item == "_k":
            Model.__init__(self)
            return self.__dict__["_k"]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")

    # ------------------------------------------------------------------ structure
    def _make_module(self):
        return CallModule(self)

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__}: a subclassed Model defines "
                                  f"call(self, inputs, training=None)")

    def _child_names(self) -> dict:
        """{id(layer): key}: layers held as attributes (lists/tuples/dicts of them as
        ``name_0``, ``name_key``), in assignment order."""
        names: dict = {}

        def visit(prefix, value):
            if isinstance(value, Layer):
                names.setdefault(id(value), prefix)
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    visit(f"{prefix}_{i}", v)
            elif isinstance(value, dict):
                for k, v in value.items():
                    visit(f"{prefix}_{k}", v)
        for attr, value in vars(self).items():
            if attr != "_k" and value is not self:
                visit(attr, value)
        return names

    def _children(self) -> list:
        """[(key, layer or None)] in Keras order: attribute order, then inline layers."""
        names = self._child_names()
        objs = {}
        for attr, value in vars(self).items():
            if attr != "_k":
                for obj in _layers_in(value):
                    if id(obj) in names:
                        objs.setdefault(names[id(obj)], obj)
        trees = self._weights_tree()
        if trees is None:
            return list(objs.items())
        order = [k for k in getattr(self._k, "order", ()) if k in trees[0]]
        order += [k for k in trees[0] if k not in order]
        return [(k, objs.get(k)) for k in order]

    @property
    def layers(self) -> list:
        return [l for _, l in self._children() if l is not None]

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ConfigError(f"get_layer: index expected in [0, {len(layers)}), got {index}")
            return layers[index]
        for l in layers:
            if l.name == name:
                return l
        raise ConfigError(f"get_layer: no layer named {name!r}; expected one of "
                          f"{[l.name for l in layers]}")

    # ------------------------------------------------------------------ tracing call
    def _call_training(self, x, training):
        takes = self._k.call_takes_training
        if takes is None:
            params = inspect.signature(self.call).parameters
            takes = self._k.call_takes_training = "training" in params or any(
                p.kind == p.VAR_KEYWORD for p in params.values())
        return self.call(x, training=training) if takes else self.call(x)

    def _trace_init(self, key, spec):
        # Runs call() once on zeros (eagerly, or traced when init itself is under a transform)
        # creating each layer's weights on its first call.
        spec = as_spec(spec)
        x = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), spec)
        trace = _Trace(self, "init", None, None, key, False)
        token = _TRACE.set(trace)
        try:
            self._call_training(x, False)
        finally:
            _TRACE.reset(token)
        order = list(dict.fromkeys(list(trace.names.values()) + list(trace.params)))
        keys = [k for k in order if k in trace.params]
        self._k.shapes, self._k.types, self._k.order = trace.shapes, trace.types, keys
        return ({k: trace.params[k] for k in keys}, {k: trace.state_in[k] for k in keys})

    def _trace_apply(self, params, state, x, key, train):
        trace = _Trace(self, "apply", params, state, key, train)
        token = _TRACE.set(trace)
        try:
            y = self._call_training(x, train)
        finally:
            _TRACE.reset(token)
        return y, {k: trace.state_out.get(k, v) for k, v in state.items()}

    # ------------------------------------------------------------------ weights storage
    def _weights_tree(self):
        if self._k.home is not None:
            return Layer._weights_tree(self)
        live = self._k.live
        if live is not None and live.train_state is not None:
            return live.train_state.params, live.train_state.state
        root = self._k.root
        return None if root is None else (root["params"], root["state"])

    def _weight_list(self):
        out = []
        params, state = self._weights_tree()
        for key, layer in self._children():
            if layer is not None and layer._weights_tree() is not None:
                out += [(t, (key,) + p, a) for t, p, a in layer._weight_list()]
            else:
                out += [(t, (key,) + p, a) for t, p, a in _generic_weights(params.get(key, {}),
                                                                           state.get(key, {}))]
        return out

    @property
    def params(self):
        """The trainable parameters as the functional core's pytree (nested dicts)."""
        return self._require_built("params")[0]

    @params.setter
    def params(self, tree):
        self._replace_tree("params", tree)

    @property
    def state(self):
        """The non-trainable state (BatchNorm moving statistics) as a pytree."""
        return self._require_built("state")[1]

    @state.setter
    def state(self, tree):
        self._replace_tree("state", tree)

    @property
    def apply_fn(self):
        """The pure function ``apply(params, state, x, *, key=None, train=False) -> (y, state)``."""
        return self.module.apply

    def _replace_tree(self, which, tree):
        params, state = self._require_built(which)
        current = params if which == "params" else state
        _check_same_tree(which, current, tree)
        _assign_into(current, jax.tree_util.tree_map(jnp.asarray, tree))

    # ------------------------------------------------------------------ building
    def build(self, input_shape, dtype="float32"):
        """Create the weights for inputs of ``input_shape`` (batch axis first, may be None)."""
        shape = tuple(input_shape)
        spec = jax.ShapeDtypeStruct((1 if shape[0] is None else shape[0],) + shape[1:],
                                    jnp.dtype(dtype))
        self._build_spec(spec)

    def _build_spec(self, spec):
        if any(d is None for d in spec.shape[1:]):
            raise ConfigError(f"{type(self).__name__} '{self.name}': input shape expected known "
                              f"sizes, got {(None,) + tuple(spec.shape[1:])}")
        with scope(self.name):
            params, state = self.module.init(next_key(), spec)
        self._k.root = {"params": params, "state": state}
        self._k.home = None
        self._k.input_spec = jax.ShapeDtypeStruct((None,) + tuple(spec.shape[1:]), spec.dtype)
        self._k.opt = None
        self._k.eager = {}
        self._home_children()

    def _home_children(self):
        trees = self._weights_tree()
        for key, layer in self._children():
            if layer is not None and key in trees[0]:
                layer._k.home = (self, key)
                if isinstance(layer, Model):
                    layer._k.root = None
                    layer._home_children()

    def _build_own(self, x):
        self._build_spec(as_spec(x))

    def _ensure_built(self, x):
        if self._weights_tree() is None:
            if self._k.home is not None:
                raise ConfigError(f"{type(self).__name__} '{self.name}' is part of another model "
                                  f"that is not built yet; build or call that model first")
            spec = as_spec(x)
            self._build_spec(jax.ShapeDtypeStruct((spec.shape[0],) + tuple(spec.shape[1:]),
                                                  spec.dtype))

    def _declared_input_shape(self):
        spec = self._k.input_spec
        return None if spec is None else tuple(spec.shape[1:])

    def _check_input(self, x, what):
        want = self._declared_input_shape()
        if want is None or not hasattr(x, "shape"):
            return
        got = tuple(x.shape[1:])
        if got != want:
            first = self.layers[0] if self.layers else self
            hint = None
            if len(got) + 1 == len(want) and want[-1] == 1 and got == want[:-1]:
                hint = f"add the channel axis: x.reshape(-1, {', '.join(map(str, want))})"
            elif len(got) > 1 and len(want) == 1 and int(np.prod(got)) == want[0]:
                hint = f"flatten the examples: x.reshape(len(x), {want[0]}), or add a Flatten layer"
            raise ShapeError(
                f"{what}: input of {type(self).__name__} '{self.name}' (its first layer "
                f"'{first.name}' ({type(first).__name__})) expected shape {(None,) + want}, "
                f"got {tuple(x.shape)}" + (f"\nHint: {hint}" if hint else ""))

    @property
    def input_shape(self):
        want = self._declared_input_shape()
        if want is None:
            raise ConfigError(f"{type(self).__name__} '{self.name}': input_shape is not known "
                              f"before the model is built")
        return (None,) + want

    @property
    def output_shape(self):
        spec = self._output_spec(1)
        return jax.tree_util.tree_map(lambda s: (None,) + tuple(s.shape[1:]), spec)

    def _output_spec(self, batch):
        want = self._declared_input_shape()
        if want is None:
            raise ConfigError(f"{type(self).__name__} '{self.name}': output_shape is not known "
                              f"before the model is built")
        params, state = self._weights_tree()
        spec = jax.ShapeDtypeStruct((batch,) + want, self._k.input_spec.dtype)
        return jax.eval_shape(lambda p, s, x: self.module.apply(p, s, x)[0], params, state, spec)

    def _eager_call(self, inputs, training):
        x = jax.tree_util.tree_map(lambda a: jnp.asarray(to_array(a)), inputs)
        self._ensure_built(x)
        self._check_input(x, "call")
        return Layer._eager_call(self, x, training)

    # ------------------------------------------------------------------ summary
    def _summary_rows(self):
        """[(name, type, output shape, param count)] for the direct children."""
        params, state = self._weights_tree()
        rows = []
        for key, layer in self._children():
            count = int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(
                (params.get(key, {}), state.get(key, {})))))
            shape = self._k.shapes.get(key, "?")
            if layer is None:
                rows.append((key, getattr(self._k, "types", {}).get(key, "?"), shape, count))
            else:
                rows.append((layer.name, type(layer).__name__, shape, count))
        return rows

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        """Print the layer table (name, type, output shape, parameter count) and the totals."""
        if not self.built:
            raise ConfigError(
                f"summary: {type(self).__name__} '{self.name}' has not yet been built; build it "
                f"first with model.build(input_shape), by calling it on a batch of data, or by "
                f"giving its first layer input_shape= (or a keras.Input)")
        print_fn = print_fn or print
        rows = [(f"{n} ({t})", _fmt_shape(s), f"{c:,}") for n, t, s, c in self._summary_rows()]
        head = ("Layer (type)", "Output Shape", "Param #")
        w = [max(len(head[i]), *(len(r[i]) for r in rows)) if rows else len(head[i])
             for i in range(3)]
        w = [max(w[0], 30), max(w[1], 24), max(w[2], 12)]
        line = "+".join("-" * (x + 2) for x in w)
        fmt = lambda r: " {:<{}} | {:<{}} | {:>{}} ".format(r[0], w[0], r[1], w[1], r[2], w[2])
        out = [f'Model: "{self.name}"', line, fmt(head), line.replace("-", "=")]
        out += [fmt(r) for r in rows]
        params, state = self._weights_tree()
        n_p = int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))
        n_s = int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(state)))
        out += [line, f" Total params: {n_p + n_s:,} ({_bytes((n_p + n_s) * 4)})",
                f" Trainable params: {n_p:,} ({_bytes(n_p * 4)})",
                f" Non-trainable params: {n_s:,} ({_bytes(n_s * 4)})"]
        print_fn("\n".join(out))

    # ------------------------------------------------------------------ save / load
    def save_weights(self, filepath, overwrite=True):
        """Write params and state to ``filepath`` (one .npz, written atomically: a temporary
        file renamed over the target); any suffix is accepted (``.weights.h5`` included)."""
        import os
        params, state = self._require_built("save_weights")
        if not overwrite and os.path.exists(filepath):
            raise ConfigError(f"save_weights: '{filepath}' exists and overwrite=False")
        _ckpt.save(filepath, {"params": params, "state": state})

    def load_weights(self, filepath):
        """Read weights written by :meth:`save_weights`; the file must match this model's tree
        exactly (key paths, shapes, dtypes), else CheckpointError lists the differences."""
        params, state = self._require_built("load_weights")
        tree = _ckpt.load(filepath, target={"params": params, "state": state})
        _assign_into({"params": params, "state": state}, tree)   # all leaves, or none

    def get_config(self):
        return {"name": self.name}


def _layers_in(value):
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [l for v in value for l in _layers_in(v)]
    if isinstance(value, dict):
        return [l for v in value.values() for l in _layers_in(v)]
    return []


def _generic_weights(params, state):
    out = []
    for t, tree in (("params", params), ("state", state)):
        for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]:
            out.append((t, tuple(getattr(q, "key", getattr(q, "idx", q)) for q in path), a))
    return out


def _check_same_tree(what, current, new):
    cur = {jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_flatten_with_path(current)[0]}
    got = {jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_flatten_with_path(new)[0]}
    problems = [f"missing {k}" for k in cur if k not in got]
    problems += [f"extra {k}" for k in got if k not in cur]
    problems += [f"shape {k}: expected {tuple(cur[k].shape)}, got {tuple(np.shape(got[k]))}"
                 for k in cur if k in got and tuple(cur[k].shape) != tuple(np.shape(got[k]))]
    if problems:
        raise TreeMismatchError(f"model.{what}: the new tree does not match the model's: "
                                + "; ".join(problems))


def _fmt_shape(s):
    if isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s):
        return "(" + ", ".join("None" if d is None else str(d) for d in s) + ("," if len(s) == 1 else "") + ")"
    if isinstance(s, (tuple, list)):
        return "[" + ", ".join(_fmt_shape(x) for x in s) + "]"
    return str(s)


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024


# ---------------------------------------------------------------------- Sequential
class Sequential(Model):
    """``Sequential([layers...])`` or ``.add(layer)``; the first entry may be ``keras.Input``
    or the first layer may take ``input_shape=``; otherwise the model is built on first use."""

    def __init__(self, layers=None, name=None):
        Model.__init__(self, name=name)
        self._k.layers = []
        self._k.declared = None
        self._k.deferred = True
        for layer in layers or ():
            self.add(layer)
        self._k.deferred = False
        if self._k.layers:
            self._changed()

    def add(self, layer):
        """Append a layer (a ``keras.Input``/``InputLayer`` only as the first entry)."""
        if isinstance(layer, InputLayer):
            layer = layer.output
        if isinstance(layer, KerasTensor):
            if self._k.layers or self._k.declared is not None:
                raise ConfigError(f"Sequential '{self.name}': a keras.Input is only allowed as the "
                                  f"first entry")
            self._k.declared = jax.ShapeDtypeStruct((1,) + tuple(layer.shape[1:]), layer.dtype)
        elif isinstance(layer, Layer):
            if not self._k.layers and self._k.declared is None and layer._k.input_shape:
                self._k.declared = jax.ShapeDtypeStruct((1,) + layer._k.input_shape, jnp.float32)
            if any(l is layer for l in self._k.layers):
                raise ConfigError(f"Sequential '{self.name}': layer '{layer.name}' was added twice")
            self._k.layers.append(layer)
        else:
            raise TypeError(f"Sequential '{self.name}': add expected a keras layer or keras.Input, "
                            f"got {layer!r} ({type(layer).__name__})")
        self._changed()

    def pop(self):
        if not self._k.layers:
            raise ConfigError(f"Sequential '{self.name}': pop on an empty model")
        layer = self._k.layers.pop()
        layer._k.home = None
        self._changed()
        return layer

    def _changed(self):
        self._k.module = None
        self._k.eager = {}
        self._k.trainer = None
        if self._k.deferred:
            return
        if self._k.root is not None or self._k.declared is not None:
            # (Re)build now, keeping the weights of layers that already have them.
            spec = self._k.declared or jax.ShapeDtypeStruct(
                (1,) + tuple(self._k.input_spec.shape[1:]), self._k.input_spec.dtype)
            if self._k.layers:
                self._build_spec(spec)
            else:
                self._k.input_spec = jax.ShapeDtypeStruct((None,) + tuple(spec.shape[1:]),
                                                          spec.dtype)

    def _make_module(self):
        return CoreSequential([l.module for l in self._k.layers])

    @property
    def layers(self):
        return list(self._k.layers)

    def _child_names(self):
        return {id(l): k for l, k in zip(self._k.layers, self.module.names)}

    def _children(self):
        return list(zip(self.module.names, self._k.layers))

    def _build_spec(self, spec):
        if not self._k.layers:
            raise ConfigError(f"Sequential '{self.name}': cannot build a model with no layers")
        existing = {k: l._weights_tree() for k, l in self._children()}
        Model._build_spec(self, spec)
        params, state = self._k.root["params"], self._k.root["state"]
        # Keep weights of layers built before (on their own or in another model) when they fit.
        for key, have in existing.items():
            if have is not None and _same_shapes(have, (params[key], state[key])):
                params[key], state[key] = have
        self._home_children()
        # Output shapes per layer, for summary().
        shapes, x = {}, jax.ShapeDtypeStruct((1,) + tuple(spec.shape[1:]), spec.dtype)
        for key, layer in self._children():
            x = jax.eval_shape(lambda p, s, v, m=layer.module: m.apply(p, s, v)[0],
                               params[key], state[key], x)
            shapes[key] = (None,) + tuple(x.shape[1:])
        self._k.shapes = shapes

    def call(self, inputs, training=None):
        return self(inputs, training=training)


def _same_shapes(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and
            all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(la, lb)))


# ---------------------------------------------------------------------- Functional
class Functional(Model):
    """``keras.Model(inputs, outputs)`` over ``keras.Input`` and layer calls on KerasTensors."""

    def __init__(self, inputs, outputs, name=None):
        Model.__init__(self, name=name)
        if not _has_kt(inputs) or not _has_kt(outputs):
            raise ConfigError("Model(inputs, outputs): expected keras.Input tensors as inputs and "
                              "the KerasTensors that layer calls returned as outputs")
        self._k.inputs, self._k.outputs = inputs, outputs
        in_ids = {id(t) for t in jax.tree_util.tree_leaves(inputs, is_leaf=_is_kt)}
        nodes, seen = [], set()

        def visit(t):
            node = t._node
            if node is None:
                if id(t) not in in_ids:
                    raise ConfigError(f"Model(inputs, outputs): the outputs depend on the input "
                                      f"{t.name!r}, which is not in inputs=")
                return
            if id(node) in seen:
                return
            for i in jax.tree_util.tree_leaves(node.inputs, is_leaf=_is_kt):
                visit(i)
            seen.add(id(node))
            nodes.append(node)
        for t in jax.tree_util.tree_leaves(outputs, is_leaf=_is_kt):
            visit(t)
        self._k.nodes = nodes
        self._k.graph_layers = list(dict.fromkeys(n.layer for n in nodes))
        ins = jax.tree_util.tree_leaves(inputs, is_leaf=_is_kt)
        spec = jax.tree_util.tree_map(lambda t: t._spec(), inputs, is_leaf=_is_kt)
        if len(ins) == 1:
            spec = ins[0]._spec()
        self._build_spec(spec)
        for node in nodes:
            self._k.shapes.setdefault(node.layer.name, jax.tree_util.tree_map(
                lambda t: t.shape, node.outputs, is_leaf=_is_kt))

    def _build_spec(self, spec):
        if isinstance(spec, jax.ShapeDtypeStruct):
            return Model._build_spec(self, spec)
        params, state = self.module.init(next_key(), spec)
        self._k.root = {"params": params, "state": state}
        self._k.input_spec = None
        self._home_children()

    def _child_names(self):
        return {id(l): l.name for l in self._k.graph_layers}

    def _children(self):
        return [(l.name, l) for l in self._k.graph_layers]

    @property
    def layers(self):
        return list(self._k.graph_layers)

    @property
    def inputs(self):
        return self._k.inputs

    @property
    def outputs(self):
        return self._k.outputs

    def call(self, inputs, training=None):
        env = {}
        for t, v in zip(jax.tree_util.tree_leaves(self._k.inputs, is_leaf=_is_kt),
                        jax.tree_util.tree_leaves(inputs)):
            env[id(t)] = v
        for node in self._k.nodes:
            args = jax.tree_util.tree_map(lambda t: env[id(t)], node.inputs, is_leaf=_is_kt)
            out = node.layer(args, training=training)
            for t, v in zip(jax.tree_util.tree_leaves(node.outputs, is_leaf=_is_kt),
                            jax.tree_util.tree_leaves(out)):
                env[id(t)] = v
        return jax.tree_util.tree_map(lambda t: env[id(t)], self._k.outputs, is_leaf=_is_kt)
