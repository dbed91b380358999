"""Grad-mode switches: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``
(context managers and decorators, as in torch)."""
from __future__ import annotations

import functools

from . import graph

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled"]


def is_grad_enabled() -> bool:
    return graph.grad_enabled()


class _GradMode:
    _mode = True

    def __enter__(self):
        self._prev = graph.set_grad_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        graph.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._clone():
                return fn(*args, **kwargs)
        return wrapper

    def _clone(self):
        return type(self)()


class no_grad(_GradMode):
    """Ops inside record no gradient; on concrete tensors they run eagerly."""
    _mode = False


class enable_grad(_GradMode):
    _mode = True


class inference_mode(_GradMode):
    def __init__(self, mode: bool = True):
        self._mode = not mode

    def _clone(self):
        return inference_mode(not self._mode)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` switches at once (like torch) and restores on ``__exit__``."""

    def __init__(self, mode: bool):
        self._mode = bool(mode)
        self._prev = graph.set_grad_enabled(self._mode)

    def __enter__(self):
        return self

    def _clone(self):
        return set_grad_enabled(self._mode)
