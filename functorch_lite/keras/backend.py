"""``keras.backend``: the few functions Keras scripts call."""
from __future__ import annotations

from ._base import reset_names

__all__ = ["clear_session", "backend", "image_data_format", "floatx", "epsilon"]


def clear_session():
    """Reset the layer-name counters (``dense``, ``dense_1``... start again)."""
    reset_names()


def backend() -> str:
    return "jax"


def image_data_format() -> str:
    return "channels_last"


def floatx() -> str:
    return "float32"


def epsilon() -> float:
    return 1e-7
