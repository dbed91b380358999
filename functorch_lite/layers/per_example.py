"""Weight-gradient rules that ``per_example_grads`` switches on while it traces a loss.

``per_example_grads`` is ``vmap(grad(loss))``. Under it, JAX's own transpose rules give
per-example weight gradients that XLA:CPU computes badly (MNIST CNN, batch 128, measured in
``benchmarks/per_example.py``):

- ``Dense`` ('io' kernel): the kernel cotangent comes out of JAX's rule as ``dot(g, x)`` and
  is then transposed. Batched over examples, XLA fuses the layer's whole producer chain
  (pool, relu, ...) into the (batch, in, out) outer product, recomputes it for every element,
  writes in the transposed order and copies the result (the CNN: 281 -> 114 ms for this rule
  alone).
- ``Conv``: the kernel cotangent becomes a convolution whose feature groups are the examples,
  XLA:CPU's slow grouped path. Here it is a sum of shifted-window dots (one patches dot when
  there are few input channels), which ``vmap`` turns into batched matmuls.

The rules are custom VJPs with the same values as JAX's. They are active only inside
``per_example_grads`` (:func:`rules`, a trace-time switch that changes how a gradient is
written down, never what it is), so train steps, forward-mode transforms and everything else
keep JAX's rules. A custom VJP cannot be differentiated forward; ``per_example_grads`` retraces
without the rules when the loss itself needs that (e.g. a ``jacfwd`` inside the loss).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from . import shifted_conv

__all__ = ["rules", "active", "dense", "conv"]

_ACTIVE = contextvars.ContextVar("functorch_lite_per_example_rules", default=False)

#: below this many input channels (per group) the conv kernel gradient is one patches dot
#: (conv1 of the MNIST CNN, 1 channel: 1.5 ms instead of 4.7 ms); above it, one dot per
#: window offset avoids stacking the patches (conv2, 32 channels: 12.8 ms instead of 22 ms)
PATCHES_BELOW_CHANNELS = 16


@contextlib.contextmanager
def rules(on: bool = True):
    """Use the per-example weight-gradient rules in the layers traced inside this block."""
    token = _ACTIVE.set(on)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> bool:
    """Whether the layer being traced should use the per-example rules."""
    return _ACTIVE.get()


def _floating(*xs) -> bool:
    return all(jnp.issubdtype(jnp.result_type(x), jnp.floating) for x in xs)


# ----------------------------------------------------------------------------------- Dense
def _dense_forward(x, w, io):
    if io:
        return jnp.dot(x, w)
    return lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense(x, w, io):
    return _dense_forward(x, w, io)


def _dense_fwd(x, w, io):
    return _dense_forward(x, w, io), (x, w)


def _dense_bwd(io, res, g):
    x, w = res
    gx = jnp.dot(g, w.T) if io else jnp.dot(g, w)
    xf, gf = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    # the outer product written in the kernel's own order: no transpose after it
    gw = jnp.einsum("ni,no->io", xf, gf) if io else jnp.einsum("no,ni->oi", gf, xf)
    return gx.astype(x.dtype), gw.astype(w.dtype)


_dense.defvjp(_dense_fwd, _dense_bwd)


def dense(x, w, io: bool = True):
    """``x @ w`` ('io' kernel) or ``x @ w.T`` ('oi'), with the per-example rule when active."""
    if active() and _floating(x, w):
        return _dense(x, w, io)
    return _dense_forward(x, w, io)


# ------------------------------------------------------------------------------------ Conv
def _kernel_grad(x, g, window, cfg, channels_last):
    """d(sum(g * conv(x, w)))/dw for groups=1, as dots over the shifted input windows."""
    if not channels_last:
        x, g = jnp.moveaxis(x, 1, -1), jnp.moveaxis(g, 1, -1)
    parts = shifted_conv.padded_windows(x, window, cfg)
    c, f = x.shape[-1], g.shape[-1]
    gf = g.reshape(-1, f)
    if c < PATCHES_BELOW_CHANNELS:
        patches = jnp.stack(parts, axis=-2).reshape(-1, len(parts) * c)
        gw = jnp.einsum("pk,pf->kf", patches, gf)
    else:
        gw = jnp.stack([jnp.einsum("pc,pf->cf", p.reshape(-1, c), gf) for p in parts])
    gw = gw.reshape(tuple(window) + (c, f))
    if not channels_last:  # (*window, C, F) -> (F, C, *window)
        n = len(window)
        gw = jnp.transpose(gw, (n + 1, n) + tuple(range(n)))
    return gw


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, w, cfg, channels_last):
    return shifted_conv.lax_conv(x, w, cfg)


def _conv_fwd(x, w, cfg, channels_last):
    return shifted_conv.lax_conv(x, w, cfg), (x, w)


def _conv_bwd(cfg, channels_last, res, g):
    x, w = res
    # no forward rerun
    gx, = jax.linear_transpose(lambda x_: shifted_conv.lax_conv(x_, w, cfg), x)(g)
    window = w.shape[:-2] if channels_last else w.shape[2:]
    gw = _kernel_grad(x, g, window, cfg, channels_last)
    return gx, gw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv(x, w, *, strides, padding, dilation, dimension_numbers, groups, channels_last):
    """``lax.conv_general_dilated`` (no input dilation), with the per-example rule when active.

    ``padding``: 'SAME', 'VALID' or (low, high) pairs, as the Conv layer normalises it.
    """
    n = len(strides)
    window = w.shape[:n] if channels_last else w.shape[2:]
    pads = padding
    if isinstance(pads, str):
        spatial = x.shape[1:1 + n] if channels_last else x.shape[2:]
        dilated = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
        pads = lax.padtype_to_pads(spatial, dilated, strides, pads)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    cfg = (tuple(strides), pads, tuple(dilation), tuple(dimension_numbers))
    if shifted_conv.applies(x, w, groups=groups, pads=pads, channels_last=channels_last):
        return shifted_conv.conv(x, w, cfg)
    if active() and groups == 1 and _floating(x, w):
        if all(lo >= 0 and hi >= 0 for lo, hi in pads) and math.prod(window):
            return _conv(x, w, cfg, channels_last)
    return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=dimension_numbers, feature_group_count=groups)
