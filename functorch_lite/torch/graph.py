"""Record, do not dispatch: lazy nodes, the compile cache, backward and materialisation.

A tensor produced under autograd (or from another lazy tensor) is a :class:`Node`
``(op, attrs, inputs)`` whose leaves are concrete arrays (parameters, data, keys).  Nothing runs
until a value is needed (``.item()``, ``print``, ``optimizer.step()``); then :func:`flush`
turns every pending node that is still alive into ONE pure function of the leaves, compiles it
with ``jax.jit`` (cached by the graph's structure, shapes and dtypes; leaves are arguments and
Python scalars static attributes) and runs it.  ``loss.backward()`` only registers a pending
:class:`Backward`: the next flush runs ``jax.value_and_grad`` of the loss in the same compiled
call, and ``optimizer.step()`` adds its update to that call, so a training step is one XLA
computation.  Recording is cheap: a node stores references, its shape comes from a cached
``jax.eval_shape`` per (op, attributes, input shapes).
"""
from __future__ import annotations

import itertools
import sys
import weakref
from typing import Callable

import jax
import jax.numpy as jnp

from ..core import xla
from ..core.interrupts import InterruptGuard
from ..layers import shifted_conv
from . import chunks, layout

__all__ = ["Node", "OPS", "register", "record", "leaf", "flush", "materialize", "Backward",
           "start_backward", "COMPILES", "CompileLog", "grad_enabled", "set_grad_enabled",
           "functional_mode", "is_functional"]

# ----------------------------------------------------------------------------- modes

class _State:
    grad_enabled = True
    functional = 0   # > 0 inside functional_call / torch.func transforms: run everything eagerly
    pending = 0      # lazy nodes recorded since the last flush


#: a graph that grows past this many nodes without anything asking for a value is run anyway
MAX_PENDING = 20000


STATE = _State()


def grad_enabled() -> bool:
    return STATE.grad_enabled


def set_grad_enabled(mode: bool) -> bool:
    old, STATE.grad_enabled = STATE.grad_enabled, bool(mode)
    return old


def is_functional() -> bool:
    return STATE.functional > 0


class functional_mode:
    """Inside, ops run eagerly on whatever arrays they get (JAX tracers included): the torch
    code becomes a pure JAX function that ``jit``/``grad``/``vmap`` can transform."""

    def __enter__(self):
        STATE.functional += 1

    def __exit__(self, *exc):
        STATE.functional -= 1


# ----------------------------------------------------------------------------- nodes

_SEQ = itertools.count()


class Node:
    """One value of the graph: a leaf (``op is None``, ``value`` set) or an op on input nodes.

    ``aval`` is ``(shape, dtype)`` or, for multi-output ops, a tuple of them (``multi``).
    """
    __slots__ = ("op", "attrs", "inputs", "aval", "value", "requires_grad", "owner", "freed",
                 "seq", "cheap", "multi", "backward", "source", "__weakref__")

    def __init__(self, op, attrs, inputs, aval, value, requires_grad=False, multi=False):
        self.op = op
        self.attrs = attrs
        self.inputs = inputs
        self.aval = aval
        self.value = value
        self.requires_grad = requires_grad
        self.owner = None      # weakref to the tensor that receives .grad (leaves requiring grad)
        self.freed = False     # its graph was consumed by a backward (retain_graph=False)
        self.seq = next(_SEQ)
        self.cheap = False
        self.multi = multi
        self.backward = None   # the pending Backward of a lazy gradient
        self.source = None     # the concrete tensor this one is rows of (``ys[idx]``, a batch)

    def __repr__(self):
        state = "leaf" if self.op is None else self.op
        return f"Node({state}, aval={self.aval}, {'value' if self.value is not None else 'lazy'})"


def _aval_of(value):
    if isinstance(value, tuple):
        return tuple(_aval_of(v) for v in value)
    return (tuple(value.shape), jnp.dtype(value.dtype))


def leaf(value, requires_grad=False) -> Node:
    """A concrete node holding ``value`` (a jax array, a tracer, or a numpy array/scalar)."""
    multi = isinstance(value, tuple)
    return Node(None, (), (), _aval_of(value), value, requires_grad, multi)


# ----------------------------------------------------------------------------- ops

#: op name -> implementation ``fn(*input_arrays, **attrs)`` over jax arrays
OPS: dict[str, Callable] = {}
#: ops whose nodes over concrete inputs are cheap to recompute; they are not flushed as roots
CHEAP: set[str] = set()
#: ops whose output never carries a gradient (comparisons, argmax, data selection, ...)
NONDIFF: set[str] = set()


def register(name: str, *, cheap: bool = False, nondiff: bool = False):
    def deco(fn):
        OPS[name] = fn
        if cheap:
            CHEAP.add(name)
        if nondiff:
            NONDIFF.add(name)
        return fn
    return deco


_AVALS: dict = {}
_EAGER: dict = {}


def _eager(op, attrs):
    """``op`` with ``attrs`` as one jitted function (one XLA computation per op and shapes,
    instead of one per JAX primitive it uses)."""
    try:
        f = _EAGER.get((op, attrs))
    except TypeError:
        _check_attrs(op, attrs)
        raise
    if f is None:
        fn, kw = OPS[op], dict(attrs)

        def run(*xs):
            out = fn(*xs, **kw)
            return tuple(out) if isinstance(out, list) else out
        f = _EAGER[(op, attrs)] = xla.jit(run, convolutions=xla.uses_convolution(kw.get("module")))
    return f


def _infer(op, attrs, nodes):
    k = (op, attrs, tuple(n.aval for n in nodes))
    out = _AVALS.get(k)
    if out is None:
        fn = OPS[op]
        kw = dict(attrs)

        specs = [tuple(jax.ShapeDtypeStruct(s, d) for s, d in n.aval) if n.multi
                 else jax.ShapeDtypeStruct(*n.aval) for n in nodes]
        res = jax.eval_shape(lambda *xs: fn(*xs, **kw), *specs)
        if isinstance(res, (tuple, list)):
            out = (tuple((tuple(r.shape), jnp.dtype(r.dtype)) for r in res), True)
        else:
            out = ((tuple(res.shape), jnp.dtype(res.dtype)), False)
        _AVALS[k] = out
    return out


def _check_attrs(op, attrs):
    try:
        hash(attrs)
    except TypeError:
        bad = [name for name, v in attrs if not _hashable(v)]
        raise TypeError(f"torch op '{op}': attributes {bad} are not hashable, so the compiled "
                        f"graph cannot be cached by them; pass numbers, tuples or strings") from None


def _hashable(v):
    try:
        hash(v)
        return True
    except TypeError:
        return False


def record(op: str, nodes, attrs: tuple = (), lazy: bool = False) -> Node:
    """Apply ``op`` to ``nodes``: eagerly when every input is concrete and no gradient is
    tracked (or inside ``functional_mode``), else (or with ``lazy=True``) as a lazy node."""
    fn = OPS[op]
    st = STATE
    rg = False
    for n in nodes:
        if n.value is None:
            lazy = True
        if n.requires_grad:
            rg = True
    rg = rg and st.grad_enabled
    if st.functional:
        vals = [n.value for n in nodes]
        out = fn(*vals, **dict(attrs)) if attrs else fn(*vals)
        return leaf(tuple(out) if isinstance(out, list) else out)
    if not (lazy or rg):
        return leaf(_eager(op, attrs)(*[n.value for n in nodes]))
    for n in nodes:
        if n.value is None and n.op == "grad":
            flush()   # a pending gradient used in a new computation: run its backward first
            break
    if st.pending > MAX_PENDING:
        flush(include_cheap=True)   # nothing asked for a value for long: cut the chain here
    st.pending += 1
    try:
        aval, multi = _infer(op, attrs, nodes)
    except TypeError as e:
        if "unhashable" in str(e):
            _check_attrs(op, attrs)
        raise
    if rg and (op in NONDIFF or (not multi and not jnp.issubdtype(aval[1], jnp.inexact))):
        rg = False
    node = Node(op, attrs, tuple(nodes), aval, None, rg, multi)
    if op in CHEAP and not rg:
        node.cheap = all(n.value is not None or n.cheap for n in nodes)
    return node


# ----------------------------------------------------------------------------- compile log

class CompileLog:
    """How many graphs were compiled, of which kind, and why each one was."""

    def __init__(self):
        self.count = 0
        self.runs = 0       # compiled calls executed (a training step is one)
        self.by_kind: dict[str, int] = {}
        self.reasons: list[str] = []
        self._last: dict[str, tuple] = {}

    def record(self, kind: str, key) -> None:
        prev = self._last.get(kind)
        why = "first compile" if prev is None else _explain(prev, key)
        self._last[kind] = key
        self.count += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.reasons.append(f"{kind}: {why}")

    def reset(self) -> None:
        self.__init__()

    def __repr__(self):
        return f"CompileLog(count={self.count}, runs={self.runs}, by_kind={self.by_kind})"


def _describe_entry(e):
    if e[0] == "L":
        return f"input {e[1][0]} {e[1][1]}{' (grad)' if e[2] == 'd' else ''}"
    return f"{e[0]}({', '.join(f'{k}={v!r}' for k, v in e[1])})"


def _explain(prev, key) -> str:
    pe, ke = prev[0], key[0]
    for i, (a, b) in enumerate(zip(pe, ke)):
        if a != b:
            return f"node {i} changed: {_describe_entry(a)} -> {_describe_entry(b)}"
    if len(pe) != len(ke):
        return f"graph size changed: {len(pe)} -> {len(ke)} nodes"
    for name, a, b in zip(("roots", "backward", "update"), prev[1:], key[1:]):
        if a != b:
            return f"{name} changed: {a!r} -> {b!r}"[:300]
    return "same key (JAX retraced: argument types or weak types changed)"


COMPILES = CompileLog()

# ----------------------------------------------------------------------------- traversal

LIVE: "weakref.WeakSet" = weakref.WeakSet()   # tensors whose node is lazy (set by tensor.py)
_PENDING: list = [None]                         # the Backward waiting for the next flush
WRAP_GRAD: list = [None]                        # tensor.py: node -> Tensor (for .grad)


class _Trace:
    """Post-order numbering of a graph: ``entries`` is the structural key, ``leaves`` the
    nodes whose values are the compiled function's arguments."""
    __slots__ = ("entries", "index", "leaves", "kinds", "expanded")

    def __init__(self):
        self.entries: list = []
        self.index: dict = {}
        self.leaves: list = []
        self.kinds: list = []
        self.expanded: list = []

    def _leaf(self, n, kind):
        i = len(self.entries)
        self.entries.append(("L", n.aval if not n.multi else ("multi", n.aval), kind))
        self.index[id(n)] = i
        self.leaves.append(n)
        self.kinds.append(kind)
        return i

    def visit(self, root, differentiate: bool) -> int:
        index = self.index
        if id(root) in index:
            return index[id(root)]
        stack = [(root, False)]
        while stack:
            n, done = stack.pop()
            if id(n) in index:
                continue
            if done:
                index[id(n)] = len(self.entries)
                self.entries.append((n.op, n.attrs, tuple(index[id(i)] for i in n.inputs)))
                self.expanded.append(n)
                continue
            if n.op is None or n.value is not None and not (differentiate and n.requires_grad):
                if n.value is None:
                    raise RuntimeError(f"internal: lazy leaf {n!r}")
                self._leaf(n, "d" if differentiate and n.requires_grad and n.op is None else "c")
                continue
            if n.freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time (or directly access saved "
                    "tensors after they have already been freed). Saved intermediate values of the "
                    "graph are freed when you call .backward() or autograd.grad(). Specify "
                    "retain_graph=True if you need to backward through the graph a second time or "
                    "if you need to access saved tensors after calling backward.")
            stack.append((n, True))
            for i in reversed(n.inputs):
                if id(i) not in index:
                    stack.append((i, False))
        return index[id(root)]


class Backward:
    """A ``loss.backward()`` waiting for the next flush: the traced loss graph, the leaves it
    differentiates, their lazy ``.grad`` nodes and the gradients they accumulate into."""

    def __init__(self, loss, seed, retain_graph):
        self.loss, self.seed, self.retain_graph = loss, seed, retain_graph
        self.trace = _Trace()
        self.loss_index = self.trace.visit(loss, True)
        self.seed_index = self.trace.visit(seed, False) if seed is not None else None
        self.diff = [n for n, k in zip(self.trace.leaves, self.trace.kinds) if k == "d"]
        self.n_expanded = len(self.trace.expanded)   # the loss graph's own nodes (freed after)
        self.grad_nodes: list = []
        self.old: list = []       # accumulated-into gradient value per diff leaf, or None
        self.done = False


def start_backward(loss: Node, seed: Node | None, retain_graph: bool) -> Backward:
    """Register ``loss.backward()``: every leaf requiring grad in the graph gets a lazy
    ``.grad`` (accumulating into an existing one, as PyTorch does)."""
    if _PENDING[0] is not None:
        flush()
    b = Backward(loss, seed, retain_graph)
    for n in b.diff:
        owner = n.owner() if n.owner is not None else None
        old = None
        if owner is not None and owner.grad is not None:
            old = owner.grad._value()
        g = Node("grad", (), (), n.aval, None)
        g.backward = b
        b.grad_nodes.append(g)
        b.old.append(old)
        if owner is not None:
            owner.grad = WRAP_GRAD[0](g)
    _PENDING[0] = b
    return b


def pending_backward() -> Backward | None:
    return _PENDING[0]


# ----------------------------------------------------------------------------- flush

_CACHE: dict = {}


def materialize(node: Node):
    """The value of ``node``, running (compiled, cached) whatever it still needs."""
    if node.value is None:
        flush(extra=(node,))
        if node.value is None:
            raise RuntimeError(f"internal: {node!r} was not materialised by the flush")
    if _FRESH:
        _FRESH.pop(id(node.value), None)   # handed out: something may now share its buffer
    return node.value


def mark_step():
    """A step boundary (the DataLoader calls it for every batch): run whatever is pending, so
    that graphs never grow across steps even when nothing asks for a value."""
    flush()


def flush(extra=(), update=None, include_cheap=False):
    """Run every pending computation still alive as one compiled call: the pending backward
    (if any), the values of all live lazy tensors (but cheap data selections, unless
    ``include_cheap``) and ``update`` (an optimizer step fused in).

    A Ctrl-C meanwhile waits until every value, gradient and parameter is stored (then raises
    ``KeyboardInterrupt``): a step is never half applied.
    """
    with InterruptGuard():
        _flush(extra, update, include_cheap)


def _flush(extra, update, include_cheap):
    b = _PENDING[0]
    _PENDING[0] = None
    STATE.pending = 0
    roots = []
    seen = set()
    for t in list(LIVE):
        n = t._node
        if n.value is None and (include_cheap or not n.cheap) and n.op != "grad" \
                and id(n) not in seen:
            seen.add(id(n))
            roots.append(n)
    for n in extra:
        if n.value is None and n.op != "grad" and id(n) not in seen:
            seen.add(id(n))
            roots.append(n)
    if b is None and not roots:
        if update is not None:
            raise RuntimeError("internal: fused update without a pending backward")
        return
    roots.sort(key=lambda n: n.seq)
    tr = b.trace if b is not None else _Trace()
    root_idx = tuple(tr.visit(r, False) for r in roots)
    diff_is, const_is = [], []
    for n, k in zip(tr.leaves, tr.kinds):
        (diff_is if k == "d" else const_is).append(tr.index[id(n)])
    if b is not None:
        acc = tuple(o is not None for o in b.old)
        bkey = (b.loss_index, b.seed_index, acc)
    else:
        acc, bkey = (), None
    ukey = update.key if update is not None else None
    key = (tuple(tr.entries), root_idx, bkey, ukey)
    fn = _CACHE.get(key)
    if fn is None:
        fn = _CACHE[key] = _compile(key, tuple(diff_is), tuple(const_is), update)
    diff_vals = [n.value for n, k in zip(tr.leaves, tr.kinds) if k == "d"]
    const_vals = [n.value for n, k in zip(tr.leaves, tr.kinds) if k != "d"]
    old = [o for o in b.old if o is not None] if b is not None else []
    if update is not None:
        replaced = set(update.idx)
        don = [diff_vals[i] for i in update.idx]
        keep = [v for i, v in enumerate(diff_vals) if i not in replaced]
        del diff_vals   # before _owned counts the references
        don, ustate = _owned(don, update.state)
        uout, outs, loss_value, grads = fn(don, keep, const_vals, old, ustate, update.args)
        _mark_fresh(uout)
    else:
        uout, outs, loss_value, grads = fn([], diff_vals, const_vals, old, None, None)
    COMPILES.runs += 1
    for n, v in zip(roots, outs):
        n.value = v
    if b is not None:
        if b.seed is None and b.loss.value is None:
            b.loss.value = loss_value
        for g, v in zip(b.grad_nodes, grads):
            g.value = v
            g.backward = None      # the gradients no longer keep the step's graph alive
        b.done = True
        if not b.retain_graph:
            for n in tr.expanded[:b.n_expanded]:
                if n.requires_grad:
                    n.freed = True
                    n.inputs = ()
    for n in roots:
        if not n.requires_grad:
            n.inputs = ()
    for t in list(LIVE):
        if t._node.value is not None:
            LIVE.discard(t)
    if b is not None:
        b.trace = None
    if update is not None:
        update.store(uout)


#: id -> weakref of the arrays a fused step produced (new params and optimizer state) that
#: nothing has been handed since: no other array can share their buffers
_FRESH: dict = {}


def _mark_fresh(uout):
    new_p, new_s = uout
    for a in itertools.chain(new_p, *(s.values() for s in new_s)):
        if isinstance(a, jax.Array):
            k = id(a)
            _FRESH[k] = weakref.ref(a, lambda _, k=k: _FRESH.pop(k, None))


def _consumable(a, limit) -> bool:
    """``a`` may be donated as it is: a fresh step output (no other array object can share its
    buffer, as a resharded copy or a view would) that no tensor but its owner holds (``limit``:
    the references of the owner and of the caller's frame; this frame adds two)."""
    r = _FRESH.get(id(a))
    return r is not None and r() is a and sys.getrefcount(a) <= limit + 2


def _owned(params, state):
    """The params the update replaces and the optimizer's state, for the compiled step to
    consume (donate: it writes their new values into the same buffers, sparing the allocation
    and page faults of fresh ones, as ``fit``'s donated step does).  An array that is not a
    fresh step output held only by its owner goes as a copy, so that whatever else holds it (a
    ``detach()``, ``state_dict()`` values, exported optimizer state, a deep copy of the model,
    a replica) stays readable."""
    own_p = []
    for a in params:    # held by: its leaf node, ``params``, ``a`` (+ getrefcount's argument)
        own_p.append(a if _consumable(a, 3) else jnp.array(a, copy=True))
    own_s = []
    for s in state:
        own = {}
        for k in s:
            v = s[k]    # held by: the optimizer's dict, ``v`` (+ getrefcount's argument)
            own[k] = v if _consumable(v, 2) else jnp.array(v, copy=True)
        own_s.append(own)
    return own_p, own_s


def _compile(key, diff_is, const_is, update):
    entries, root_idx, bkey, ukey = key
    update_fn = update.fn if update is not None else None
    replaced = tuple(update.idx) if update is not None else ()
    kind = ("step" if update is not None else "backward") if bkey is not None else "forward"

    # a training graph may run its minibatch in pieces (chunks.py), as fit does
    k = chunks.pieces_for(entries) if bkey is not None else 1

    def run_graph(diff_vals, const_vals, k=1):
        env = [None] * len(entries)
        for i, v in zip(diff_is, diff_vals):
            env[i] = v
        for i, v in zip(const_is, const_vals):
            env[i] = v
        if k > 1:
            return chunks.run_in_pieces(entries, env, OPS, k)
        for i, e in enumerate(entries):
            if e[0] != "L":   # convolutions run channels-last inside (layout.py)
                env[i] = layout.run(e[0], OPS[e[0]], dict(e[1]), [env[j] for j in e[2]])
        return env

    def merge(don, keep):
        """The differentiated leaves in graph order, the replaced params at ``replaced``."""
        at = dict(zip(replaced, don))
        rest = iter(keep)
        return [at[i] if i in at else next(rest) for i in range(len(don) + len(keep))]

    def body(don, keep, const_vals, old, ustate, uargs):
        # the update's outputs come first: JAX pairs each donated input with the first output
        # of its shape, so every param and state buffer is reused for its own new value
        COMPILES.record(kind, key)
        diff_vals = merge(don, keep)
        if bkey is None:
            env = run_graph(diff_vals, const_vals)
            return None, [layout.logical(env[i]) for i in root_idx], None, []
        loss_i, seed_i, acc = bkey

        def objective(dv):
            env = run_graph(dv, const_vals, k)
            obj = layout.logical(env[loss_i])
            if seed_i is not None:
                obj = jnp.sum(obj * layout.logical(env[seed_i]))
            elif jnp.ndim(obj):
                obj = jnp.sum(obj)
            return obj, [layout.logical(env[i]) for i in root_idx]

        # one-channel convs stay lax.conv here: layers/shifted_conv.py's sum of shifted windows
        # measured slower in this graph (the MNIST CNN loop: 4800 -> 4400 samples/s; the pool
        # and relu backward fusions recompute the 9-tap sum, 2.4-2.6 ms each against 1.0-1.2
        # ms in fit's step), while it is faster in its forward-only graphs (eval, predict); since
        # the max pool writes its index in the forward (layers/pool.py) the two measured the same
        # here in one run (20.8 ms per step each, 9 alternating blocks, 2026-12-04) and not in a
        # later one (benchmarks.contenders' CNN loop on random data, best 40-step block of
        # five, three alternating pairs of processes: lax.conv 21.6-22.6 ms per step, the
        # shifted sum 23.9-24.1)
        with shifted_conv.disabled():
            (value, outs), grads = jax.value_and_grad(objective, has_aux=True)(list(diff_vals))
        olds = iter(old)
        grads = [g + next(olds) if a else g for g, a in zip(grads, acc)]
        uout = update_fn(diff_vals, grads, ustate, uargs) if update_fn is not None else None
        return uout, outs, value, grads

    modules = [dict(e[1]).get("module") for e in entries if e[0] == "core_apply"]
    return xla.jit(body, convolutions=xla.uses_convolution(modules),
                   **({"donate_argnums": (0, 4)} if update is not None else {}))
