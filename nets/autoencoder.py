"""A dense autoencoder for MNIST: encoder ``Flatten -> [Dense(h) relu]* -> Dense(latent)``,
decoder ``[Dense(h) relu]* -> Dense(784) -> Reshape(28, 28, 1)``, trained to reconstruct its
input with binary cross-entropy on pixel intensities in [0, 1].

Shape contract: input (N, 28, 28, 1) float images in [0, 1]; ``apply`` returns reconstruction
LOGITS (N, 28, 28, 1) (``reconstruct`` gives sigmoid probabilities in [0, 1]); ``encode`` maps
(N, 28, 28, 1) -> codes (N, latent_dim) and ``decode`` codes -> logits (N, 28, 28, 1).
Params: ``{'0_encoder': ..., '1_decoder': ...}``.

``python -m nets.autoencoder --epochs 5``: a custom jitted step (value_and_grad + optax Adam) over
the bundled MNIST; the loss printed is the per-pixel mean BCE.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys

import jax
import jax.numpy as jnp
import optax

import functorch_lite as fl
from functorch_lite import layers as L
from functorch_lite.core import Module, Sequential, as_spec
from functorch_lite.layers.activations import relu
from functorch_lite.losses import binary_cross_entropy_with_logits

from . import _common


@dataclasses.dataclass(frozen=True, repr=False)
class Autoencoder(Module):
    """``Autoencoder(latent_dim=32, hidden=(256,), image_shape=(28, 28, 1))``."""
    latent_dim: int = 32
    hidden: tuple = (256,)
    image_shape: tuple = (28, 28, 1)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "image_shape", tuple(self.image_shape))

    @property
    def encoder(self) -> Sequential:
        layers = [L.Flatten()]
        for h in self.hidden:
            layers += [L.Dense(h), relu]
        return Sequential(layers + [L.Dense(self.latent_dim)])

    @property
    def decoder(self) -> Sequential:
        layers = []
        for h in reversed(self.hidden):
            layers += [L.Dense(h), relu]
        return Sequential(layers + [L.Dense(math.prod(self.image_shape)), L.Reshape(self.image_shape)])

    def init(self, key, spec):
        spec = as_spec(spec)
        k1, k2 = jax.random.split(key)
        pe, se = self.encoder.init(k1, spec)
        pd, sd = self.decoder.init(k2, (spec.shape[0], self.latent_dim))
        return {"0_encoder": pe, "1_decoder": pd}, {"0_encoder": se, "1_decoder": sd}

    def encode(self, params, x):
        """Images (N, 28, 28, 1) -> codes (N, latent_dim)."""
        return self.encoder.apply(params["0_encoder"], {}, x)[0]

    def decode(self, params, z):
        """Codes (N, latent_dim) -> reconstruction logits (N, 28, 28, 1)."""
        return self.decoder.apply(params["1_decoder"], {}, z)[0]

    def apply(self, params, state, x, *, key=None, train=False):
        return self.decode(params, self.encode(params, x)), state

    def reconstruct(self, params, x):
        """Reconstructions as probabilities in [0, 1], shape of ``x``."""
        return jax.nn.sigmoid(self.apply(params, {}, x)[0])


def autoencoder(latent_dim: int = 32, hidden=(256,)) -> Autoencoder:
    return Autoencoder(latent_dim, tuple(hidden))


def reconstruction_loss(model, params, x):
    """Per-pixel mean binary cross-entropy between ``model(x)`` logits and ``x`` in [0, 1]."""
    logits, _ = model.apply(params, {}, x)
    return binary_cross_entropy_with_logits(logits, x)


def make_step(model, tx):
    """``step(ts, (x,)) -> (ts, {'loss'})``: one Adam step on the reconstruction loss."""
    def step(ts, batch):
        loss, grads = jax.value_and_grad(lambda p: reconstruction_loss(model, p, batch[0]))(ts.params)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        return ts.replace(params=optax.apply_updates(ts.params, updates), opt_state=opt_state,
                          step=ts.step + 1), {"loss": loss}
    return step


@functools.lru_cache(maxsize=8)
def _summed_loss(model):
    return jax.jit(lambda p, xb: reconstruction_loss(model, p, xb) * xb.shape[0])


def evaluate(model, params, x, batch_size: int = 1000) -> float:
    """The mean reconstruction loss over ``x``."""
    fn = _summed_loss(model)
    total = sum(float(fn(params, jnp.asarray(x[i:i + batch_size]))) for i in range(0, len(x), batch_size))
    return total / len(x)


def parse_args(argv=None):
    p = _common.make_parser("nets.autoencoder", __doc__, epochs=5, batch_size=128, lr=1e-3,
                            out="runs/autoencoder")
    p.add_argument("--latent-dim", type=_common.positive(int), default=32)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    (x_train, _), (x_test, _) = _common.load_images(args, scale="unit")
    model = autoencoder(args.latent_dim)
    tx = optax.adam(args.lr)
    ts = fl.TrainState.create(model, tx, jax.random.key(args.seed), (1,) + x_train.shape[1:])
    if args.verbose:
        _common.banner("autoencoder", model, ts.params)
    initial = evaluate(model, ts.params, x_test)
    print(f"initial test reconstruction loss (BCE per pixel): {initial:.4f}")
    ts, history = _common.run_epochs(make_step(model, tx), ts, (x_train,), epochs=args.epochs,
                                     batch_size=args.batch_size, seed=args.seed, verbose=args.verbose)
    final = evaluate(model, ts.params, x_test)
    print(f"test reconstruction loss (BCE per pixel): {final:.4f}")
    path = _common.save_checkpoint(args.out, "autoencoder", {"params": ts.params,
                                                             "opt_state": ts.opt_state, "step": ts.step})
    return {"initial_loss": initial, "test_loss": final, "history": history, "params": ts.params,
            "model": model, "checkpoint": path}


if __name__ == "__main__":
    main(sys.argv[1:])
