"""Error types and the trace-time path of the layer being applied.

Every error functorch_lite raises for bad input subclasses ``ValueError`` or ``TypeError`` so
that ordinary ``except ValueError`` code keeps working, and names the layer by its path in the
model (``'1_sequential/2_dense'``), what was expected and what came.
"""
from __future__ import annotations

import contextlib
import contextvars

__all__ = ["ShapeError", "TreeMismatchError", "ConfigError", "DataError",
           "CheckpointError", "current_path", "scope", "format_error"]


class ShapeError(ValueError):
    """An array has the wrong rank, size or dtype for a layer or function."""


class TreeMismatchError(ValueError):
    """Two pytrees that must have the same structure differ (checkpoints, set_weights)."""


class ConfigError(ValueError):
    """A hyper-parameter or a string option is invalid."""


class DataError(ValueError):
    """Data is invalid: a data file is missing, truncated, corrupted or fails its checksum, or
    labels are outside the valid range."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not match the expected tree."""


_PATH: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("fl_path", default=())


@contextlib.contextmanager
def scope(name: str):
    """Push ``name`` onto the path of the layer being initialised/applied (trace time only)."""
    token = _PATH.set(_PATH.get() + (name,))
    try:
        yield
    finally:
        _PATH.reset(token)


def current_path(default: str = "") -> str:
    """The ``/``-joined path of the layer currently being applied, e.g. ``'0_conv/1_dense'``."""
    path = _PATH.get()
    return "/".join(path) if path else default


def format_error(kind: str, what: str, hint: str | None = None) -> str:
    """``<Kind> '<path>': <what>`` plus an optional ``Hint:`` line (DESIGN.md section 7)."""
    path = current_path()
    head = f"{kind} '{path}': {what}" if path else f"{kind}: {what}"
    return head + (f"\nHint: {hint}" if hint else "")


def unknown_option(argument: str, got, valid) -> ConfigError:
    """The error for an unknown string option; it lists the valid ones."""
    valid = sorted(valid)
    return ConfigError(f"{argument}: unknown value {got!r}; expected one of {valid}")
