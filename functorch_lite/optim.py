"""Optimizers: optax ``GradientTransformation``s, by name or with PyTorch semantics.

Every optimizer built here is wrapped in ``optax.inject_hyperparams``, so its learning rate is
an array in ``opt_state`` (read and replace it with :func:`get_learning_rate` /
:func:`set_learning_rate`) and changing it does not recompile a jitted step.

Default learning rates for names follow Keras 3: ``sgd`` 0.01, every other optimizer 1e-3
(Keras 3's ``Adadelta`` also defaults to 1e-3, not 1.0); other hyper-parameters keep optax's
defaults.  The ``torch_*`` constructors reproduce ``torch.optim`` (argument names, defaults and
update rules) step for step.
"""
from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .core.errors import ConfigError, ShapeError, unknown_option

__all__ = ["get", "get_learning_rate", "set_learning_rate", "OPTIMIZERS", "DEFAULT_LEARNING_RATES",
           "torch_sgd", "torch_adam", "torch_adamw", "torch_rmsprop", "torch_adagrad",
           "torch_adadelta"]

#: name -> optax constructor (all take ``learning_rate``).
OPTIMIZERS = {
    "adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop,
    "adagrad": optax.adagrad, "adadelta": optax.adadelta, "adamax": optax.adamax,
    "adamaxw": optax.adamaxw, "nadam": optax.nadam, "nadamw": optax.nadamw, "lamb": optax.lamb,
    "lion": optax.lion, "radam": optax.radam, "adabelief": optax.adabelief, "yogi": optax.yogi,
    "novograd": optax.novograd, "lars": optax.lars, "adafactor": optax.adafactor,
}

#: Keras 3 defaults: 0.01 for SGD, 1e-3 for the rest.
DEFAULT_LEARNING_RATES = {name: (0.01 if name == "sgd" else 1e-3) for name in OPTIMIZERS}

# Callable arguments that are not schedules (inject_hyperparams would call them as schedules).
_STATIC_CALLABLES = ("mask", "weight_decay_mask", "mu_dtype", "accumulator_dtype", "dtype_momentum")


def get(name_or_tx, learning_rate=None, **kwargs):
    """An optax transformation from a name (``'adam'``, ``'SGD'``...) or a transformation.

    A name builds ``optax.inject_hyperparams(optax.<name>)(learning_rate=..., **kwargs)``;
    ``learning_rate`` defaults to :data:`DEFAULT_LEARNING_RATES` and may be a schedule.  An optax
    transformation is returned unchanged (it takes no ``learning_rate``/kwargs).
    """
    if isinstance(name_or_tx, optax.GradientTransformation):
        if learning_rate is not None or kwargs:
            given = ["learning_rate"] * (learning_rate is not None) + sorted(kwargs)
            raise ConfigError(
                f"optimizer: got an optax transformation and also {given}; expected no "
                f"hyper-parameters with an already built transformation")
        return name_or_tx
    if not isinstance(name_or_tx, str):
        raise ConfigError(f"optimizer: expected a name or an optax GradientTransformation, got "
                          f"{type(name_or_tx).__name__} {name_or_tx!r}")
    name = name_or_tx.lower()
    if name not in OPTIMIZERS:
        raise unknown_option("optimizer", name_or_tx, OPTIMIZERS)
    factory = OPTIMIZERS[name]
    params = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = sorted(set(params) - {"learning_rate"})
        raise ConfigError(f"optimizer {name!r}: unknown arguments {unknown}; expected some of "
                          f"{valid}")
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATES[name]
    elif not callable(learning_rate) and not (   # the adapters accept 0, as Keras and torch do
            isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool)
            and 0 < learning_rate < float("inf")):
        raise ConfigError(f"optimizer {name!r}: learning_rate expected a finite number > 0 or a "
                          f"schedule (step -> rate), got {learning_rate!r}"
                          + ("\nHint: to keep parameters fixed, pass optax.set_to_zero()"
                             if learning_rate == 0 else ""))
    static = [k for k in _STATIC_CALLABLES if k in kwargs]
    return optax.inject_hyperparams(factory, static_args=static)(
        learning_rate=learning_rate, **kwargs)


# ---------------------------------------------------------------------------- learning rate

def _is_inject(x) -> bool:
    return isinstance(x, (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState))


def _lr_states(opt_state, prefix=""):
    """(path, state) of every inject_hyperparams state holding a ``learning_rate``."""
    found = []
    leaves, _ = jax.tree_util.tree_flatten_with_path(opt_state, is_leaf=_is_inject)
    for path, leaf in leaves:
        if _is_inject(leaf):
            path = prefix + jax.tree_util.keystr(path)
            if "learning_rate" in leaf.hyperparams:
                found.append((path or "<root>", leaf))
            found += _lr_states(leaf.inner_state, path + ".inner_state")
    return found


def _the_lr_state(opt_state, fn):
    found = _lr_states(opt_state)
    if not found:
        raise ConfigError(
            f"{fn}: opt_state expected an optax.inject_hyperparams state with a "
            f"'learning_rate', found none\nHint: build the optimizer with optim.get('adam') or "
            f"optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)")
    if len(found) > 1:
        paths = [p for p, _ in found]
        raise ConfigError(f"{fn}: opt_state expected one injectable 'learning_rate', found "
                          f"{len(found)} at {paths}")
    return found[0][1]


def get_learning_rate(opt_state):
    """The learning rate array stored in ``opt_state`` by ``optax.inject_hyperparams``."""
    return _the_lr_state(opt_state, "get_learning_rate").hyperparams["learning_rate"]


def set_learning_rate(opt_state, learning_rate):
    """A copy of ``opt_state`` with the learning rate replaced (pure; fine inside ``jit``).

    The new value keeps the old dtype, so a jitted step taking the new state does not retrace.
    """
    target = _the_lr_state(opt_state, "set_learning_rate")
    if "learning_rate" in getattr(target, "hyperparams_states", {}):
        raise ConfigError("set_learning_rate: learning_rate expected a constant, got a schedule "
                          "(the schedule would overwrite the value at the next update)")
    old = target.hyperparams["learning_rate"]
    if jnp.shape(learning_rate) != jnp.shape(old):
        raise ShapeError(f"set_learning_rate: learning_rate expected shape {jnp.shape(old)}, got "
                         f"{jnp.shape(learning_rate)}")
    new = jax.lax.convert_element_type(learning_rate, old.dtype)

    def replace(s):
        if s is target:
            return s._replace(hyperparams={**s.hyperparams, "learning_rate": new})
        if _is_inject(s):
            return s._replace(inner_state=jax.tree_util.tree_map(
                replace, s.inner_state, is_leaf=_is_inject))
        return s
    return jax.tree_util.tree_map(replace, opt_state, is_leaf=_is_inject)


# ---------------------------------------------------------------------------- torch semantics

def _check(argument, value, ok, expected):
    if isinstance(value, (int, float)) and not ok(value):
        raise ConfigError(f"{argument}: expected {expected}, got {value!r}")


def _check_common(lr, eps=None, weight_decay=0.0):
    _check("lr", lr, lambda v: v >= 0, "a number >= 0")
    if eps is not None:
        _check("eps", eps, lambda v: v >= 0, "a number >= 0")
    _check("weight_decay", weight_decay, lambda v: v >= 0, "a number >= 0")


def _check_betas(betas):
    if len(betas) != 2:
        raise ConfigError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _check(f"betas[{i}]", b, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _l2(weight_decay):
    """torch's coupled weight decay: ``grad + weight_decay * param``."""
    return optax.add_decayed_weights(weight_decay) if weight_decay else optax.identity()


def _injected(factory, learning_rate, **static):
    return optax.inject_hyperparams(factory, static_args=tuple(static))(
        learning_rate=learning_rate, **static)


class _MomentumState(NamedTuple):
    count: jax.Array
    buf: optax.Updates


def _torch_momentum(momentum, dampening, nesterov):
    """torch SGD momentum: the buffer starts as the first gradient, then
    ``buf = momentum buf + (1 - dampening) g``; Nesterov returns ``g + momentum buf``."""
    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return _MomentumState(jnp.zeros([], jnp.int32), zeros)

    def update(updates, state, params=None):
        first = state.count == 0
        buf = jax.tree_util.tree_map(
            lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
            updates, state.buf)
        out = (jax.tree_util.tree_map(lambda g, b: g + momentum * b, updates, buf)
               if nesterov else buf)
        return out, _MomentumState(optax.safe_increment(state.count), buf)
    return optax.GradientTransformation(init, update)


def _sgd_factory(learning_rate, momentum, dampening, weight_decay, nesterov):
    return optax.chain(_l2(weight_decay),
                       _torch_momentum(momentum, dampening, nesterov) if momentum else
                       optax.identity(),
                       optax.scale_by_learning_rate(learning_rate))


def torch_sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """``torch.optim.SGD`` (lr default 1e-3 as in torch >= 2.2)."""
    _check_common(lr, weight_decay=weight_decay)
    _check("momentum", momentum, lambda v: v >= 0, "a number >= 0")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ConfigError(f"nesterov: expected momentum > 0 and dampening == 0, got momentum="
                          f"{momentum!r}, dampening={dampening!r}")
    return _injected(_sgd_factory, lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, nesterov=nesterov)


class _AmsgradState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


def _torch_scale_by_amsgrad(b1, b2, eps):
    """torch AMSGrad: the running max is of the *raw* second moment, bias-corrected after
    (``optax.scale_by_amsgrad`` maxes the bias-corrected one)."""
    def init(params):
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        return _AmsgradState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

    def update(updates, state, params=None):
        tm = jax.tree_util.tree_map
        mu = tm(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = tm(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        nu_max = tm(jnp.maximum, state.nu_max, nu)
        count = optax.safe_increment(state.count)
        c1 = 1 - b1 ** count.astype(jnp.float32)
        c2 = 1 - b2 ** count.astype(jnp.float32)
        out = tm(lambda m, v: (m / c1) / (jnp.sqrt(v) / jnp.sqrt(c2) + eps), mu, nu_max)
        return out, _AmsgradState(count, mu, nu, nu_max)
    return optax.GradientTransformation(init, update)


def _adam_direction(b1, b2, eps, amsgrad):
    return _torch_scale_by_amsgrad(b1, b2, eps) if amsgrad else optax.scale_by_adam(b1, b2, eps)


def _adam_factory(learning_rate, b1, b2, eps, weight_decay, amsgrad):
    return optax.chain(_l2(weight_decay), _adam_direction(b1, b2, eps, amsgrad),
                       optax.scale_by_learning_rate(learning_rate))


def _adamw_factory(learning_rate, b1, b2, eps, weight_decay, amsgrad):
    # torch: p *= 1 - lr wd, then the Adam step; the same as lr * (adam + wd * p).
    decay = optax.add_decayed_weights(weight_decay) if weight_decay else optax.identity()
    return optax.chain(_adam_direction(b1, b2, eps, amsgrad), decay,
                       optax.scale_by_learning_rate(learning_rate))


def torch_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    """``torch.optim.Adam``: L2 weight decay added to the gradient, eps outside the sqrt."""
    _check_common(lr, eps, weight_decay)
    _check_betas(betas)
    return _injected(_adam_factory, lr, b1=betas[0], b2=betas[1], eps=eps,
                     weight_decay=weight_decay, amsgrad=amsgrad)


def torch_adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    """``torch.optim.AdamW``: decoupled decay ``p -= lr * weight_decay * p``."""
    _check_common(lr, eps, weight_decay)
    _check_betas(betas)
    return _injected(_adamw_factory, lr, b1=betas[0], b2=betas[1], eps=eps,
                     weight_decay=weight_decay, amsgrad=amsgrad)


def _rmsprop_factory(learning_rate, alpha, eps, weight_decay, momentum, centered):
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    return optax.chain(_l2(weight_decay),
                       scale(decay=alpha, eps=eps, initial_scale=0.0, eps_in_sqrt=False),
                       # torch's momentum buffer holds g / avg, before the learning rate
                       optax.trace(decay=momentum) if momentum else optax.identity(),
                       optax.scale_by_learning_rate(learning_rate))


def torch_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """``torch.optim.RMSprop``: ``g / (sqrt(v) + eps)`` (eps outside the sqrt, as torch)."""
    _check_common(lr, eps, weight_decay)
    _check("alpha", alpha, lambda v: v >= 0, "a number >= 0")
    _check("momentum", momentum, lambda v: v >= 0, "a number >= 0")
    return _injected(_rmsprop_factory, lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                     momentum=momentum, centered=centered)


class _AdagradState(NamedTuple):
    count: jax.Array
    sum: optax.Updates


def _torch_scale_by_adagrad(lr_decay, initial_accumulator_value, eps):
    """torch Adagrad: ``g / (sqrt(sum g^2) + eps) / (1 + (step - 1) lr_decay)``."""
    def init(params):
        return _AdagradState(jnp.zeros([], jnp.int32), jax.tree_util.tree_map(
            lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(updates, state, params=None):
        total = jax.tree_util.tree_map(lambda s, g: s + g * g, state.sum, updates)
        decay = 1.0 + state.count.astype(jnp.float32) * lr_decay
        out = jax.tree_util.tree_map(lambda g, s: g / (jnp.sqrt(s) + eps) / decay, updates, total)
        return out, _AdagradState(optax.safe_increment(state.count), total)
    return optax.GradientTransformation(init, update)


def _adagrad_factory(learning_rate, lr_decay, weight_decay, initial_accumulator_value, eps):
    return optax.chain(_l2(weight_decay),
                       _torch_scale_by_adagrad(lr_decay, initial_accumulator_value, eps),
                       optax.scale_by_learning_rate(learning_rate))


def torch_adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                  eps=1e-10):
    """``torch.optim.Adagrad`` (eps outside the sqrt; optax.adagrad puts it inside)."""
    _check_common(lr, eps, weight_decay)
    _check("lr_decay", lr_decay, lambda v: v >= 0, "a number >= 0")
    _check("initial_accumulator_value", initial_accumulator_value, lambda v: v >= 0,
           "a number >= 0")
    return _injected(_adagrad_factory, lr, lr_decay=lr_decay, weight_decay=weight_decay,
                     initial_accumulator_value=initial_accumulator_value, eps=eps)


def _adadelta_factory(learning_rate, rho, eps, weight_decay):
    return optax.chain(_l2(weight_decay), optax.scale_by_adadelta(rho=rho, eps=eps),
                       optax.scale_by_learning_rate(learning_rate))


def torch_adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """``torch.optim.Adadelta`` (``optax.scale_by_adadelta`` already matches torch's rule)."""
    _check_common(lr, eps, weight_decay)
    _check("rho", rho, lambda v: 0 <= v <= 1, "a number in [0, 1]")
    return _injected(_adadelta_factory, lr, rho=rho, eps=eps, weight_decay=weight_decay)
