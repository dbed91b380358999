"""``nn.Module`` and ``nn.Parameter``: attribute registration, state dicts, train/eval.

A module owns Parameters (leaf tensors requiring grad) and buffers; layers in ``layers.py`` run
functional-core modules on them, so ``functional_call`` / ``make_functional`` turn any module
into a pure function of its parameters.
"""
from __future__ import annotations

import collections
import itertools
from typing import Iterator, NamedTuple

import jax.numpy as jnp

from ...core.errors import ShapeError
from ...core.interrupts import InterruptGuard
from .. import dtypes as _dt
from ..graph import leaf
from .._base import _to_array, host_full, wrap
from ..tensor import Tensor

__all__ = ["Module", "Parameter", "Buffer", "ModuleShapeError", "IncompatibleKeys"]


class ModuleShapeError(ShapeError, RuntimeError):
    """A layer got an input of the wrong shape (a ValueError for functorch_lite, a RuntimeError
    for torch code)."""


class Parameter(Tensor):
    """A leaf tensor that a Module registers as a parameter (requires grad by default)."""
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            value = host_full((0,), 0, jnp.float32)
        else:
            value = data._value() if isinstance(data, Tensor) else _to_array(data, None)
        t = wrap(leaf(value), cls)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Buffer:
    """``nn.Buffer(data)``: assigning it to a module attribute registers a buffer."""

    def __new__(cls, data=None, persistent=True):
        value = data._value() if isinstance(data, Tensor) else _to_array(data, None)
        return _BufferMark(wrap(leaf(value)), persistent)


class _BufferMark:
    def __init__(self, tensor, persistent):
        self.tensor, self.persistent = tensor, persistent


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class Module:
    """Base class of torch-style modules: assign Parameters, buffers and submodules as
    attributes in ``__init__`` (after ``super().__init__()``), define ``forward``."""

    training: bool
    _fl_path: str

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments")
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        d["training"] = True
        d["_fl_path"] = ""

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(torch.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if d.get("_modules") is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove(name)
            self.add_module(name, value)
        elif d.get("_modules") is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                f"(torch.nn.Module or None expected)")
            d["_modules"][name] = None
        elif isinstance(value, _BufferMark):
            self._remove(name)
            self.register_buffer(name, value.tensor, value.persistent)
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(torch.Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove(self, name):
        d = self.__dict__
        d.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            d[store].pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if name in d.get(store, {}):
                del d[store][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            f"(torch.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True):
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(torch Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module):
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        _check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module
        if module is not None:
            base = self._fl_path + "." if self._fl_path else ""
            module._set_path(base + name)

    register_module = add_module

    def _set_path(self, path):
        self.__dict__["_fl_path"] = path
        for name, m in self._modules.items():
            if m is not None:
                m._set_path(f"{path}.{name}")

    def get_submodule(self, target: str):
        m = self
        for part in target.split(".") if target else []:
            if part not in m._modules:
                raise AttributeError(f"{type(m).__name__} has no attribute `{part}`")
            m = m._modules[part]
        return m

    def get_parameter(self, target: str):
        mod, _, name = target.rpartition(".")
        return self.get_submodule(mod)._parameters[name]

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  f'"forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        memo = set() if memo is None else memo
        if remove_duplicate and id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mp, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mp + ("." if mp else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------------ state
    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        if destination is None:
            destination = collections.OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def _state_entries(self):
        """name -> (owner module, attribute, kind) for every state-dict entry."""
        out = {}
        for mp, m in self.named_modules():
            pre = mp + "." if mp else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = (m, name, "param")
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers_set:
                    out[pre + name] = (m, name, "buffer")
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        entries = self._state_entries()
        missing = [k for k in entries if k not in state_dict]
        unexpected = [k for k in state_dict if k not in entries]
        errors = []
        staged = []
        for k, (m, name, kind) in entries.items():
            if k not in state_dict:
                continue
            cur = getattr(m, name)
            v = state_dict[k]
            arr = v._value() if isinstance(v, Tensor) else _to_array(v, None)
            if tuple(arr.shape) != tuple(cur.shape):
                errors.append(f"size mismatch for {k}: copying a param with shape "
                              f"torch.Size({list(arr.shape)}) from checkpoint, the shape in current "
                              f"model is torch.Size({list(cur.shape)}).")
                continue
            staged.append((m, name, kind, jnp.asarray(arr, cur._node.aval[1])))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" +
                               "\n\t".join(errors))
        with InterruptGuard():   # all or nothing: a Ctrl-C waits until every entry is set
            for m, name, kind, value in staged:
                if kind == "param":
                    m._parameters[name]._set_value(value)
                else:
                    m._buffers[name] = wrap(leaf(value))
                m._after_load(name)
        return IncompatibleKeys(missing, unexpected)

    def _after_load(self, name):
        """Hook for modules that mirror a buffer on the host (BatchNorm's batch counter)."""

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = p.grad.detach().zero_()

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, _dt.dtype):
                dtype = a
            elif isinstance(a, (str, _dt.device)):
                _dt.device(a)
        if dtype is not None:
            jd = _dt.as_jax_dtype(dtype)
            for p in itertools.chain(self.parameters(), self.buffers()):
                if p.is_floating_point():
                    p._set_value(p._value().astype(jd))
        return self

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("Torch not compiled with CUDA enabled (functorch_lite.torch runs on "
                           "JAX's default device; use .to(device) with device='cpu')")

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def share_memory(self):
        return self

    # ------------------------------------------------------------------ functional escape hatch
    def __functional_call__(self, params, args, kwargs, *, state=None, key=None, train=False,
                            strict=True):
        """``functorch_lite.functional_call(module, params, args)``: run with ``params`` (and
        buffers ``state``) as a pure JAX function; ``(y, new_state)`` when ``state`` is given."""
        from ..func import _call_with
        return _call_with(self, params, state, args, kwargs, key=key, train=train, strict=strict)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        for name, m in self._modules.items():
            mod = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {mod}")
        head = self._get_name() + "("
        if not lines:
            return head + extra + ")"
        body = ([extra] if extra else []) + lines
        return head + "\n  " + "\n  ".join(body) + "\n)"

    def __dir__(self):
        keys = set(super().__dir__())
        for store in ("_parameters", "_buffers", "_modules"):
            keys |= set(self.__dict__.get(store, {}))
        return sorted(keys)

    def __deepcopy__(self, memo):
        import copy
        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def __getstate__(self):
        raise TypeError("functorch_lite.torch modules are not pickled; save model.state_dict() "
                        "with torch.save and rebuild the model from code")


def _check_name(name, what):
    if not isinstance(name, str):
        raise TypeError(f"{what} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{what} name can\'t contain "."')
    if name == "":
        raise KeyError(f'{what} name can\'t be empty string ""')


def module_label(m: Module) -> str:
    """``Linear 'fc1'`` (the module's attribute path in its model), for error messages."""
    path = m.__dict__.get("_fl_path", "")
    return f"{type(m).__name__} '{path}'" if path else type(m).__name__

