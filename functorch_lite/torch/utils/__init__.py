"""``functorch_lite.torch.utils``."""
from . import data

__all__ = ["data"]
