"""``torch.optim`` optimizers: one jitted update over all parameters, fused into the step.

``optimizer.step()`` after ``loss.backward()`` adds its update to the pending compiled step, so
forward, loss, backward and update run as ONE XLA call; with no pending backward (gradients
already concrete) it runs one jitted update.  Hyper-parameters are read from
``param_groups`` at every step and passed as arguments: changing ``lr`` (schedulers) or
``momentum``/``betas`` never recompiles.  Per-parameter state lives in jax arrays named as
torch's (``exp_avg``, ``momentum_buffer``, ...); ``state_dict()`` has torch's layout.
"""
from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np

from ...core.interrupts import InterruptGuard
from .. import graph
from ..autograd import enable_grad
from .._base import host_full, wrap
from ..tensor import Tensor
from ._functional import RULES, init_state, state_keys

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"]

_STEP_CACHE: dict = {}


class _Update:
    """The optimizer step as a piece of a flush: ``fn(diff_vals, grads, state, args)`` returns
    ``(new_params, new_state)``.  ``idx``: the positions, among the backward's differentiated
    leaves, of the params it replaces (the flush donates their buffers and ``state``'s)."""

    def __init__(self, key, fn, state, args, store, idx):
        self.key, self.fn, self.state, self.args, self.store, self.idx = key, fn, state, args, store, idx


def _make_update(config, idx):
    """A pure update of the params at positions ``idx`` of the backward's leaves (or of all
    given params when ``idx`` is None)."""
    groups, group_of = config

    def update(values, grads, states, args):
        steps, hps = args
        if idx is not None:
            values = [values[i] for i in idx]
            grads = [grads[i] for i in idx]
        new_p, new_s = [], []
        for j, (p, g, s) in enumerate(zip(values, grads, states)):
            rule, static = groups[group_of[j]]
            p2, s2 = RULES[rule](p, g.astype(p.dtype), s, steps[j] + 1, hps[group_of[j]],
                                 dict(static))
            new_p.append(p2.astype(p.dtype))
            new_s.append(s2)
        return new_p, new_s
    return update


class Optimizer:
    """Base class: ``param_groups`` (list of dicts with ``'params'`` and hyper-parameters),
    ``zero_grad()``, ``step()``, ``state_dict()``/``load_state_dict()``."""

    _rule = ""
    _dynamic: tuple = ()
    _has_step = True   # torch's SGD keeps no 'step' in its state

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self._arrays: dict = {}      # id(param) -> state dict of arrays
        self._steps: dict = {}       # id(param) -> number of updates applied
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        if isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use "
                            "a list instead.")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for g in params:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use "
                            "a list instead.")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group = dict(param_group, params=params)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group):
        pass

    # ------------------------------------------------------------------ hyper-parameters
    def _static(self, group) -> tuple:
        return (("maximize", bool(group.get("maximize", False))),)

    def _hparams(self, group) -> dict:
        return {k: float(group[k]) for k in self._dynamic}

    # ------------------------------------------------------------------ steps
    def zero_grad(self, set_to_none: bool = True):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = wrap(graph.leaf(host_full(tuple(p.shape), 0, p._node.aval[1])))

    def _collect(self):
        """Params with a gradient, their group index, and the per-group configs."""
        ps, group_of, groups, hps = [], [], [], []
        for gi, g in enumerate(self.param_groups):
            groups.append((self._rule, self._static(g)))
            hps.append(self._hparams(g))
            for p in g["params"]:
                if p.grad is not None:
                    ps.append(p)
                    group_of.append(gi)
        return ps, tuple(group_of), tuple(groups), hps

    def _state_args(self, ps, group_of, groups, hps):
        states = []
        for p, gi in zip(ps, group_of):
            s = self._arrays.get(id(p))
            static = dict(groups[gi][1])
            if s is None or frozenset(s) != state_keys(self._rule, static):
                fresh = init_state(self._rule, p._node.value if p._node.value is not None
                                   else p._value(), static, self._init_hp(self.param_groups[gi]))
                # keep what survives a structural change (e.g. momentum switched on later)
                s = {k: (s[k] if s is not None and k in s else v) for k, v in fresh.items()}
                self._arrays[id(p)] = s
            states.append(s)
        steps = np.asarray([self._steps.get(id(p), 0) for p in ps], np.int32)
        return states, steps

    def _init_hp(self, group):
        return {"initial_accumulator_value": float(group.get("initial_accumulator_value", 0.0))}

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        ps, group_of, groups, hps = self._collect()
        if not ps:
            return loss
        states, steps = self._state_args(ps, group_of, groups, hps)
        config = (groups, group_of)
        args = (steps, hps)

        def store(out):   # all or nothing: a Ctrl-C waits until every parameter is updated
            new_p, new_s = out
            with InterruptGuard():
                for p, v, s in zip(ps, new_p, new_s):
                    p._set_value(v)
                    self._arrays[id(p)] = s
                    self._steps[id(p)] = self._steps.get(id(p), 0) + 1

        b = graph.pending_backward()
        idx = self._fusable(b, ps) if b is not None else None
        if idx is not None:
            key = ("optim", self._rule, config, idx)
            graph.flush(update=_Update(key, _make_update(config, idx), states, args, store, idx))
            return loss
        values = [p._value() for p in ps]
        grads = [p.grad._value() for p in ps]
        key = (self._rule, config, tuple((tuple(v.shape), v.dtype) for v in values),
               tuple(g.dtype for g in grads))
        fn = _STEP_CACHE.get(key)
        if fn is None:
            update = _make_update(config, None)

            def body(values, grads, states, args):
                graph.COMPILES.record("optimizer", (key,))
                return update(values, grads, states, args)
            fn = _STEP_CACHE[key] = jax.jit(body)
        with InterruptGuard():
            store(fn(values, grads, states, args))
            graph.COMPILES.runs += 1
        return loss

    @staticmethod
    def _fusable(b, ps):
        """Positions of ``ps`` among the pending backward's leaves when every gradient is one of
        its lazy outputs and every param still holds the value the graph used; else None."""
        pos = {id(n): i for i, n in enumerate(b.diff)}
        idx = []
        for p in ps:
            i = pos.get(id(p._node))
            g = p.grad._node
            if i is None or g is not b.grad_nodes[i] or g.value is not None:
                return None
            idx.append(i)
        return tuple(idx)

    # ------------------------------------------------------------------ state
    @property
    def state(self):
        out = collections.defaultdict(dict)
        for g in self.param_groups:
            for p in g["params"]:
                if self._steps.get(id(p)):
                    out[p] = self._export(p)
        return out

    def _export(self, p):
        s = {"step": Tensor._from(float(self._steps[id(p)]))} if self._has_step else {}
        arrays = self._arrays.get(id(p), {})
        for k, v in arrays.items():
            if not k.startswith("_"):
                s[k] = wrap(graph.leaf(v))
        return s

    def state_dict(self):
        index, groups = {}, []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if self._steps.get(id(p)):
                    state[index[id(p)]] = self._export(p)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match "
                                 "the size of optimizer's group")
        saved = state_dict["state"]
        for mine, theirs in zip(self.param_groups, groups):
            for p, i in zip(mine["params"], theirs["params"]):
                mine.update({k: v for k, v in theirs.items() if k != "params"})
                entry = saved.get(i, saved.get(str(i)))
                if entry is None:
                    self._arrays.pop(id(p), None)
                    self._steps.pop(id(p), None)
                    continue
                static = dict(self._static(mine))
                arrays = init_state(self._rule, p._value(), static, self._init_hp(mine))
                for k in arrays:
                    if k in entry:
                        v = entry[k]
                        arrays[k] = jnp.asarray(v._value() if isinstance(v, Tensor) else v,
                                                arrays[k].dtype)
                    elif k == "_started":
                        arrays[k] = jnp.asarray("momentum_buffer" in entry)
                self._arrays[id(p)] = arrays
                st = entry.get("step", 1)
                self._steps[id(p)] = int(float(st.item() if isinstance(st, Tensor) else st))


def _check_lr(lr):
    if isinstance(lr, Tensor):
        lr = lr.item()
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def _check(name, v, ok, label=None):
    if not ok(v):
        raise ValueError(f"Invalid {label or name} value: {v}")


class SGD(Optimizer):
    _rule = "sgd"
    _has_step = False
    _dynamic = ("lr", "momentum", "dampening", "weight_decay")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None):
        _check_lr(lr)
        _check("momentum", momentum, lambda v: v >= 0.0)
        _check("weight_decay", weight_decay, lambda v: v >= 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _static(self, group):
        return super()._static(group) + (("use_momentum", float(group["momentum"]) != 0.0),
                                         ("nesterov", bool(group["nesterov"])))


class Adam(Optimizer):
    _rule = "adam"
    _dynamic = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_lr(lr)
        _check("epsilon", eps, lambda v: v >= 0.0)
        _check("beta parameter at index 0", betas[0], lambda v: 0.0 <= v < 1.0)
        _check("beta parameter at index 1", betas[1], lambda v: 0.0 <= v < 1.0)
        _check("weight_decay", weight_decay, lambda v: v >= 0.0)
        if decoupled_weight_decay:
            self._rule = "adamw"
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable,
                                      fused=fused))

    def _static(self, group):
        return super()._static(group) + (("amsgrad", bool(group["amsgrad"])),)

    def _hparams(self, group):
        b1, b2 = group["betas"]
        return {"lr": float(group["lr"]), "beta1": float(b1), "beta2": float(b2),
                "eps": float(group["eps"]), "weight_decay": float(group["weight_decay"])}


class AdamW(Adam):
    _rule = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable, differentiable=differentiable,
                         fused=fused)


class RMSprop(Optimizer):
    _rule = "rmsprop"
    _dynamic = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        _check_lr(lr)
        _check("epsilon", eps, lambda v: v >= 0.0)
        _check("momentum", momentum, lambda v: v >= 0.0)
        _check("weight_decay", weight_decay, lambda v: v >= 0.0)
        _check("alpha", alpha, lambda v: v >= 0.0)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize,
                                      foreach=foreach, capturable=capturable,
                                      differentiable=differentiable))

    def _static(self, group):
        return super()._static(group) + (("centered", bool(group["centered"])),
                                         ("use_momentum", float(group["momentum"]) > 0.0))


class Adagrad(Optimizer):
    _rule = "adagrad"
    _dynamic = ("lr", "lr_decay", "weight_decay", "eps")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check_lr(lr)
        _check("lr_decay", lr_decay, lambda v: v >= 0.0)
        _check("weight_decay", weight_decay, lambda v: v >= 0.0)
        _check("initial_accumulator_value", initial_accumulator_value, lambda v: v >= 0.0)
        _check("epsilon", eps, lambda v: v >= 0.0)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))


class Adadelta(Optimizer):
    _rule = "adadelta"
    _dynamic = ("lr", "rho", "eps", "weight_decay")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check_lr(lr)
        _check("rho", rho, lambda v: 0.0 <= v <= 1.0)
        _check("epsilon", eps, lambda v: v >= 0.0)
        _check("weight_decay", weight_decay, lambda v: v >= 0.0)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, capturable=capturable, maximize=maximize,
                                      differentiable=differentiable))
