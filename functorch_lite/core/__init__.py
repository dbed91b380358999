"""The functional core: the Module contract, combinators and error types."""
from .combinators import Lambda, Parallel, Residual, Sequential, as_module
from .errors import (CheckpointError, ConfigError, DataError, ShapeError, TreeMismatchError)
from .interrupts import InterruptGuard
from .module import Module, Stateless, as_spec, has_state, output_spec, without_state

__all__ = ["CheckpointError", "ConfigError", "DataError", "InterruptGuard", "Lambda", "Module", "Parallel",
           "Residual", "Sequential", "ShapeError", "Stateless", "TreeMismatchError", "as_module",
           "as_spec", "has_state", "output_spec", "without_state"]
