"""``torch.func``: a torch-style module or function as a pure JAX function.

``functional_call(model, params, x)`` runs ``model`` with the given parameter arrays (JAX
tracers included) and returns arrays; ``make_functional(model)`` gives ``(apply, params)``;
``grad``/``vmap``/``jacrev``/... take functions written with torch ops on Tensors.  Inside, ops
run eagerly on the arrays they get (``graph.functional_mode``), so ``jax.jit``/``grad``/``vmap``
trace straight through the torch code.
"""
from __future__ import annotations

import jax
import numpy as np

from ..core.errors import TreeMismatchError
from . import random as _random
from .graph import functional_mode, leaf, materialize
from ._base import wrap
from .tensor import Tensor

__all__ = ["functional_call", "make_functional", "make_functional_with_buffers", "grad",
           "grad_and_value", "vmap", "jacrev", "jacfwd", "hessian", "vjp", "jvp"]


def _is_array(x):
    return isinstance(x, (jax.Array, np.ndarray, jax.core.Tracer))


def to_tensors(tree):
    """Arrays (tracers included) -> Tensors, through tuples/lists/dicts."""
    return jax.tree_util.tree_map(lambda a: wrap(leaf(a)) if _is_array(a) else a, tree,
                                  is_leaf=lambda x: isinstance(x, Tensor))


def to_arrays(tree):
    """Tensors -> their arrays (materialising lazy ones outside functional mode)."""
    return jax.tree_util.tree_map(
        lambda t: (t._node.value if t._node.value is not None else materialize(t._node))
        if isinstance(t, Tensor) else t, tree, is_leaf=lambda x: isinstance(x, Tensor))


def _value_of(v):
    return v._value() if isinstance(v, Tensor) else v


def _call_with(module, params, state, args, kwargs, *, key=None, train=None, strict=False,
               tie_weights=True):
    """Run ``module(*args, **kwargs)`` with parameter values ``params`` (flat dict by torch
    name) and buffer values ``state``; outputs as arrays, ``(y, new_state)`` with ``state``."""
    params = dict(params or {})
    state_in = state
    state = dict(state or {})
    entries = module._state_entries()
    named_params = {n for n, (m, a, k) in entries.items() if k == "param"}
    buffer_owner = {}
    for mp, m in module.named_modules():
        for a, b in m._buffers.items():
            if b is not None:
                buffer_owner[(mp + "." if mp else "") + a] = (m, a)
    if strict:
        missing = sorted(named_params - set(params))
        extra = sorted(set(params) - named_params - set(buffer_owner))
        if missing or extra:
            raise TreeMismatchError(f"functional_call({type(module).__name__}): params do not match "
                                    f"the module's parameters; missing: {missing}, extra: {extra}")
    swaps = []
    for name, v in list(params.items()) + list(state.items()):
        if name in entries and entries[name][2] == "param":
            m, attr, _ = entries[name]
            swaps.append((m._parameters, attr, m._parameters[attr]))
            m._parameters[attr] = wrap(leaf(_value_of(v)))
        elif name in buffer_owner:
            m, attr = buffer_owner[name]
            swaps.append((m._buffers, attr, m._buffers[attr]))
            m._buffers[attr] = wrap(leaf(_value_of(v)))
        else:
            raise TreeMismatchError(f"functional_call({type(module).__name__}): unexpected key "
                                    f"'{name}'; the module has parameters {sorted(named_params)} "
                                    f"and buffers {sorted(buffer_owner)}")
    # buffers a forward may replace or update in place (BatchNorm statistics) are restored too
    nodes = []
    for name, (m, attr) in buffer_owner.items():
        if name not in state:
            swaps.append((m._buffers, attr, m._buffers[attr]))
            nodes.append((m._buffers[attr], m._buffers[attr]._node))
    modes = [(m, m.training) for m in module.modules()]
    if train is not None:
        module.train(bool(train))
    _random.push_key(key)
    try:
        with functional_mode():
            out = module(*to_tensors(tuple(args)), **to_tensors(dict(kwargs or {})))
            out = to_arrays(out)
            new_state = {name: m._buffers[attr]._node.value for name, (m, attr) in buffer_owner.items()
                         if m._buffers[attr] is not None}
    finally:
        _random.pop_key()
        for store, attr, old in reversed(swaps):
            store[attr] = old
        for t, node in nodes:
            t._set_node(node)
        for m, mode in modes:
            m.__dict__["training"] = mode
    return out if state_in is None else (out, new_state)


def functional_call(module, parameter_and_buffer_dicts, args=(), kwargs=None, *, tie_weights=True,
                    strict=False):
    """``torch.func.functional_call``: ``module`` run with the given parameters/buffers (a dict
    or a tuple of dicts, by torch name); returns arrays (or Tensors when given Tensors)."""
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, (tuple, list)):
        merged = {}
        for d in dicts:
            dup = set(merged) & set(d)
            if dup:
                raise ValueError(f"functional_call got multiple values for keys {sorted(dup)}")
            merged.update(d)
        dicts = merged
    args = args if isinstance(args, tuple) else (args,)
    tensors_in = any(isinstance(v, Tensor) for v in dicts.values()) or any(
        isinstance(a, Tensor) for a in args)
    out = _call_with(module, dicts, None, to_arrays(args), to_arrays(kwargs or {}), strict=strict)
    return to_tensors(out) if tensors_in else out


def make_functional(model, *, with_buffers: bool = False):
    """``(apply, params)``: ``apply(params, *args)`` is a pure JAX function of the parameter
    arrays (a dict by torch name) and inputs, for ``jax.jit``/``grad``/``vmap``."""
    params = {n: p._value() for n, p in model.named_parameters()}
    buffers = {n: b._value() for n, b in model.named_buffers()}

    def apply(params, *args, **kwargs):
        return _call_with(model, {**buffers, **params}, None, args, kwargs)
    if with_buffers:
        def apply_with_buffers(params, buffers, *args, **kwargs):
            return _call_with(model, {**buffers, **params}, None, args, kwargs)
        return apply_with_buffers, params, buffers
    return apply, params


def make_functional_with_buffers(model):
    return make_functional(model, with_buffers=True)


def _tensor_fn(func):
    """``func`` over Tensors -> a function over arrays (run in functional mode)."""
    def inner(*args, **kwargs):
        with functional_mode():
            return to_arrays(func(*to_tensors(args), **to_tensors(kwargs)))
    return inner


def _transform(jax_transform, func, **kw):
    fn = jax_transform(_tensor_fn(func), **kw)

    def outer(*args, **kwargs):
        return to_tensors(fn(*to_arrays(args), **to_arrays(kwargs)))
    return outer


def grad(func, argnums=0, has_aux=False):
    return _transform(jax.grad, func, argnums=argnums, has_aux=has_aux)


def grad_and_value(func, argnums=0, has_aux=False):
    vg = _transform(jax.value_and_grad, func, argnums=argnums, has_aux=has_aux)

    def outer(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return g, value
    return outer


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    if randomness not in ("error", "different", "same"):
        raise ValueError(f"Only allowed values for randomness are 'error', 'different', or 'same'. "
                         f"Got {randomness}")
    return _transform(jax.vmap, func, in_axes=in_dims, out_axes=out_dims)


def jacrev(func, argnums=0, has_aux=False):
    return _transform(jax.jacrev, func, argnums=argnums, has_aux=has_aux)


def jacfwd(func, argnums=0, has_aux=False, randomness="error"):
    return _transform(jax.jacfwd, func, argnums=argnums, has_aux=has_aux)


def hessian(func, argnums=0):
    return _transform(jax.hessian, func, argnums=argnums)


def vjp(func, *primals, has_aux=False):
    out = jax.vjp(_tensor_fn(func), *to_arrays(primals), has_aux=has_aux)
    fn = out[1]

    def vjp_fn(*cotangents):
        return to_tensors(fn(*to_arrays(cotangents)))
    return (to_tensors(out[0]), vjp_fn) + tuple(to_tensors(out[2:]))


def jvp(func, primals, tangents, *, has_aux=False):
    out = jax.jvp(_tensor_fn(func), tuple(to_arrays(primals)), tuple(to_arrays(tangents)),
                  has_aux=has_aux)
    return to_tensors(out)
