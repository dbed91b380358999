from __future__ import annotations

import os

import numpy as np

from ...core.errors import DataError


def load(name, path):
    if path is not None and os.path.isfile(path):
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DataError(f"{name}.load_data: '{path}' lacks the arrays {missing}")
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    from ... import datasets
    loader = datasets.load_mnist if name == "mnist" else datasets.load_fashion_mnist
    return loader()
