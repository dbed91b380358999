"""``functorch_lite.torchvision``: ``datasets.MNIST``/``FashionMNIST`` and ``transforms``."""
from . import datasets, transforms

__all__ = ["datasets", "transforms"]
