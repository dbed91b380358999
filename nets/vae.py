"""A variational autoencoder for MNIST (Kingma and Welling, 2014).

Encoder ``Flatten -> Dense(hidden) relu -> Dense(2 * latent)`` split into ``mean`` and
``logvar``; a reparameterised sample ``z = mean + exp(logvar / 2) * eps`` with ``eps`` drawn from
an explicit ``key``; decoder ``Dense(hidden) relu -> Dense(784) -> Reshape(28, 28, 1)`` logits.
Loss: the negative ELBO per image, ``BCE(logits, x)`` summed over pixels + ``KL(q(z|x) || N(0, I))``
summed over latents, averaged over the batch (nats per image).

Shape contract: input (N, 28, 28, 1) float images in [0, 1]; ``apply`` returns the tuple
``(logits (N, 28, 28, 1), mean (N, latent_dim), logvar (N, latent_dim))``: with ``train=True``
it needs ``key`` and decodes a sample, with ``train=False`` it decodes the mean.
``sample(params, key, n)`` -> (n, 28, 28, 1) images in [0, 1] from the prior;
``reconstruct(params, x, key=None)`` -> images in [0, 1] (decoded mean, or a sample with ``key``).
Params: ``{'0_encoder': ..., '1_decoder': ...}``.

``python -m nets.vae --epochs 10``: a custom jitted step (value_and_grad + optax Adam); the step
key is ``fold_in(rng, step)`` of the TrainState.
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
from functorch_lite.core import ConfigError, Module, Sequential, as_spec
from functorch_lite.layers.activations import relu
from functorch_lite.losses import binary_cross_entropy_with_logits

from . import _common


@dataclasses.dataclass(frozen=True, repr=False)
class VAE(Module):
    """``VAE(latent_dim=16, hidden=512, image_shape=(28, 28, 1))``."""
    latent_dim: int = 16
    hidden: int = 512
    image_shape: tuple = (28, 28, 1)

    needs_key = True  # train=True draws the reparameterisation noise

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(self.image_shape))

    @property
    def encoder(self) -> Sequential:
        return Sequential([L.Flatten(), L.Dense(self.hidden), relu, L.Dense(2 * self.latent_dim)])

    @property
    def decoder(self) -> Sequential:
        return Sequential([L.Dense(self.hidden), relu, L.Dense(math.prod(self.image_shape)),
                           L.Reshape(self.image_shape)])

    def init(self, key, spec):
        spec = as_spec(spec)
        k1, k2 = jax.random.split(key)
        pe, se = self.encoder.init(k1, spec)
        pd, sd = self.decoder.init(k2, (spec.shape[0], self.latent_dim))
        return {"0_encoder": pe, "1_decoder": pd}, {"0_encoder": se, "1_decoder": sd}

    def encode(self, params, x):
        """Images -> ``(mean, logvar)`` of q(z|x), each (N, latent_dim)."""
        h = self.encoder.apply(params["0_encoder"], {}, x)[0]
        return h[..., : self.latent_dim], h[..., self.latent_dim:]

    def decode(self, params, z):
        """Latents (N, latent_dim) -> image logits (N, 28, 28, 1)."""
        return self.decoder.apply(params["1_decoder"], {}, z)[0]

    @staticmethod
    def reparameterize(key, mean, logvar):
        """``mean + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` drawn with ``key``."""
        return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)

    def apply(self, params, state, x, *, key=None, train=False):
        mean, logvar = self.encode(params, x)
        if train:
            if key is None:
                raise ConfigError("VAE: train=True draws the latent sample and needs a key, got "
                                  "key=None\nHint: pass key=jax.random.key(...) (or train=False to "
                                  "decode the mean)")
            z = self.reparameterize(key, mean, logvar)
        else:
            z = mean
        return (self.decode(params, z), mean, logvar), state

    def sample(self, params, key, n: int):
        """``n`` images in [0, 1], (n, 28, 28, 1), decoded from z ~ N(0, I)."""
        z = jax.random.normal(key, (n, self.latent_dim))
        return jax.nn.sigmoid(self.decode(params, z))

    def reconstruct(self, params, x, key=None):
        """Reconstructions in [0, 1]: the decoded mean, or a decoded sample when ``key`` is given."""
        mean, logvar = self.encode(params, x)
        z = mean if key is None else self.reparameterize(key, mean, logvar)
        return jax.nn.sigmoid(self.decode(params, z))


def vae(latent_dim: int = 16, hidden: int = 512) -> VAE:
    return VAE(latent_dim, hidden)


def kl_divergence(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over the latent axis."""
    return -0.5 * jnp.sum(1.0 + logvar - jnp.square(mean) - jnp.exp(logvar), axis=-1)


def elbo_loss(model, params, x, key):
    """Negative ELBO per image averaged over the batch, and its two terms:
    ``(loss, {'reconstruction', 'kl'})`` (nats per image)."""
    (logits, mean, logvar), _ = model.apply(params, {}, x, key=key, train=True)
    rec = jnp.sum(binary_cross_entropy_with_logits(logits, x, reduction="none"),
                  axis=tuple(range(1, x.ndim)))
    kl = kl_divergence(mean, logvar)
    return jnp.mean(rec + kl), {"reconstruction": jnp.mean(rec), "kl": jnp.mean(kl)}


def make_step(model, tx):
    """``step(ts, (x,)) -> (ts, {'loss', 'reconstruction', 'kl'})``."""
    def step(ts, batch):
        grad_fn = jax.value_and_grad(lambda p: elbo_loss(model, p, batch[0], ts.step_key()), has_aux=True)
        (loss, parts), grads = grad_fn(ts.params)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        return ts.replace(params=optax.apply_updates(ts.params, updates), opt_state=opt_state,
                          step=ts.step + 1), {"loss": loss, **parts}
    return step


@functools.lru_cache(maxsize=8)
def _summed_loss(model):
    return jax.jit(lambda p, xb, k: elbo_loss(model, p, xb, k)[0] * xb.shape[0])


def evaluate(model, params, x, key, batch_size: int = 1000) -> float:
    """The mean negative ELBO (one sample per image) over ``x``."""
    fn = _summed_loss(model)
    total = sum(float(fn(params, jnp.asarray(x[i:i + batch_size]), jax.random.fold_in(key, i)))
                for i in range(0, len(x), batch_size))
    return total / len(x)


def parse_args(argv=None):
    p = _common.make_parser("nets.vae", __doc__, epochs=10, batch_size=128, lr=1e-3, out="runs/vae")
    p.add_argument("--latent-dim", type=_common.positive(int), default=16)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    (x_train, _), (x_test, _) = _common.load_images(args, scale="unit")
    model = vae(args.latent_dim)
    tx = optax.adam(args.lr)
    key, eval_key, sample_key = jax.random.split(jax.random.key(args.seed), 3)
    ts = fl.TrainState.create(model, tx, key, (1,) + x_train.shape[1:])
    if args.verbose:
        _common.banner("vae", model, ts.params)
    initial = evaluate(model, ts.params, x_test, eval_key)
    print(f"initial test loss (negative ELBO, nats per image): {initial:.2f}")
    ts, history = _common.run_epochs(make_step(model, tx), ts, (x_train,), epochs=args.epochs,
                                     batch_size=args.batch_size, seed=args.seed, verbose=args.verbose)
    final = evaluate(model, ts.params, x_test, eval_key)
    print(f"test loss (negative ELBO, nats per image): {final:.2f}")
    samples = jax.jit(model.sample, static_argnums=2)(ts.params, sample_key, 64)
    path = _common.save_checkpoint(args.out, "vae", {"params": ts.params, "opt_state": ts.opt_state,
                                                     "step": ts.step})
    return {"initial_loss": initial, "test_loss": final, "history": history, "params": ts.params,
            "model": model, "samples": samples, "checkpoint": path}


if __name__ == "__main__":
    main(sys.argv[1:])
