"""Datasets: IDX files, MNIST / Fashion-MNIST loaders (uint8 numpy, like Keras), a DataLoader."""
from .idx import read_idx, write_idx
from .loader import DataLoader
from .mnist import download, load_fashion_mnist, load_mnist, mnist_stats

__all__ = ["load_mnist", "load_fashion_mnist", "DataLoader", "read_idx", "write_idx",
           "download", "mnist_stats"]
