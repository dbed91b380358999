"""Multinomial logistic regression on flattened MNIST: ``Flatten -> Dense(10)`` trained with
softmax cross-entropy (``python -m nets.logistic_regression --epochs 5``; about 92% test
accuracy).

Shape contract: input (N, ...) of any trailing shape (flattened; (N, 28, 28, 1) standardised
images for MNIST), output logits (N, num_classes).
"""
from __future__ import annotations

import sys

from functorch_lite import layers as L
from functorch_lite.core import Sequential

from . import _common


def logistic_regression(num_classes: int = 10) -> Sequential:
    """``Sequential([Flatten(), Dense(num_classes)])``: logits; softmax gives class probabilities."""
    return Sequential([L.Flatten(), L.Dense(num_classes)])


def parse_args(argv=None):
    return _common.make_parser("nets.logistic_regression", __doc__, epochs=5, batch_size=128,
                               lr=1e-2, out="runs/logistic_regression").parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    train, test = _common.load_images(args, scale="standard")
    return _common.fit_classifier("logistic_regression", logistic_regression(), args, train, test)


if __name__ == "__main__":
    main(sys.argv[1:])
