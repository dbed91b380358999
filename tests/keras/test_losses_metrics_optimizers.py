"""Keras losses, metrics and optimizers against numpy transcriptions of Keras 3's formulas."""
import numpy as np
import optax
import pytest
import jax.numpy as jnp

import functorch_lite.keras as keras
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.keras import losses, metrics, optimizers

EPS = 1e-7
TOL = dict(atol=1e-6, rtol=1e-5)


@pytest.fixture
def tp(rng):
    t = rng.random((6, 3)).astype(np.float32)
    p = (rng.random((6, 3)) + 0.1).astype(np.float32)
    return t, p


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- losses
ELEMENTWISE = {
    "mean_squared_error": lambda t, p: ((p - t) ** 2).mean(-1),
    "mean_absolute_error": lambda t, p: np.abs(p - t).mean(-1),
    "mean_absolute_percentage_error":
        lambda t, p: 100 * np.abs((t - p) / np.maximum(np.abs(t), EPS)).mean(-1),
    "mean_squared_logarithmic_error":
        lambda t, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2).mean(-1),
    "huber": lambda t, p: np.where(np.abs(p - t) <= 1, 0.5 * (p - t) ** 2,
                                   np.abs(p - t) - 0.5).mean(-1),
    "log_cosh": lambda t, p: np.log(np.cosh(p - t)).mean(-1),
    "kl_divergence": lambda t, p: (np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) /
                                                               np.clip(p, EPS, 1))).sum(-1),
    "poisson": lambda t, p: (p - t * np.log(p + EPS)).mean(-1),
    "hinge": lambda t, p: np.maximum(1 - t * p, 0).mean(-1),
    "squared_hinge": lambda t, p: (np.maximum(1 - t * p, 0) ** 2).mean(-1),
    "cosine_similarity": lambda t, p: -(t * p).sum(-1) / np.linalg.norm(t, axis=-1) /
                                      np.linalg.norm(p, axis=-1),
    "binary_crossentropy": lambda t, p: -(t * np.log(np.clip(p, EPS, 1 - EPS)) + (1 - t) *
                                          np.log(1 - np.clip(p, EPS, 1 - EPS))).mean(-1),
    "categorical_crossentropy":
        lambda t, p: -(t * np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS))).sum(-1),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_loss_functions_match_keras_formulas(tp, name):
    t, p = tp
    np.testing.assert_allclose(np.asarray(getattr(losses, name)(t, p)), ELEMENTWISE[name](t, p),
                               **TOL)


def test_hinge_maps_binary_labels_to_plus_minus_one(tp):
    t, p = tp
    tb = (t > 0.5).astype(np.float32)
    np.testing.assert_allclose(np.asarray(losses.hinge(tb, p)),
                               np.maximum(1 - (2 * tb - 1) * p, 0).mean(-1), **TOL)


def test_cross_entropies_from_logits_and_smoothing(rng):
    z = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    logp = np.log(_softmax(z))
    np.testing.assert_allclose(np.asarray(losses.sparse_categorical_crossentropy(
        y, z, from_logits=True)), -logp[np.arange(5), y], **TOL)
    np.testing.assert_allclose(np.asarray(losses.sparse_categorical_crossentropy(
        y[:, None].astype(np.float32), _softmax(z))), -logp[np.arange(5), y], **TOL)
    smooth = np.eye(4)[y] * 0.8 + 0.2 / 4
    np.testing.assert_allclose(np.asarray(losses.categorical_crossentropy(
        np.eye(4)[y], z, from_logits=True, label_smoothing=0.2)), -(smooth * logp).sum(-1), **TOL)
    tb = (rng.random((5, 4)) > 0.5).astype(np.float32)
    ts = tb * 0.9 + 0.05
    sig = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(np.asarray(losses.binary_crossentropy(
        tb, z, from_logits=True, label_smoothing=0.1)),
        -(ts * np.log(sig) + (1 - ts) * np.log(1 - sig)).mean(-1), atol=1e-5)


def test_loss_objects_reduce_like_keras(tp, rng):
    t, p = tp
    w = rng.random(6).astype(np.float32)
    per = ELEMENTWISE["mean_squared_error"](t, p)
    assert float(losses.MeanSquaredError()(t, p)) == pytest.approx(per.mean(), rel=1e-5)
    # sum_over_batch_size: weighted sum / number of values (not / sum of weights)
    assert float(losses.MeanSquaredError()(t, p, sample_weight=w)) == pytest.approx(
        (per * w).sum() / 6, rel=1e-5)
    assert float(losses.MeanSquaredError(reduction="sum")(t, p)) == pytest.approx(per.sum(),
                                                                                 rel=1e-5)
    np.testing.assert_allclose(np.asarray(losses.MeanSquaredError(reduction=None)(t, p)), per,
                               **TOL)
    assert float(losses.Huber(delta=0.1)(t, p)) == pytest.approx(np.where(
        np.abs(p - t) <= 0.1, 0.5 * (p - t) ** 2, 0.1 * np.abs(p - t) - 0.005).mean(), rel=1e-5)
    core = losses.MeanSquaredError(reduction="sum").core()
    np.testing.assert_allclose(np.asarray(core(p, t, reduction="none")), per * 6, **TOL)


def test_loss_lookup_by_name_and_errors(tp):
    assert isinstance(losses.get("SparseCategoricalCrossentropy"),
                      losses.SparseCategoricalCrossentropy)
    assert losses.get("mse").name == "mse" and losses.get("huber_loss").name == "huber_loss"
    custom = losses.get(lambda yt, yp: jnp.abs(yt - yp).sum(-1))
    assert isinstance(custom, losses.LossFunctionWrapper)
    with pytest.raises(ConfigError, match=r"reduction: unknown value 'avg'; expected one of "
                                          r"\['none', 'sum', 'sum_over_batch_size'\]"):
        losses.MeanSquaredError(reduction="avg")
    t, p = tp
    with pytest.raises(ShapeError, match=r"mean_squared_error: y_true shape \(6, 2\) does not "
                                         r"match y_pred shape \(6, 3\)"):
        losses.mean_squared_error(t[:, :2], p)


# ---------------------------------------------------------------- metrics
def test_metric_functions(rng):
    z = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    hits = (z.argmax(1) == y).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(metrics.sparse_categorical_accuracy(y, z)), hits)
    np.testing.assert_array_equal(np.asarray(metrics.categorical_accuracy(np.eye(5)[y], z)), hits)
    rank = (z > z[np.arange(8), y][:, None]).sum(1)
    np.testing.assert_array_equal(np.asarray(metrics.sparse_top_k_categorical_accuracy(y, z, k=2)),
                                  (rank < 2).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(metrics.top_k_categorical_accuracy(
        np.eye(5)[y], z, k=3)), (rank < 3).astype(np.float32))
    tb = (rng.random((8, 2)) > 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(metrics.binary_accuracy(tb, z[:, :2], threshold=0.0)),
                                  ((z[:, :2] > 0) == tb).astype(np.float32))
    with pytest.raises(ShapeError, match=r"sparse_categorical_accuracy: y_true expected class "
                                         r"indices of shape \(8,\), got \(8, 5\)"):
        metrics.sparse_categorical_accuracy(np.eye(5)[y], z)
    with pytest.raises(ShapeError, match=r"categorical_accuracy: y_true expected one-hot of shape"):
        metrics.categorical_accuracy(y, z)
    with pytest.raises(ShapeError, match=r"top_k_categorical_accuracy: y_true expected one-hot"):
        metrics.top_k_categorical_accuracy(y, z)
    with pytest.raises(ShapeError, match=r"binary_accuracy: y_true shape \(8, 5\) does not match"):
        metrics.binary_accuracy(np.eye(5)[y], z[:, :2])


def test_stateful_metric_api(rng):
    z = rng.standard_normal((6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    hits = (z.argmax(1) == y).astype(np.float64)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y, z)
    m.update_state(y[:3], z[:3], sample_weight=[1, 0, 2])
    expected = (hits.sum() + hits[0] + 2 * hits[2]) / 9
    assert float(m.result()) == pytest.approx(expected, rel=1e-6)
    m.reset_state()
    assert float(m.result()) == 0.0
    assert float(metrics.MeanAbsoluteError()(np.zeros((2, 2)), np.ones((2, 2)))) == 1.0


def test_metric_lookup_errors():
    assert metrics.get("mae").name == "mae"
    assert isinstance(metrics.get("BinaryAccuracy"), metrics.BinaryAccuracy)
    with pytest.raises(ConfigError, match=r"metric: unknown value 'f1'; expected one of \[.*"
                                          r"'accuracy'.*\]"):
        metrics.get("f1")


# ---------------------------------------------------------------- optimizers
def _keras_reference(name, kw, p, grads):
    """Keras 3's update rules (keras/src/optimizers/*.py), step by step in numpy."""
    p = p.astype(np.float64).copy()
    lr = kw.get("learning_rate")
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vhat = np.zeros_like(p)
    ag = np.zeros_like(p)
    acc = np.full_like(p, 0.1)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if "clipnorm" in kw:
            g = g * kw["clipnorm"] / max(np.linalg.norm(g), kw["clipnorm"])
        if "clipvalue" in kw:
            g = np.clip(g, -kw["clipvalue"], kw["clipvalue"])
        if kw.get("weight_decay"):
            p = p - p * kw["weight_decay"] * lr
        if name in ("Adam", "AdamW"):
            b1, b2, eps = 0.9, 0.999, 1e-7
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            vhat = np.maximum(vhat, v)
            p -= m * alpha / (np.sqrt(vhat if kw.get("amsgrad") else v) + eps)
        elif name == "SGD":
            mom = kw.get("momentum", 0.0)
            if mom:
                m = -g * lr + m * mom
                p += (-g * lr + m * mom) if kw.get("nesterov") else m
            else:
                p -= g * lr
        elif name == "RMSprop":
            rho, mom = 0.9, kw.get("momentum", 0.0)
            v = rho * v + (1 - rho) * g * g
            if kw.get("centered"):
                ag = rho * ag + (1 - rho) * g
                denom = v - ag * ag + 1e-7
            else:
                denom = v + 1e-7
            inc = lr * g / np.sqrt(denom)
            if mom:
                m = mom * m + inc
                p -= m
            else:
                p -= inc
        elif name == "Adagrad":
            acc += g * g
            p -= lr * g / np.sqrt(acc + 1e-7)
    return p


@pytest.mark.parametrize("name,kw", [
    ("Adam", dict(learning_rate=0.1)), ("Adam", dict(learning_rate=0.1, amsgrad=True)),
    ("AdamW", dict(learning_rate=0.1, weight_decay=0.1)),
    ("SGD", dict(learning_rate=0.1)), ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(learning_rate=0.1, weight_decay=0.2)),
    ("RMSprop", dict(learning_rate=0.1)),
    ("RMSprop", dict(learning_rate=0.1, momentum=0.5, centered=True)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Adam", dict(learning_rate=0.1, clipnorm=0.5)),
    ("SGD", dict(learning_rate=0.1, clipvalue=0.3)),
])
def test_optimizers_follow_keras_update_rules(rng, name, kw):
    p0 = rng.standard_normal(5).astype(np.float32)
    grads = [rng.standard_normal(5).astype(np.float32) for _ in range(4)]
    tx = getattr(optimizers, name)(**kw).tx
    params = {"w": jnp.asarray(p0)}
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(params["w"]), _keras_reference(name, kw, p0, grads),
                               atol=1e-6, rtol=1e-5)


def test_global_clipnorm_clips_the_joint_norm(rng):
    g = {"a": jnp.asarray([3.0, 0.0]), "b": jnp.asarray([4.0])}
    tx = optimizers.SGD(1.0, global_clipnorm=1.0).tx
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    updates, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["a"]), [-0.6, 0.0], **TOL)
    np.testing.assert_allclose(np.asarray(updates["b"]), [-0.8], **TOL)


def test_exponential_decay_schedule():
    s = optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
    assert float(s(7)) == pytest.approx(0.1 * 0.5 ** (7 / 3), rel=1e-6)
    st = optimizers.schedules.ExponentialDecay(0.1, 3, 0.5, staircase=True)
    assert float(st(7)) == pytest.approx(0.025, rel=1e-6)
    with pytest.raises(ConfigError, match=r"ExponentialDecay: decay_steps expected > 0, got 0"):
        optimizers.schedules.ExponentialDecay(0.1, 0, 0.5)


def test_optimizer_defaults_and_errors():
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert float(optimizers.get("sgd").learning_rate) == pytest.approx(0.01)
    assert float(optimizers.RMSprop().learning_rate) == pytest.approx(1e-3)
    assert optimizers.Adam().get_config()["epsilon"] == 1e-7
    assert optimizers.Adam().iterations == 0
    with pytest.raises(ConfigError, match=r"SGD: momentum expected a number in \[0, 1\], got 2"):
        optimizers.SGD(momentum=2)
    with pytest.raises(ConfigError, match=r"Adam: learning_rate expected a number >= 0 or a "
                                          r"schedule, got -1"):
        optimizers.Adam(-1)
    with pytest.raises(ConfigError, match=r"Adam: expected at most one of clipnorm, clipvalue, "
                                          r"global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
