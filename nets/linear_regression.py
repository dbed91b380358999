"""Linear regression: the smallest model of the zoo, one ``Dense`` layer fitted by minibatch
gradient descent on synthetic data.

Shape contract: input (N, in_features) float, output (N, out_features) (``out_features=1`` by
default).  Data: ``y = X w + b + noise`` with ``X ~ N(0, 1)``, ``w ~ N(0, 1)``, ``b ~ N(0, 1)``
and Gaussian noise of std ``--noise``, all drawn from ``numpy.random.default_rng(seed)``; the
entry point (``python -m nets.linear_regression --epochs 20``) needs no MNIST and reports how far
the fitted kernel/bias are from the true ``w``/``b``.
"""
from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import optax

from functorch_lite import layers as L

from . import _common


def linear_regression(out_features: int = 1) -> L.Dense:
    """``Dense(out_features)``: params ``{'kernel': (in, out), 'bias': (out,)}``."""
    return L.Dense(out_features)


def make_data(n: int = 1024, features: int = 8, *, noise: float = 0.1, seed: int = 0):
    """``(x, y, w, b)``: float32 x (n, features), y (n, 1) = x @ w + b + noise, w (features, 1),
    b (1,), from a seeded numpy generator."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((features, 1)).astype(np.float32)
    b = rng.standard_normal((1,)).astype(np.float32)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ w + b + noise * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y, w, b


def squared_error(predictions, targets, *, reduction="mean"):
    """Mean squared error per example (over the output axis), then reduced over the batch:
    ``fit``/``evaluate`` weight per-example losses, so ``reduction='none'`` returns shape (N,)."""
    per = jnp.mean(jnp.square(predictions - targets), axis=-1)
    return {"none": per, "sum": jnp.sum(per), "mean": jnp.mean(per)}[reduction]


def parse_args(argv=None):
    p = _common.make_parser("nets.linear_regression", __doc__, epochs=20, batch_size=32, lr=0.05,
                            out="runs/linear_regression", limit=None)
    p.add_argument("--samples", type=_common.positive(int), default=1024,
                   help="number of synthetic examples (the first 80%% train, the rest test)")
    p.add_argument("--features", type=_common.positive(int), default=8)
    p.add_argument("--noise", type=float, default=0.1, help="std of the label noise")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    x, y, w, b = make_data(args.samples, args.features, noise=args.noise, seed=args.seed)
    cut = int(0.8 * len(x))
    train, test = (x[:cut], y[:cut]), (x[cut:], y[cut:])
    if args.limit:
        train = (train[0][: args.limit], train[1][: args.limit])
    model = linear_regression()
    # plain SGD with momentum: the loss is a convex quadratic
    result = _common.fit_classifier("linear_regression", model, args, train, test, loss=squared_error,
                                    metrics=(), optimizer=optax.sgd(args.lr, momentum=0.9))
    params = result["train_state"].params
    w_fit, b_fit = np.asarray(params["kernel"]), np.asarray(params["bias"])
    result.update(true_w=w, true_b=b, w=w_fit, b=b_fit,
                  w_error=float(np.max(np.abs(w_fit - w))), b_error=float(np.max(np.abs(b_fit - b))))
    print(f"max |w - w_true| = {result['w_error']:.4f}, |b - b_true| = {result['b_error']:.4f}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
