"""Keras optimizers as optax transformations with Keras 3's exact update rules and defaults.

``Adam`` uses Keras's form ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``
(epsilon 1e-7, applied to the un-corrected ``sqrt(v)``), ``SGD`` keeps Keras's momentum buffer
``m = momentum * m - lr * g``, ``RMSprop`` divides by ``sqrt(v + eps)`` with ``rho=0.9``,
``Adagrad`` starts its accumulator at 0.1.  ``weight_decay`` is Keras's decoupled decay
(``p -= lr * wd * p``); ``clipnorm`` (per variable), ``global_clipnorm`` and ``clipvalue`` clip
the gradients first.

Every optimizer is ``optax.inject_hyperparams`` over its update rule, so the learning rate is
an array in the optimizer state: ``model.optimizer.learning_rate`` reads it and assigning to it
(or ``LearningRateScheduler``) changes it without recompiling.  ``learning_rate`` may also be a
schedule ``step -> lr`` (``keras.optimizers.schedules.ExponentialDecay``).
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..core.errors import ConfigError, unknown_option

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get", "schedules",
           "OPTIMIZERS"]

tmap = jax.tree_util.tree_map


class _Slots(NamedTuple):
    count: jax.Array
    slots: tuple


def _zeros(params, n):
    return tuple(tmap(jnp.zeros_like, params) for _ in range(n))


def _rule(n_slots, step, init_slots=None):
    """A GradientTransformation from ``step(g, slots, p, t) -> (update, slots)`` per leaf, where
    ``t`` is the 1-based step count (float32)."""
    def init(params):
        slots = init_slots(params) if init_slots else _zeros(params, n_slots)
        return _Slots(jnp.zeros([], jnp.int32), slots)

    def update(grads, state, params=None):
        t = (state.count + 1).astype(jnp.float32)
        flat_g, treedef = jax.tree_util.tree_flatten(grads)
        flat_p = treedef.flatten_up_to(params) if params is not None else [None] * len(flat_g)
        flat_s = [treedef.flatten_up_to(s) for s in state.slots]
        outs, new_slots = [], [[] for _ in state.slots]
        for i, g in enumerate(flat_g):
            u, ss = step(g, tuple(s[i] for s in flat_s), flat_p[i], t)
            outs.append(u)
            for j, s in enumerate(ss):
                new_slots[j].append(s)
        slots = tuple(treedef.unflatten(s) for s in new_slots)
        return treedef.unflatten(outs), _Slots(optax.safe_increment(state.count), slots)
    return optax.GradientTransformation(init, update)


def _clip_by_norm(clipnorm):
    def update(grads, state, params=None):
        def one(g):
            l2sum = jnp.sum(jnp.square(g))
            norm = jnp.where(l2sum > 0, jnp.sqrt(jnp.where(l2sum > 0, l2sum, 1.0)), l2sum)
            return g * clipnorm / jnp.maximum(norm, clipnorm)
        return tmap(one, grads), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _has_lr(opt_state) -> bool:
    """Whether ``opt_state`` is an ``inject_hyperparams`` state holding a learning rate."""
    return isinstance(getattr(opt_state, "hyperparams", None), dict) and \
        "learning_rate" in opt_state.hyperparams


class Optimizer:
    """Base class. Subclasses define ``_rule(learning_rate) -> GradientTransformation`` giving
    the final (negative, lr-scaled) update."""

    _default_lr = 1e-3

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        lr = self._default_lr if learning_rate is None else learning_rate
        if not callable(lr) and not (isinstance(lr, (int, float)) and not isinstance(lr, bool)
                                     and 0 <= lr < float("inf")):
            raise ConfigError(f"{type(self).__name__}: learning_rate expected a number >= 0 or a "
                              f"schedule, got {lr!r}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ConfigError(f"{type(self).__name__}: expected at most one of clipnorm, "
                              f"clipvalue, global_clipnorm")
        self._lr = lr
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or _snake(type(self).__name__)
        self._model = None
        self._tx = None

    # ------------------------------------------------------------------ optax
    def _rule(self, learning_rate) -> optax.GradientTransformation:
        raise NotImplementedError

    def _factory(self, learning_rate):
        parts = []
        if self.clipnorm is not None:
            parts.append(_clip_by_norm(self.clipnorm))
        if self.global_clipnorm is not None:
            parts.append(optax.clip_by_global_norm(self.global_clipnorm))
        if self.clipvalue is not None:
            parts.append(optax.clip(self.clipvalue))
        rule = self._rule(learning_rate)
        if self.weight_decay:
            wd = self.weight_decay
            decay = optax.GradientTransformation(
                lambda p: optax.EmptyState(),
                lambda u, s, p: (tmap(lambda ui, pi: ui - learning_rate * wd * pi, u, p), s))
            rule = optax.chain(rule, decay)
        return optax.chain(*parts, rule) if parts else rule

    @property
    def tx(self) -> optax.GradientTransformation:
        """The optax transformation (``inject_hyperparams`` over the update rule)."""
        if self._tx is None:
            self._tx = optax.inject_hyperparams(self._factory)(learning_rate=self._lr)
        return self._tx

    # ------------------------------------------------------------------ Keras API
    def _opt_state(self):
        return None if self._model is None else self._model._opt_state_live()

    @property
    def learning_rate(self):
        """The current learning rate (a float32 scalar array)."""
        st = self._opt_state()
        if _has_lr(st):
            return st.hyperparams["learning_rate"]
        if callable(self._lr):
            return jnp.asarray(self._lr(self.iterations), jnp.float32)
        return jnp.asarray(self._lr, jnp.float32)

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(self._lr):
            raise ConfigError(f"{type(self).__name__}: learning_rate expected a settable value, "
                              f"but this optimizer was created with a schedule "
                              f"({type(self._lr).__name__})")
        value = float(value)
        st = self._opt_state()
        if _has_lr(st):
            old = st.hyperparams["learning_rate"]
            st.hyperparams["learning_rate"] = jnp.asarray(value, old.dtype)
        else:
            self._lr = value
            self._tx = None

    lr = learning_rate

    @property
    def iterations(self) -> int:
        """How many updates this optimizer has applied to its model."""
        return 0 if self._model is None else self._model._iterations()

    def get_config(self) -> dict:
        cfg = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        cfg["learning_rate"] = self._lr if callable(self._lr) else float(self.learning_rate)
        return cfg

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self._lr!r})"


class SGD(Optimizer):
    """``m = momentum * m - lr * g``; ``p += m`` (or ``p += momentum * m - lr * g`` with
    ``nesterov``); plain ``p -= lr * g`` without momentum."""
    _default_lr = 0.01

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ConfigError(f"SGD: momentum expected a number in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = momentum, nesterov

    def _rule(self, lr):
        mom, nesterov = self.momentum, self.nesterov
        if not mom:
            return _rule(0, lambda g, s, p, t: (-g * lr, ()))

        def step(g, s, p, t):
            m = -g * lr + s[0] * mom
            return (-g * lr + m * mom if nesterov else m), (m,)
        return _rule(1, step)


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _rule(self, lr):
        b1, b2, eps, ams = self.beta_1, self.beta_2, self.epsilon, self.amsgrad

        def step(g, s, p, t):
            m, v = s[0], s[1]
            alpha = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            m = m + (g - m) * (1 - b1)
            v = v + (jnp.square(g) - v) * (1 - b2)
            if ams:
                vhat = jnp.maximum(s[2], v)
                return -(m * alpha) / (jnp.sqrt(vhat) + eps), (m, v, vhat)
            return -(m * alpha) / (jnp.sqrt(v) + eps), (m, v)
        return _rule(3 if ams else 2, step)


class AdamW(Adam):
    """Adam with Keras's decoupled weight decay (default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _rule(self, lr):
        rho, mom, eps, centered = self.rho, self.momentum, self.epsilon, self.centered

        def step(g, s, p, t):
            v = rho * s[0] + (1 - rho) * jnp.square(g)
            out = [v]
            if centered:
                ag = rho * s[1] + (1 - rho) * g
                out.append(ag)
                denom = v - jnp.square(ag) + eps
            else:
                denom = v + eps
            inc = lr * g / jnp.sqrt(denom)
            if mom > 0:
                m = mom * s[len(out)] + inc
                out.append(m)
                return -m, tuple(out)
            return -inc, tuple(out)
        return _rule(1 + bool(centered) + bool(mom > 0), step)


class Adagrad(Optimizer):
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _rule(self, lr):
        eps, init = self.epsilon, self.initial_accumulator_value

        def step(g, s, p, t):
            acc = s[0] + jnp.square(g)
            return -lr * g / jnp.sqrt(acc + eps), (acc,)
        return _rule(1, step, lambda params: (tmap(lambda q: jnp.full_like(q, init), params),))


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def get(identifier):
    """An Optimizer from a name (``'adam'``, ``'SGD'``...) or an Optimizer; an optax
    GradientTransformation is accepted too (then ``learning_rate`` is read from its state
    only if it was built with ``optax.inject_hyperparams``)."""
    if isinstance(identifier, (Optimizer, optax.GradientTransformation)):
        return identifier
    if isinstance(identifier, str):
        cls = OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise unknown_option("optimizer", identifier, OPTIMIZERS)
        return cls()
    raise ConfigError(f"optimizer: expected a name, a keras Optimizer or an optax "
                      f"GradientTransformation, got {identifier!r}")


from . import schedules  # noqa: E402  (keras.optimizers.schedules)
