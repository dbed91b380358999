"""``torchvision.datasets``: MNIST and FashionMNIST from functorch_lite's loaders.

``root`` is searched first (torchvision's ``root/MNIST/raw`` layout or the files directly);
otherwise the data comes from ``functorch_lite.datasets`` (the bundled MNIST, or the cache), so
MNIST never needs the network.  Samples are ``(image, int label)``; without a transform the
image is a HxW uint8 numpy array (torchvision gives a PIL image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import datasets as _fl_datasets
from ..core.errors import DataError
from ..torch.tensor import Tensor
from ..torch.utils.data import Dataset

__all__ = ["MNIST", "FashionMNIST"]

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")


def _has_files(d: Path) -> bool:
    return all((d / n).is_file() or (d / f"{n}.gz").is_file() for n in _FILES)


class MNIST(Dataset):
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]
    _loader = staticmethod(_fl_datasets.load_mnist)

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False):
        self.root = root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        data_dir = None
        if root is not None:
            for d in (Path(root) / type(self).__name__ / "raw", Path(root)):
                if _has_files(d):
                    data_dir = d
                    break
        try:
            train_split, test_split = self._loader(data_dir, download=download)
        except DataError as e:
            raise RuntimeError(f"Dataset not found. You can use download=True to download it "
                               f"({e})") from None
        images, labels = train_split if train else test_split
        self._images = images
        self._labels = labels.astype(np.int32)
        self._arrays = None

    @property
    def data(self):
        return Tensor._from(self._images)

    @property
    def targets(self):
        return Tensor._from(self._labels)

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self.classes)}

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, index):
        img, target = self._images[int(index)], int(self._labels[int(index)])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _fl_arrays(self):
        """Device arrays of every transformed sample when the transforms can run batched."""
        if self._arrays is not None:
            return self._arrays
        t = self.transform
        if self.target_transform is not None:
            return None
        if t is None:
            x = self._images
        elif hasattr(t, "batchable") and t.batchable or (not hasattr(t, "batchable") and hasattr(t, "batched")):
            x = t.batched(self._images)
        else:
            return None
        import jax
        self._arrays = (jax.device_put(x), jax.device_put(self._labels))
        return self._arrays

    def __repr__(self):
        split = "Train" if self.train else "Test"
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {split}")


class FashionMNIST(MNIST):
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    _loader = staticmethod(_fl_datasets.load_fashion_mnist)

