"""PyTorch's single-tensor update rules as pure JAX functions.

``rule(p, g, state, step, hp, static) -> (p, state)``: ``state`` a dict of arrays named as in
torch's ``optimizer.state[p]``, ``step`` the (already incremented) step count, ``hp`` the
group's numeric hyper-parameters (traced scalars, so schedulers change them without
recompiling), ``static`` the structural flags (``nesterov``, ``amsgrad``, ...).

Why not ``functorch_lite.optim.torch_*``: those optax transformations bake every
hyper-parameter but the learning rate into the compiled graph, and PyTorch schedulers
(``OneCycleLR`` cycles ``momentum``/``betas`` every step) change them between steps.  The rules
below follow ``torch/optim/{sgd,adam,adamw,rmsprop,adagrad,adadelta}.py`` line by line and are
checked against PyTorch in ``tests/torch/test_optim.py``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RULES", "init_state", "state_keys"]


def _signed(g, static):
    return -g if static["maximize"] else g


def sgd(p, g, s, step, hp, static):
    g = _signed(g, static) + hp["weight_decay"] * p
    if static["use_momentum"]:
        m, d = hp["momentum"], hp["dampening"]
        buf = jnp.where(s["_started"], m * s["momentum_buffer"] + (1.0 - d) * g, g)
        g = g + m * buf if static["nesterov"] else buf
        s = {"momentum_buffer": buf, "_started": jnp.ones((), jnp.bool_)}
    return p - hp["lr"] * g, s


def _adam_core(p, g, s, step, hp, static):
    b1, b2 = hp["beta1"], hp["beta2"]
    m = s["exp_avg"] + (1.0 - b1) * (g - s["exp_avg"])          # exp_avg.lerp_(grad, 1 - beta1)
    v = s["exp_avg_sq"] * b2 + (1.0 - b2) * g * g
    t = step.astype(jnp.float32)
    bc1 = 1.0 - b1 ** t
    bc2_sqrt = jnp.sqrt(1.0 - b2 ** t)
    out = {"exp_avg": m, "exp_avg_sq": v}
    if static["amsgrad"]:
        vmax = jnp.maximum(s["max_exp_avg_sq"], v)
        out["max_exp_avg_sq"] = vmax
        denom = jnp.sqrt(vmax) / bc2_sqrt + hp["eps"]
    else:
        denom = jnp.sqrt(v) / bc2_sqrt + hp["eps"]
    return p - (hp["lr"] / bc1) * (m / denom), out


def adam(p, g, s, step, hp, static):
    g = _signed(g, static) + hp["weight_decay"] * p
    return _adam_core(p, g, s, step, hp, static)


def adamw(p, g, s, step, hp, static):
    p = p * (1.0 - hp["lr"] * hp["weight_decay"])
    return _adam_core(p, _signed(g, static), s, step, hp, static)


def rmsprop(p, g, s, step, hp, static):
    g = _signed(g, static) + hp["weight_decay"] * p
    a = hp["alpha"]
    sq = s["square_avg"] * a + (1.0 - a) * g * g
    out = {"square_avg": sq}
    if static["centered"]:
        ga = s["grad_avg"] + (1.0 - a) * (g - s["grad_avg"])
        out["grad_avg"] = ga
        avg = jnp.sqrt(sq - ga * ga)
    else:
        avg = jnp.sqrt(sq)
    avg = avg + hp["eps"]
    if static["use_momentum"]:
        buf = s["momentum_buffer"] * hp["momentum"] + g / avg
        out["momentum_buffer"] = buf
        return p - hp["lr"] * buf, out
    return p - hp["lr"] * (g / avg), out


def adagrad(p, g, s, step, hp, static):
    g = _signed(g, static) + hp["weight_decay"] * p
    clr = hp["lr"] / (1.0 + (step.astype(jnp.float32) - 1.0) * hp["lr_decay"])
    total = s["sum"] + g * g
    std = jnp.sqrt(total) + hp["eps"]
    return p - clr * (g / std), {"sum": total}


def adadelta(p, g, s, step, hp, static):
    g = _signed(g, static) + hp["weight_decay"] * p
    rho, eps = hp["rho"], hp["eps"]
    sq = s["square_avg"] * rho + (1.0 - rho) * g * g
    std = jnp.sqrt(sq + eps)
    delta = jnp.sqrt(s["acc_delta"] + eps) / std * g
    acc = s["acc_delta"] * rho + (1.0 - rho) * delta * delta
    return p - hp["lr"] * delta, {"square_avg": sq, "acc_delta": acc}


RULES = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop, "adagrad": adagrad,
         "adadelta": adadelta}


def _replicated(sharding):
    """A scalar's sharding on the devices of ``sharding`` (replicated over its mesh)."""
    mesh = getattr(sharding, "mesh", None)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if mesh is not None \
        else None


def init_state(rule: str, p, static, hp) -> dict:
    """Zero state for parameter ``p`` (torch creates the same tensors at the first step)."""
    # built on the host: creating the state compiles nothing; laid out as the parameter when it
    # spans several devices (nn.DataParallel: replicated, or FSDP-sharded)
    where = p.sharding if isinstance(p, jax.Array) and len(p.sharding.device_set) > 1 else None
    z = lambda: jax.device_put(np.zeros(p.shape, p.dtype), where)  # noqa: E731
    if rule == "sgd":
        return ({"momentum_buffer": z(), "_started": jax.device_put(
                    np.zeros((), np.bool_), None if where is None else _replicated(where))}
                if static["use_momentum"] else {})
    if rule in ("adam", "adamw"):
        s = {"exp_avg": z(), "exp_avg_sq": z()}
        if static["amsgrad"]:
            s["max_exp_avg_sq"] = z()
        return s
    if rule == "rmsprop":
        s = {"square_avg": z()}
        if static["centered"]:
            s["grad_avg"] = z()
        if static["use_momentum"]:
            s["momentum_buffer"] = z()
        return s
    if rule == "adagrad":
        return {"sum": jax.device_put(np.full(p.shape, hp["initial_accumulator_value"], p.dtype),
                                      where)}
    if rule == "adadelta":
        return {"square_avg": z(), "acc_delta": z()}
    raise KeyError(rule)


def state_keys(rule: str, static) -> frozenset:
    """The names of the state arrays ``init_state`` creates (no allocation)."""
    keys = {"sgd": ("momentum_buffer", "_started") if static.get("use_momentum") else (),
            "adam": ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if static.get("amsgrad") else ()),
            "rmsprop": ("square_avg",) + (("grad_avg",) if static.get("centered") else ())
            + (("momentum_buffer",) if static.get("use_momentum") else ()),
            "adagrad": ("sum",), "adadelta": ("square_avg", "acc_delta")}
    keys["adamw"] = keys["adam"]
    return frozenset(keys[rule])
