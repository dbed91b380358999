"""A model zoo written on the functional core of functorch_lite (pure init/apply models)."""
from .cnn import cnn
from .lenet5 import lenet5
from .mlp import mlp

__all__ = ["cnn", "lenet5", "mlp"]
