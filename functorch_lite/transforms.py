"""Function transforms with torch.func names and argument names, computed by JAX.

Nothing here re-implements differentiation or batching: every transform calls ``jax.grad``,
``jax.vmap``, ``jax.jvp`` ... and only translates names, validates arguments and prefixes errors.

Return conventions (the two gradient orders differ on purpose, both are available):

- ``grad(f)(*a)`` -> ``g``;  ``has_aux=True`` -> ``(g, aux)``  (torch.func.grad and jax.grad agree).
- ``value_and_grad(f)`` -> ``(value, g)``;  ``has_aux=True`` -> ``((value, aux), g)`` (JAX order).
- ``grad_and_value(f)`` -> ``(g, value)``;  ``has_aux=True`` -> ``(g, (value, aux))`` (torch order).

An exception raised inside a transformed function comes out with the same type and the call as
a prefix, e.g. ``vmap(loss, in_dims=(None, 0)): <original message>``, chained ``from`` the
original exception (one prefix per transform level).
"""
from __future__ import annotations

import functools
import os
import types
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from .core.errors import ConfigError, TreeMismatchError, unknown_option
from .core.module import as_spec
from .layers import per_example as _per_example

__all__ = ["grad", "value_and_grad", "grad_and_value", "vmap", "jit", "jacrev", "jacfwd",
           "hessian", "jvp", "vjp", "hvp", "functional_call", "per_example_grads",
           "stack_params", "unstack_params", "ensemble", "init_ensemble"]

RANDOMNESS = ("error", "different", "same")


# ----------------------------------------------------------------------------- helpers
def _name(func) -> str:
    """``func.__name__``; for partials and callable objects their function's or class's name."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", None) or type(func).__name__


def _describe(transform: str, func, **options) -> str:
    """``"vmap(loss, in_dims=(None, 0))"``: the transform, the function and the given options."""
    opts = "".join(f", {k}={v!r}" for k, v in options.items())
    return f"{transform}({_name(func)}{opts})"


def _prefixed(e: BaseException, prefix: str):
    """``type(e)(prefix + str(e))`` with ``e``'s attributes, or None when that type cannot be
    rebuilt from one message (then the caller re-raises ``e`` unchanged)."""
    msg = prefix + str(e)
    try:
        new = type(e)(msg)
        if type(new) is not type(e) or str(new) != msg:
            return None
        # JAX's notes describe e's own traceback, so they are not copied
        new.__dict__.update({k: v for k, v in e.__dict__.items() if k != "__notes__"})
    except Exception:
        return None
    new._fl_root = getattr(e, "_fl_root", e)
    return new


_JAX_DIR = os.path.dirname(jax.__file__) + os.sep


def _without_jax_frames(tb):
    """``tb`` without JAX's internal frames (as JAX's own filtering, unless it is turned off)."""
    if jax.config.jax_traceback_filtering == "off":
        return tb
    kept = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_JAX_DIR):
            kept.append(tb)
        tb = tb.tb_next
    out = None
    for t in reversed(kept):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


def _guard(call: str, func: Callable) -> Callable:
    """Run ``func``; an exception from inside it is re-raised with ``"<call>: "`` in front."""
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as e:
            new = _prefixed(e, call + ": ")
            if new is None:
                raise
            # Chain to the original error, not to the intermediate prefixed copies, so nested
            # transforms print two tracebacks (where it failed, where it surfaced), not one per level.
            root = new._fl_root
            raise new from root.with_traceback(_without_jax_frames(root.__traceback__))
    return run


def _wraps(func, wrapper):
    """``functools.wraps`` that also works for callables without ``__name__`` (Modules)."""
    wrapper = functools.wraps(func)(wrapper)
    wrapper.__name__ = _name(func)
    return wrapper


def _check_argnums(call: str, argnums):
    ok = isinstance(argnums, int) or (
        isinstance(argnums, tuple) and argnums and all(isinstance(a, int) for a in argnums))
    if not ok or isinstance(argnums, bool):
        raise ConfigError(f"{call}: argnums expected an int or a non-empty tuple of ints, "
                          f"got {argnums!r}")


def _check_argnums_range(call: str, argnums, nargs: int):
    for a in (argnums if isinstance(argnums, tuple) else (argnums,)):
        if not -nargs <= a < nargs:
            raise ConfigError(f"{call}: argnums={argnums!r} is out of range for a call with "
                              f"{nargs} positional argument{'s' if nargs != 1 else ''}")


def _options(**kw):
    """The options that differ from their defaults, for the error prefix."""
    defaults = dict(argnums=0, has_aux=False, in_dims=0, out_dims=0, randomness="error",
                    chunk_size=None)
    return {k: v for k, v in kw.items() if v != defaults.get(k, object())}


def _differentiate(transform, jax_fn, func, argnums, has_aux):
    call = _describe(transform, func, **_options(argnums=argnums, has_aux=has_aux))
    _check_argnums(call, argnums)
    transformed = _guard(call, jax_fn(func, argnums=argnums, has_aux=has_aux))

    def wrapper(*args, **kwargs):
        _check_argnums_range(call, argnums, len(args))
        return transformed(*args, **kwargs)
    return _wraps(func, wrapper)


# ----------------------------------------------------------------------------- gradients
def grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """Gradient of scalar ``func`` w.r.t. positional argument(s) ``argnums``.

    Returns ``g`` (a tuple of them for a tuple ``argnums``); ``(g, aux)`` when ``has_aux``
    (``func`` then returns ``(value, aux)``). Same as ``torch.func.grad`` / ``jax.grad``.
    """
    return _differentiate("grad", jax.grad, func, argnums, has_aux)


def value_and_grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """``(value, g)``, or ``((value, aux), g)`` with ``has_aux``: JAX's order (``jax.value_and_grad``).
    For torch's order use :func:`grad_and_value`."""
    return _differentiate("value_and_grad", jax.value_and_grad, func, argnums, has_aux)


def grad_and_value(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """``(g, value)``, or ``(g, (value, aux))`` with ``has_aux``: torch.func's order."""
    vg = value_and_grad(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return g, value
    return _wraps(func, wrapper)


def jacrev(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """Jacobian by reverse mode (``jax.jacrev``); ``(jac, aux)`` with ``has_aux``."""
    return _differentiate("jacrev", jax.jacrev, func, argnums, has_aux)


def jacfwd(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """Jacobian by forward mode (``jax.jacfwd``); ``(jac, aux)`` with ``has_aux``."""
    return _differentiate("jacfwd", jax.jacfwd, func, argnums, has_aux)


def hessian(func: Callable, argnums=0) -> Callable:
    """Hessian of scalar ``func`` (``jax.hessian``: forward-over-reverse)."""
    call = _describe("hessian", func, **_options(argnums=argnums))
    _check_argnums(call, argnums)
    transformed = _guard(call, jax.hessian(func, argnums=argnums))

    def wrapper(*args, **kwargs):
        _check_argnums_range(call, argnums, len(args))
        return transformed(*args, **kwargs)
    return _wraps(func, wrapper)


def _as_tuple(call: str, what: str, value) -> tuple:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{call}: {what} expected a tuple with one entry per positional argument "
                        f"of the function, got {type(value).__name__}; write ({what[:-1]},) for one")
    return tuple(value)


def _primals_tangents(call, primals, tangents):
    primals = _as_tuple(call, "primals", primals)
    tangents = _as_tuple(call, "tangents", tangents)
    if len(primals) != len(tangents):
        raise ConfigError(f"{call}: got {len(primals)} primals but {len(tangents)} tangents; "
                          f"give one tangent per primal")
    return primals, tangents


def jvp(func: Callable, primals, tangents, *, has_aux: bool = False):
    """Forward mode: ``(func(*primals), J @ tangents)``, plus ``aux`` as a third item with
    ``has_aux``. ``primals`` and ``tangents`` are tuples, as in torch.func.jvp."""
    call = _describe("jvp", func, **_options(has_aux=has_aux))
    primals, tangents = _primals_tangents(call, primals, tangents)
    return _guard(call, jax.jvp)(func, primals, tangents, has_aux=has_aux)


def vjp(func: Callable, *primals, has_aux: bool = False):
    """Reverse mode: ``(func(*primals), vjp_fn)`` (plus ``aux`` with ``has_aux``); ``vjp_fn(ct)``
    returns a tuple with one cotangent per primal, as in torch.func.vjp."""
    call = _describe("vjp", func, **_options(has_aux=has_aux))
    return _guard(call, jax.vjp)(func, *primals, has_aux=has_aux)


def hvp(func: Callable, primals, tangents, *, argnums=0):
    """Hessian-vector product by forward-over-reverse: ``jvp(grad(func, argnums), primals,
    tangents)[1]``, i.e. d/de grad(func)(primals + e * tangents). With one primal this is ``H @ v``."""
    call = _describe("hvp", func, **_options(argnums=argnums))
    _check_argnums(call, argnums)
    primals, tangents = _primals_tangents(call, primals, tangents)
    _check_argnums_range(call, argnums, len(primals))
    return _guard(call, lambda: jax.jvp(jax.grad(func, argnums), primals, tangents)[1])()


# ----------------------------------------------------------------------------- vmap
def _leaf_axes(axes, tree) -> list:
    """One axis (int or None) per leaf of ``tree``, from ``axes``: an int/None or a prefix tree."""
    full = jax.tree.map(lambda ax, sub: jax.tree.map(lambda _: ax, sub), axes, tree,
                        is_leaf=lambda x: x is None)
    return jax.tree.structure(tree).flatten_up_to(full)


def _vmap_chunked(func, in_axes, out_axes, chunk_size, args):
    """``jax.vmap(func, in_axes, out_axes)(*args)`` computed ``chunk_size`` examples at a time
    (``jax.lax.map`` with ``batch_size``: a scan over vmapped chunks)."""
    jax.eval_shape(jax.vmap(func, in_axes, out_axes), *args)  # vmap's own checks, no compute
    leaves, treedef = jax.tree.flatten(args)
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    mapped = [(i, ax) for i, ax in enumerate(_leaf_axes(axes, args)) if ax is not None]
    xs = [jnp.moveaxis(leaves[i], ax, 0) for i, ax in mapped]

    def one(example):
        ls = list(leaves)
        for (i, _), x in zip(mapped, example):
            ls[i] = x
        return func(*treedef.unflatten(ls))

    out = jax.lax.map(one, xs, batch_size=chunk_size)
    out_leaves, out_def = jax.tree.flatten(out)
    placed = [y[0] if ax is None else jnp.moveaxis(y, 0, ax)
              for y, ax in zip(out_leaves, _leaf_axes(out_axes, out))]
    return out_def.unflatten(placed)


def vmap(func: Callable, in_dims=0, out_dims=0, randomness: str = "error", *,
         chunk_size: int | None = None) -> Callable:
    """Map ``func`` over a batch axis (``jax.vmap`` with ``in_axes=in_dims, out_axes=out_dims``).

    ``in_dims``: an int/None for every positional argument or a tuple with one entry (int, None or
    a prefix pytree) per positional argument; keyword arguments are passed through unmapped (as in
    torch.func.vmap). ``chunk_size``: compute that many examples at a time (``jax.lax.map`` with
    ``batch_size``: less memory, same results up to float rounding of the chunk-sized kernels).
    ``randomness`` ('error' | 'different' | 'same') is validated for torch compatibility, but
    randomness in JAX is explicit: a function that draws numbers takes a key argument, and the
    caller chooses. For 'different' draws per example pass a batch of keys
    (``jax.random.split(key, n)``) with in_dim 0; for the 'same' draws pass one key with in_dim
    None. Nothing random happens behind the caller's back, so all three values behave the same.
    """
    if randomness not in RANDOMNESS:
        raise unknown_option("vmap randomness", randomness, RANDOMNESS)
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                   or chunk_size < 1):
        raise ConfigError(f"vmap: chunk_size expected a positive int or None, got {chunk_size!r}")
    if isinstance(in_dims, list):
        in_dims = tuple(in_dims)
    if not (in_dims is None or isinstance(in_dims, (int, tuple))) or isinstance(in_dims, bool):
        raise ConfigError(f"vmap: in_dims expected an int, None or a tuple with one entry per "
                          f"positional argument, got {in_dims!r}")
    out_dims = tuple(out_dims) if isinstance(out_dims, list) else out_dims
    call = _describe("vmap", func, **_options(in_dims=in_dims, out_dims=out_dims,
                                              chunk_size=chunk_size))

    def wrapper(*args, **kwargs):
        if isinstance(in_dims, tuple) and len(in_dims) != len(args):
            raise ConfigError(f"{call}: in_dims has {len(in_dims)} entries but "
                              f"{_name(func)} was called with {len(args)} positional arguments")
        f = functools.partial(func, **kwargs) if kwargs else func
        if chunk_size is None:
            return _guard(call, jax.vmap(f, in_axes=in_dims, out_axes=out_dims))(*args)
        return _guard(call, _vmap_chunked)(f, in_dims, out_dims, chunk_size, args)
    return _wraps(func, wrapper)


# ----------------------------------------------------------------------------- jit
def jit(func: Callable | None = None, *, static_argnums=None, static_argnames=None,
        donate_argnums=None, compiler_options=None):
    """``jax.jit`` unchanged (the jitted object keeps ``.lower`` etc.); usable as ``@jit`` and
    ``@jit(static_argnums=...)``.  ``compiler_options`` go to XLA as in ``jax.jit``: for a
    convolutional function on CPU, ``fl.core.xla.conv_compiler_options()`` is what ``fit`` and the
    adapters use (about 2x faster for the MNIST CNN's train step; see core/xla.py)."""
    if func is None:
        return functools.partial(jit, static_argnums=static_argnums, static_argnames=static_argnames,
                                 donate_argnums=donate_argnums, compiler_options=compiler_options)
    return jax.jit(func, static_argnums=static_argnums, static_argnames=static_argnames,
                   donate_argnums=donate_argnums, compiler_options=compiler_options)


# ----------------------------------------------------------------------------- modules
def _describe_leaf(x):
    return "{}" if isinstance(x, dict) else tuple(jnp.shape(x))


def _tree_paths(tree) -> dict:
    """``{'0_dense/kernel': (3, 4), '1_relu': '{}', ...}``: every leaf (and empty dict) by path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, dict) and not x)
    return {jax.tree_util.keystr(p, simple=True, separator="/"): _describe_leaf(x) for p, x in flat}


def _leaf_paths(tree) -> list[str]:
    return [p for p, d in _tree_paths(tree).items() if d != "{}"]


def _tree_diff(expected, got) -> str | None:
    """``"missing: [...], extra: [...], mis-shaped: [...]"`` or None when the trees agree."""
    want, have = _tree_paths(expected), _tree_paths(got)
    missing = [p for p in want if p not in have]
    extra = [p for p in have if p not in want]
    shapes = [f"{p} expected {want[p]}, got {have[p]}" for p in want
              if p in have and want[p] != have[p]]
    parts = [f"{label}: {items}" for label, items in
             (("missing", missing), ("extra", extra), ("mis-shaped", shapes)) if items]
    return ", ".join(parts) or None


def functional_call(module, params, args, kwargs=None, *, state=None, key=None, train=False,
                    strict=True):
    """Run ``module`` with the given ``params`` (torch.func.functional_call).

    ``module.apply(params, state or {}, *args, key=key, train=train, **kwargs)``; returns only the
    output when ``state`` is None, else ``(y, new_state)``. ``args`` is a tuple, or a single
    argument. A module with ``__functional_call__(params, args, kwargs, **kw)`` (the keras and
    torch adapters) is delegated to. ``strict`` checks ``params`` (and ``state``) against the tree
    ``module.init`` would build for ``args[0]`` and raises TreeMismatchError listing the paths.
    """
    args = args if isinstance(args, tuple) else (args,)
    kwargs = dict(kwargs or {})
    if hasattr(module, "__functional_call__"):
        return module.__functional_call__(params, args, kwargs, state=state, key=key, train=train,
                                          strict=strict)
    call = f"functional_call({module!r})"
    if not (callable(getattr(module, "init", None)) and callable(getattr(module, "apply", None))):
        raise TypeError(f"functional_call: expected a functorch_lite Module (with init and apply) "
                        f"or an object with __functional_call__, got {type(module).__name__}")
    if strict:
        if not args:
            raise ConfigError(f"{call}: strict=True needs the input as args[0] to build the "
                              f"expected params tree; pass args or strict=False")
        exp_params, exp_state = jax.eval_shape(
            lambda: module.init(jax.random.key(0), as_spec(args[0])))
        diff = _tree_diff(exp_params, params)
        if diff:
            raise TreeMismatchError(f"{call}: params do not match the module's tree; {diff}")
        if state is None and jax.tree_util.tree_leaves(exp_state):
            raise TreeMismatchError(
                f"{call}: the module has state ({', '.join(_leaf_paths(exp_state))}) but state=None;"
                f" pass state=... (the output is then (y, new_state))")
        diff = None if state is None else _tree_diff(exp_state, state)
        if diff:
            raise TreeMismatchError(f"{call}: state does not match the module's tree; {diff}")
    y, new_state = module.apply(params, {} if state is None else state, *args, key=key,
                                train=train, **kwargs)
    return y if state is None else (y, new_state)


def per_example_grads(loss_fn: Callable, params, *batch, argnums=0, has_aux: bool = False):
    """Gradient of ``loss_fn(params, *example)`` for each example of ``batch`` separately.

    Every example keeps a batch axis of size 1 (layers take batched input). Every leaf of the
    result has a leading batch axis; ``(grads, aux)`` with ``has_aux``. ``argnums`` counts
    ``params`` as 0 and the batch arrays from 1. While the loss is traced, Dense and Conv use
    weight-gradient rules with the same values that XLA batches well (``layers/per_example.py``).
    On CPU, a result over 64 MB (a big Dense kernel per example) is page-faulted in on every
    call unless ``FUNCTORCH_LITE_CPU_MALLOC=one_arena`` is set (``core/xla.py``: the MNIST CNN's
    per-example gradients took 48-50 ms with it, 74-93 ms without).
    """
    call = _describe("per_example_grads", loss_fn, **_options(argnums=argnums, has_aux=has_aux))
    _check_argnums(call, argnums)
    if not batch:
        raise ConfigError(f"{call}: no batch given; call per_example_grads(loss_fn, params, x, y)")
    _check_argnums_range(call, argnums, 1 + len(batch))

    def single(p, *example):
        return loss_fn(p, *jax.tree.map(lambda e: e[None], example))
    in_axes = (None,) + (0,) * len(batch)
    per_example_fn = _guard(call, jax.vmap(jax.grad(single, argnums, has_aux), in_axes))
    # Dense and Conv write their weight gradients with rules XLA batches well (layers/per_example.py)
    try:
        with _per_example.rules():
            return per_example_fn(params, *batch)
    except TypeError as e:
        if "custom_vjp" not in str(e):
            raise
    # the loss differentiates the layers forward (jvp/jacfwd), which a custom VJP cannot do
    return per_example_fn(params, *batch)


def stack_params(trees: Sequence) -> Any:
    """Stack param trees of the same structure into one tree with a leading model axis."""
    trees = list(trees)
    if not trees:
        raise ConfigError("stack_params: got an empty list of param trees")
    for i, t in enumerate(trees[1:], 1):
        diff = _tree_diff(trees[0], t)
        if diff:
            raise TreeMismatchError(f"stack_params: tree {i} differs from tree 0; {diff}")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack_params(tree) -> list:
    """The inverse of :func:`stack_params`: a list of trees, one per index of the leading axis."""
    leaves = jax.tree.leaves(tree)
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise TreeMismatchError(f"unstack_params: every leaf needs the same leading (model) axis, "
                                f"got leading sizes {sorted(map(str, sizes))}")
    (n,) = sizes
    return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]


_NOT_GIVEN = object()


def ensemble(apply_fn: Callable, stacked_params=_NOT_GIVEN, *args, in_dims=None):
    """Run ``apply_fn(params, *args)`` for every model of ``stacked_params`` (leading axis).

    ``in_dims``: None shares the inputs between models, 0 gives each model its own slice of every
    input, or a tuple with one entry per input. ``ensemble(apply_fn)`` returns the function
    ``(stacked_params, *args) -> outputs`` with a leading model axis.
    """
    def run(stacked, *xs):
        dims = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(xs)
        if len(dims) != len(xs):
            raise ConfigError(f"ensemble({_name(apply_fn)}): in_dims has {len(dims)} entries "
                              f"but got {len(xs)} inputs")
        return vmap(apply_fn, in_dims=(0,) + dims)(stacked, *xs)
    run = _wraps(apply_fn, run)
    return run if stacked_params is _NOT_GIVEN else run(stacked_params, *args)


def init_ensemble(model, keys, spec):
    """``(params, state)`` of ``len(keys)`` models stacked on a leading axis (vmap over keys)."""
    def init(key):
        return model.init(key, spec)
    return vmap(init)(keys)
