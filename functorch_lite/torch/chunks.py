"""A training graph's batch in pieces: the replay of ``loss.backward()`` (+ ``step()``) runs the
per-example part of the graph once per piece of the minibatch, as ``fit`` does
(``core/xla.py: train_chunks``: on XLA:CPU a convolutional network trains faster so).

The minibatch is the rows a step gathers itself (``xs[idx]``, a ``DataLoader`` batch: ops
``rows`` / ``take_rows``).  An op is run per piece when it computes each example on its own
and all its batched inputs are pieces:

- a functional-core layer (``core_apply``) that says ``per_example``, without state or key;
- element-wise ops of one tensor, and of two when the other one is not batched and broadcasts
  without touching the batch axis;
- ``reshape`` that keeps the batch axis (``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``).

Any other op that reads a batched value (the loss, a reduction, a BatchNorm, a dropout...) gets
the pieces joined back into the whole batch first, so it computes exactly what it would have:
whatever the graph, the result is the unsplit one up to float summation order.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from ..core import xla
from ..core.combinators import Sequential
from . import layout

__all__ = ["pieces_for", "run_in_pieces"]

_SOURCES = ("rows", "take_rows")


def pieces_for(entries) -> int:
    """How many pieces a training graph's minibatch is run in (1: whole).  Only graphs whose
    core layers all compute each example on their own, with convolutions (the CPU policy of
    ``xla.train_chunks``), on the minibatch size of the first ``rows``/``take_rows``."""
    sources = [e for e in entries if e[0] in _SOURCES]
    if not sources:
        return 1
    modules = [dict(e[1]).get("module") for e in entries if e[0] == "core_apply"]
    idx = entries[sources[0][2][1]]
    if idx[0] != "L" or not isinstance(idx[1], tuple) or len(idx[1]) != 2 \
            or len(idx[1][0]) != 1:
        return 1                # the index is computed in the graph: its size is not known here
    return xla.train_chunks(Sequential(modules), idx[1][0][0])


def _shape(v):
    return layout._shape(v)


def _join(parts):
    if isinstance(parts[0], layout.ChannelsLast):
        return layout.ChannelsLast(jnp.concatenate([p.a for p in parts]))
    return jnp.concatenate(parts)


def _per_example(op, kw, args, batched, n_batch, piece) -> bool:
    """Whether ``op`` maps each example of its batched inputs on its own (``args``: the first
    piece of each batched input, the whole value of the others)."""
    if op == "core_apply":
        m = kw.get("module")
        return (batched[0] and not any(batched[1:]) and getattr(m, "per_example", False) is True
                and not kw.get("state") and not kw.get("key") and not kw.get("extra"))
    if op in layout._ELEMENTWISE:
        return len(args) == 1
    if op in layout._BINARY:
        if len(args) == 1 or all(batched):
            return len(args) == 1 or _shape(args[0]) == _shape(args[1])
        big, small = (args[0], args[1]) if batched[0] else (args[1], args[0])
        sb, ss = _shape(big), _shape(small)
        return len(ss) < len(sb) or (len(ss) == len(sb) and ss[0] == 1)
    if op == "reshape":
        shape = tuple(kw.get("shape", ()))
        sx = _shape(args[0])
        return (len(args) == 1 and len(shape) >= 1 and len(sx) >= 1 and sx[0] == piece
                and (shape[0] == n_batch or (shape[0] == -1 and -1 not in shape[1:]
                                             and math.prod(shape[1:]) == math.prod(sx[1:]))))
    return False


def run_in_pieces(entries, env, ops, k):
    """Replay ``entries`` into ``env`` (the leaves already there), the per-example part of the
    graph once per piece of the minibatch (``k`` pieces); every value ends up whole in ``env``."""
    pieces: dict[int, list] = {}      # entry -> its value per piece
    n_batch = piece = None

    def whole(j):
        if env[j] is None:
            env[j] = _join(pieces[j])
        return env[j]

    for i, e in enumerate(entries):
        if e[0] == "L":
            continue
        op, kw, ins = e[0], dict(e[1]), e[2]
        fn = ops[op]
        if op in _SOURCES:
            v = env[i] = layout.run(op, fn, kw, [whole(j) for j in ins])
            if n_batch is None:
                n_batch = v.shape[0]
                piece = n_batch // k
            if v.shape[0] == n_batch:
                pieces[i] = [v[p * piece:(p + 1) * piece] for p in range(k)]
            continue
        batched = [j in pieces for j in ins]
        args = [pieces[j][0] if j in pieces else env[j] for j in ins]
        if any(batched) and _per_example(op, kw, args, batched, n_batch, piece):
            if op == "reshape" and kw["shape"][0] == n_batch:
                kw = {**kw, "shape": (piece,) + tuple(kw["shape"][1:])}
            pieces[i] = [layout.run(op, fn, kw, [pieces[j][p] if b else env[j]
                                                 for j, b in zip(ins, batched)])
                         for p in range(k)]
        else:
            env[i] = layout.run(op, fn, kw, [whole(j) for j in ins])
    for j in pieces:
        whole(j)
    return env
