"""A small DCGAN for MNIST (Radford et al., 2016): two models, two parameter trees, two optax
optimizers, and one jitted step that updates the discriminator and then the generator.

* ``generator(latent_dim=64)``: latent (N, latent_dim) -> Dense(7*7*64) BN relu -> Reshape(7, 7, 64)
  -> ConvTranspose4x4/2(32) BN relu -> ConvTranspose4x4/2(1) -> tanh: images (N, 28, 28, 1) in
  [-1, 1] (``upsample='nearest'``: Upsample(2) + Conv3x3 instead of each transposed conv).  It
  has state (BatchNorm running statistics): use init/apply with state.
* ``discriminator()``: images (N, 28, 28, 1) -> Conv4x4/2(32) leaky_relu(0.2) -> Conv4x4/2(64)
  leaky_relu(0.2) -> Flatten -> Dense(1): real-vs-fake LOGITS (N, 1); stateless.

Losses (non-saturating, ``binary_cross_entropy_with_logits``): the discriminator minimises
``BCE(D(x), 1) + BCE(D(G(z)), 0)``, the generator ``BCE(D(G(z')), 1)`` with a fresh ``z'``, seen
by the just-updated discriminator.  Both use Adam(lr, b1=0.5).

``python -m nets.dcgan --epochs 5`` trains on the bundled MNIST scaled to [-1, 1] and prints per
epoch the two losses, the discriminator's accuracy on each step's batch of real and fake images
before its update (``d_accuracy``, chance 0.5, and per half) and D(x), D(G(z)) (mean
probabilities).
"""
from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import optax

import functorch_lite as fl
from functorch_lite import layers as L
from functorch_lite.core import ConfigError, Sequential
from functorch_lite.layers.activations import leaky_relu, relu, tanh
from functorch_lite.losses import binary_cross_entropy_with_logits

from . import _common


def leaky_relu_02(x):
    """``leaky_relu`` with the DCGAN slope 0.2."""
    return leaky_relu(x, 0.2)


def generator(latent_dim: int = 64, *, width: int = 64, upsample: str = "transpose") -> Sequential:
    """Latent (N, latent_dim) -> images (N, 28, 28, 1) in [-1, 1].

    ``upsample='transpose'``: each x2 step is a ``ConvTranspose(k=4, strides=2, padding=1)``
    (torch's DCGAN block: 7 -> 14 -> 28); ``'nearest'``: ``Upsample(2)`` then a 3x3 ``Conv``.
    """
    del latent_dim  # the input spec gives it; kept in the signature to document the contract
    if upsample == "transpose":
        def up(filters):
            return [L.ConvTranspose(filters, (4, 4), strides=2, padding=1)]
    elif upsample == "nearest":
        def up(filters):
            return [L.Upsample(2), L.Conv(filters, (3, 3), padding="same")]
    else:
        raise ConfigError(f"generator: upsample expected 'transpose' or 'nearest', got {upsample!r}")
    return Sequential([
        L.Dense(7 * 7 * width), L.BatchNorm(decay=0.9), relu, L.Reshape((7, 7, width)),
        *up(width // 2), L.BatchNorm(decay=0.9), relu,
        *up(1), tanh,
    ])


def discriminator(*, width: int = 32) -> Sequential:
    """Images (N, 28, 28, 1) -> logits (N, 1) (positive: real)."""
    return Sequential([
        L.Conv(width, (4, 4), strides=2, padding="same"), leaky_relu_02,
        L.Conv(2 * width, (4, 4), strides=2, padding="same"), leaky_relu_02,
        L.Flatten(), L.Dense(1),
    ])


def init(key, latent_dim: int, image_shape=(28, 28, 1), *, g=None, d=None, lr=2e-4):
    """Both models and their TrainStates: ``(g_model, d_model, {'g': TrainState, 'd': TrainState},
    (g_tx, d_tx))``."""
    g = g if g is not None else generator(latent_dim)
    d = d if d is not None else discriminator()
    g_tx, d_tx = optax.adam(lr, b1=0.5), optax.adam(lr, b1=0.5)
    kg, kd = jax.random.split(key)
    states = {"g": fl.TrainState.create(g, g_tx, kg, (1, latent_dim)),
              "d": fl.TrainState.create(d, d_tx, kd, (1,) + tuple(image_shape))}
    return g, d, states, (g_tx, d_tx)


def separation(real_logits, fake_logits):
    """The discriminator's ROC AUC: the fraction of (real, fake) pairs it scores in the right
    order, ``P(D(x) > D(G(z)))`` (ties count half); 0.5 is chance, 1 a perfect separation,
    whatever the threshold."""
    r, f = real_logits.reshape(-1, 1), fake_logits.reshape(1, -1)
    return jnp.mean((r > f) + 0.5 * (r == f))


def make_step(g, d, g_tx, d_tx, latent_dim: int):
    """``step({'g', 'd'}, (real,)) -> ({'g', 'd'}, logs)``: one discriminator update, then one
    generator update against the updated discriminator; the noise comes from the generator
    TrainState's ``step_key()``."""
    def step(states, batch):
        gs, ds = states["g"], states["d"]
        real = batch[0]
        n = real.shape[0]
        kz1, kz2 = jax.random.split(gs.step_key())
        fake, g_state = g.apply(gs.params, gs.state, jax.random.normal(kz1, (n, latent_dim)), train=True)
        fake = jax.lax.stop_gradient(fake)

        def d_loss_fn(dp):
            real_logits = d.apply(dp, ds.state, real)[0]
            fake_logits = d.apply(dp, ds.state, fake)[0]
            loss = (binary_cross_entropy_with_logits(real_logits, jnp.ones_like(real_logits)) +
                    binary_cross_entropy_with_logits(fake_logits, jnp.zeros_like(fake_logits)))
            return loss, (real_logits, fake_logits)
        (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(ds.params)
        d_updates, d_opt = d_tx.update(d_grads, ds.opt_state, ds.params)
        d_params = optax.apply_updates(ds.params, d_updates)

        def g_loss_fn(gp):
            fake2, new_state = g.apply(gp, g_state, jax.random.normal(kz2, (n, latent_dim)), train=True)
            logits = d.apply(d_params, ds.state, fake2)[0]
            return binary_cross_entropy_with_logits(logits, jnp.ones_like(logits)), new_state
        (g_loss, g_state), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(gs.params)
        g_updates, g_opt = g_tx.update(g_grads, gs.opt_state, gs.params)
        g_params = optax.apply_updates(gs.params, g_updates)

        acc_real, acc_fake = jnp.mean(real_logits > 0), jnp.mean(fake_logits < 0)
        logs = {"d_loss": d_loss, "g_loss": g_loss, "d_accuracy": 0.5 * (acc_real + acc_fake),
                "d_auc": separation(real_logits, fake_logits),
                "d_acc_real": acc_real, "d_acc_fake": acc_fake,
                "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
        return {"g": gs.replace(params=g_params, state=g_state, opt_state=g_opt, step=gs.step + 1),
                "d": ds.replace(params=d_params, opt_state=d_opt, step=ds.step + 1)}, logs
    return step


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def sample(g, g_params, g_state, key, n: int, latent_dim: int):
    """``n`` generated images (n, 28, 28, 1) in [-1, 1] (inference mode: running BN statistics)."""
    return g.apply(g_params, g_state, jax.random.normal(key, (n, latent_dim)))[0]


def discriminator_scores(g, d, states, real, key, latent_dim: int) -> dict:
    """How well the discriminator tells ``real`` images from as many fresh fakes:
    ``{'accuracy': ..., 'auc': ...}`` (threshold 0 on the logits, and the threshold-free
    :func:`separation`; both 0.5 at chance)."""
    acc, auc = _scores(g, d, states["g"].params, states["g"].state, states["d"].params,
                       jnp.asarray(real), key, latent_dim)
    return {"accuracy": float(acc), "auc": float(auc)}


@functools.partial(jax.jit, static_argnums=(0, 1, 7))
def _scores(g, d, g_params, g_state, d_params, real, key, latent_dim):
    fake = g.apply(g_params, g_state, jax.random.normal(key, (real.shape[0], latent_dim)))[0]
    real_logits = d.apply(d_params, {}, real)[0]
    fake_logits = d.apply(d_params, {}, fake)[0]
    return (0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0)),
            separation(real_logits, fake_logits))


def parse_args(argv=None):
    p = _common.make_parser("nets.dcgan", __doc__, epochs=5, batch_size=128, lr=2e-4, out="runs/dcgan")
    p.add_argument("--latent-dim", type=_common.positive(int), default=64)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    (x_train, _), (x_test, _) = _common.load_images(args, scale="tanh")
    key, sample_key, eval_key = jax.random.split(jax.random.key(args.seed), 3)
    g, d, states, (g_tx, d_tx) = init(key, args.latent_dim, x_train.shape[1:], lr=args.lr)
    if args.verbose:
        _common.banner("dcgan generator", g, states["g"].params)
        _common.banner("dcgan discriminator", d, states["d"].params)
    step = make_step(g, d, g_tx, d_tx, args.latent_dim)
    states, history = _common.run_epochs(step, states, (x_train,), epochs=args.epochs,
                                         batch_size=args.batch_size, seed=args.seed,
                                         verbose=args.verbose)
    scores = discriminator_scores(g, d, states, x_test[:1000], eval_key, args.latent_dim)
    print(f"discriminator on {min(len(x_test), 1000)} test images + as many fakes: "
          f"accuracy {scores['accuracy']:.4f}, AUC {scores['auc']:.4f}")
    samples = sample(g, states["g"].params, states["g"].state, sample_key, 64, args.latent_dim)
    path = _common.save_checkpoint(args.out, "dcgan", {
        k: {"params": s.params, "state": s.state, "opt_state": s.opt_state, "step": s.step}
        for k, s in states.items()})
    return {"history": history, "test_discriminator": scores, "samples": samples,
            "generator": g, "discriminator": d, "states": states, "checkpoint": path}


if __name__ == "__main__":
    main(sys.argv[1:])
