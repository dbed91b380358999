"""ResNets for 32x32 images (He et al., 2016), built from the core ``Residual`` and ``BatchNorm``.

Shape contract: input (N, 32, 32, C) NHWC float images (any C, 3 for CIFAR; other square sizes
work too, the head is a global average pool), output logits (N, num_classes).  The models have
state (BatchNorm running ``{'mean', 'var'}``): use ``model.init``/``model.apply`` with state
(``train=True`` updates it), not ``without_state``.

* ``resnet(depth=20)``: the CIFAR ResNet of the paper, depth = 6n + 2: conv3x3(16)-BN-relu, then
  3 stages of n basic blocks with 16/32/64 filters (the first block of stages 2 and 3 has stride
  2 and a projection shortcut: 1x1 stride-2 conv + BN), global average pool, dense.
  ``resnet20()`` is n = 3 (about 0.27M parameters).
* ``resnet18()``: the 4-stage [2, 2, 2, 2] ResNet-18 with 64/128/256/512 filters and a 3x3 stem
  without max-pool (the usual CIFAR adaptation; about 11.2M parameters).

Basic block: ``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))``; convolutions have no bias
(BN follows) and torch's padding of 1; BN ``decay=0.9`` (torch's ``momentum=0.1``).

``python -m nets.resnet --epochs 2`` trains on MNIST zero-padded to 32x32x1 (no CIFAR offline).
"""
from __future__ import annotations

import sys

from functorch_lite import layers as L
from functorch_lite.core import Residual, Sequential
from functorch_lite.core.errors import ConfigError
from functorch_lite.layers.activations import relu

from . import _common

BN_DECAY = 0.9


def _bn():
    return L.BatchNorm(decay=BN_DECAY)


def _conv3x3(filters, strides=1):
    return L.Conv(filters, (3, 3), strides=strides, padding=1, use_bias=False,
                  kernel_init="he_normal")


def basic_block(filters: int, strides: int = 1, *, in_filters: int | None = None) -> Sequential:
    """One basic block; a projection shortcut (1x1 conv with ``strides`` + BN) is used when the
    stride is not 1 or ``in_filters != filters``, the identity otherwise."""
    body = Sequential([_conv3x3(filters, strides), _bn(), relu, _conv3x3(filters), _bn()])
    shortcut = None
    if strides != 1 or (in_filters is not None and in_filters != filters):
        shortcut = Sequential([L.Conv(filters, (1, 1), strides=strides, use_bias=False,
                                      kernel_init="he_normal"), _bn()])
    return Sequential([Residual(body, shortcut), relu])


def _resnet(stem_filters, stages, num_classes):
    layers = [_conv3x3(stem_filters), _bn(), relu]
    channels = stem_filters
    for i, (filters, blocks) in enumerate(stages):
        for j in range(blocks):
            strides = 2 if (i > 0 and j == 0) else 1
            layers.append(basic_block(filters, strides, in_filters=channels))
            channels = filters
    return Sequential(layers + [L.GlobalAvgPool(), L.Dense(num_classes)])


def resnet(depth: int = 20, num_classes: int = 10, *, widths=(16, 32, 64)) -> Sequential:
    """The CIFAR ResNet of depth ``6n + 2`` (20, 32, 44, 56, 110; 8 is the smallest)."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"resnet: depth expected 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth!r}")
    n = (depth - 2) // 6
    return _resnet(widths[0], [(w, n) for w in widths], num_classes)


def resnet20(num_classes: int = 10) -> Sequential:
    """ResNet-20: 3 stages of 3 basic blocks, 16/32/64 filters."""
    return resnet(20, num_classes)


def resnet18(num_classes: int = 10) -> Sequential:
    """ResNet-18 for 32x32 inputs: 3x3 stem, 4 stages of 2 basic blocks, 64/128/256/512 filters."""
    return _resnet(64, [(64, 2), (128, 2), (256, 2), (512, 2)], num_classes)


def parse_args(argv=None):
    p = _common.make_parser("nets.resnet", __doc__, epochs=2, batch_size=128, lr=2e-3,
                            out="runs/resnet")
    p.add_argument("--arch", default="resnet20",
                   help="resnet18, or resnet<6n+2> (resnet8, resnet14, resnet20, resnet32, ...)")
    return p.parse_args(argv)


def build(arch: str, num_classes: int = 10) -> Sequential:
    """A model from its name: ``'resnet18'`` or ``'resnet<depth>'``."""
    if arch == "resnet18":
        return resnet18(num_classes)
    if arch.startswith("resnet") and arch[6:].isdigit():
        return resnet(int(arch[6:]), num_classes)
    raise ConfigError(f"resnet: arch expected 'resnet18' or 'resnet<6n+2>' (e.g. 'resnet20'), got {arch!r}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    model = build(args.arch)
    # MNIST zero-padded (in pixel space) from 28x28 to 32x32, one channel, standardised
    train, test = _common.load_images(args, scale="standard", pad=2)
    return _common.fit_classifier(args.arch, model, args, train, test)


if __name__ == "__main__":
    main(sys.argv[1:])
