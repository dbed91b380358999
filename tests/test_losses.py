"""functorch_lite.losses against torch.nn.functional and hand-written numpy formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from functorch_lite import losses
from functorch_lite.core.errors import ConfigError, ShapeError
torch = pytest.importorskip("torch")   # the independent oracle
F = torch.nn.functional


REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)
N, C = 6, 5
LOGITS = rng.normal(size=(N, C)).astype(np.float32) * 2
LABELS = rng.integers(0, C, size=N)
PROBS_T = rng.dirichlet(np.ones(C), size=N).astype(np.float32)
PRED = rng.normal(size=(4, 3)).astype(np.float32) * 2
TARGET = rng.normal(size=(4, 3)).astype(np.float32) * 2


def close(ours, theirs, tol=1e-5):
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy() if hasattr(
        theirs, "detach") else theirs, rtol=tol, atol=tol)


T = torch.tensor


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_sparse_and_probability_targets_match_torch(reduction, smoothing):
    f = jax.jit(losses.cross_entropy, static_argnames=("reduction", "label_smoothing"))
    close(f(LOGITS, LABELS, reduction=reduction, label_smoothing=smoothing),
          F.cross_entropy(T(LOGITS), T(LABELS), reduction=reduction, label_smoothing=smoothing))
    close(f(LOGITS, PROBS_T, reduction=reduction, label_smoothing=smoothing),
          F.cross_entropy(T(LOGITS), T(PROBS_T), reduction=reduction,
                          label_smoothing=smoothing))


def test_cross_entropy_class_axis_and_spatial_dims_match_torch():
    logits = rng.normal(size=(2, C, 3, 4)).astype(np.float32)
    labels = rng.integers(0, C, size=(2, 3, 4))
    close(losses.softmax_cross_entropy(logits, labels, axis=1, reduction="none"),
          F.cross_entropy(T(logits), T(labels), reduction="none"))
    close(losses.softmax_cross_entropy(np.moveaxis(logits, 1, -1), labels),
          F.cross_entropy(T(logits), T(labels)))
    one_hot = np.eye(C, dtype=np.int32)[LABELS]                 # integer one-hot is dense
    close(losses.cross_entropy(LOGITS, one_hot), F.cross_entropy(T(LOGITS), T(LABELS)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(reduction):
    log_probs = np.asarray(jax.nn.log_softmax(LOGITS))
    close(losses.nll_loss(log_probs, LABELS, reduction=reduction),
          F.nll_loss(T(log_probs), T(LABELS), reduction=reduction))
    lp = rng.normal(size=(2, C, 3)).astype(np.float32)
    lab = rng.integers(0, C, size=(2, 3))
    close(losses.nll_loss(lp, lab, axis=1, reduction=reduction),
          F.nll_loss(T(lp), T(lab), reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ours,theirs,kw", [
    (losses.mse_loss, F.mse_loss, {}),
    (losses.l1_loss, F.l1_loss, {}),
    (losses.huber_loss, F.huber_loss, {}),
    (losses.huber_loss, F.huber_loss, {"delta": 0.5}),
    (losses.smooth_l1_loss, F.smooth_l1_loss, {}),
    (losses.smooth_l1_loss, F.smooth_l1_loss, {"beta": 2.0}),
    (losses.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}),
])
def test_regression_losses_match_torch(ours, theirs, kw, reduction):
    close(jax.jit(lambda p, t: ours(p, t, reduction=reduction, **kw))(PRED, TARGET),
          theirs(T(PRED), T(TARGET), reduction=reduction, **kw))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(reduction):
    logits = PRED
    targets = rng.uniform(size=PRED.shape).astype(np.float32)
    targets[0] = [0.0, 1.0, 1.0]
    close(losses.binary_cross_entropy_with_logits(logits, targets, reduction=reduction),
          F.binary_cross_entropy_with_logits(T(logits), T(targets), reduction=reduction))
    pos_weight = np.array([0.5, 2.0, 3.0], np.float32)
    close(losses.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight,
                                                  reduction=reduction),
          F.binary_cross_entropy_with_logits(T(logits), T(targets), pos_weight=T(pos_weight),
                                             reduction=reduction))
    probs = np.array(jax.nn.sigmoid(logits))
    probs[1] = [0.0, 1.0, 0.5]                                  # torch clamps log at -100
    close(losses.binary_cross_entropy(probs, targets, reduction=reduction),
          F.binary_cross_entropy(T(probs), T(targets), reduction=reduction), tol=1e-4)


def _keras_log(p):
    p = p / p.sum(-1, keepdims=True)
    return np.log(np.clip(p, 1e-7, 1 - 1e-7))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_keras_categorical_losses_match_formula(reduction):
    probs = rng.uniform(size=(N, C)).astype(np.float32)          # unnormalised on purpose
    probs[0, 0] = 0.0                                            # hits the clip
    one_hot = np.eye(C, dtype=np.float32)[LABELS]
    red = {"mean": np.mean, "sum": np.sum, "none": lambda x: x}[reduction]
    want = red(-(one_hot * _keras_log(probs)).sum(-1))
    close(losses.categorical_crossentropy(probs, one_hot, reduction=reduction), want)
    close(losses.sparse_categorical_crossentropy(probs, LABELS, reduction=reduction), want)
    close(losses.sparse_categorical_crossentropy(probs, LABELS[:, None], reduction=reduction),
          want)
    smooth = one_hot * 0.9 + 0.1 / C
    close(losses.categorical_crossentropy(probs, one_hot, label_smoothing=0.1,
                                          reduction=reduction),
          red(-(smooth * _keras_log(probs)).sum(-1)))
    log_softmax = LOGITS - np.log(np.exp(LOGITS).sum(-1, keepdims=True))
    want = red(-(one_hot * log_softmax).sum(-1))
    close(losses.categorical_crossentropy(LOGITS, one_hot, from_logits=True,
                                          reduction=reduction), want)
    close(losses.sparse_categorical_crossentropy(LOGITS, LABELS, from_logits=True,
                                                 reduction=reduction), want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_keras_binary_crossentropy_matches_formula(reduction):
    probs = rng.uniform(size=(4, 3)).astype(np.float32)
    probs[0] = [0.0, 1.0, 0.3]
    targets = (rng.uniform(size=(4, 3)) > 0.5).astype(np.float32)
    red = {"mean": np.mean, "sum": np.sum, "none": lambda x: x}[reduction]
    t = targets * 0.8 + 0.5 * 0.2
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    want = red((-(t * np.log(p) + (1 - t) * np.log(1 - p))).mean(-1))
    close(losses.binary_crossentropy(probs, targets, label_smoothing=0.2, reduction=reduction),
          want)
    s = 1 / (1 + np.exp(-PRED))
    want = red((-(targets * np.log(s) + (1 - targets) * np.log(1 - s))).mean(-1))
    close(losses.binary_crossentropy(PRED, targets, from_logits=True, reduction=reduction), want)


def test_gradients_match_finite_differences():
    labels = jnp.asarray(LABELS)
    check_grads(lambda x: losses.cross_entropy(x, labels, label_smoothing=0.1),
                (jnp.asarray(LOGITS),), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    t = jnp.asarray(TARGET)
    check_grads(lambda x: losses.huber(x, t, delta=0.7), (jnp.asarray(PRED),), order=1,
                modes=["rev"], atol=1e-2, rtol=1e-2)
    tb = jnp.asarray((TARGET > 0).astype(np.float32))
    check_grads(lambda x: losses.binary_cross_entropy_with_logits(x, tb, pos_weight=2.0),
                (jnp.asarray(PRED),), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_binary_cross_entropy_gradient_matches_torch_and_is_finite_at_0_and_1():
    probs = np.array([[0.2, 0.7, 0.9], [0.05, 0.5, 0.6]], np.float32)
    targets = np.array([[0.0, 1.0, 0.3], [1.0, 0.0, 0.5]], np.float32)
    x = T(probs, requires_grad=True)
    F.binary_cross_entropy(x, T(targets)).backward()
    close(jax.grad(losses.binary_cross_entropy)(probs, targets), x.grad)
    edge = np.array([0.0, 1.0, 0.5], np.float32)
    g = jax.grad(losses.binary_cross_entropy)(edge, np.array([0.0, 1.0, 1.0], np.float32))
    assert np.isfinite(np.asarray(g)).all()


def test_cross_entropy_gradient_matches_torch():
    x = T(LOGITS, requires_grad=True)
    F.cross_entropy(x, T(LABELS), label_smoothing=0.1).backward()
    g = jax.grad(lambda z: losses.cross_entropy(z, LABELS, label_smoothing=0.1))(LOGITS)
    close(g, x.grad)


def test_shape_and_dtype_errors():
    with pytest.raises(ShapeError, match=r"softmax_cross_entropy: labels shape expected \(6,\) "
                       r"\(class indices\) or \(6, 5\) \(one-hot or probabilities\), got \(6, 1\)"):
        losses.cross_entropy(LOGITS, LABELS[:, None])
    with pytest.raises(ShapeError, match=r"softmax_cross_entropy: sparse labels expected an "
                       r"integer dtype, got float32 \(labels \(6,\), predictions \(6, 5\)\)"):
        losses.cross_entropy(LOGITS, LABELS.astype(np.float32))
    with pytest.raises(ShapeError, match=r"softmax_cross_entropy: axis expected in \[-2, 2\), got 2"):
        losses.cross_entropy(LOGITS, LABELS, axis=2)
    with pytest.raises(ShapeError, match=r"nll_loss: labels expected class indices of shape "
                       r"\(6,\), got one-hot shape \(6, 5\)\nHint: pass labels.argmax"):
        losses.nll_loss(LOGITS, PROBS_T)
    with pytest.raises(ShapeError, match=r"categorical_crossentropy: targets expected one-hot of "
                       r"shape \(6, 5\), got integer class indices of shape \(6,\)\n"
                       r"Hint: use sparse_categorical_crossentropy"):
        losses.categorical_crossentropy(PROBS_T, LABELS)
    with pytest.raises(ShapeError, match=r"sparse_categorical_crossentropy: targets expected "
                       r"integer class indices of shape \(6,\), got one-hot shape \(6, 5\)\n"
                       r"Hint: use categorical_crossentropy"):
        losses.sparse_categorical_crossentropy(PROBS_T, PROBS_T)
    with pytest.raises(ShapeError, match=r"mse: targets shape expected \(4, 3\) \(same as "
                       r"predictions\), got \(4, 1\)"):
        losses.mse(PRED, TARGET[:, :1])
    with pytest.raises(ShapeError, match=r"binary_cross_entropy_with_logits: pos_weight shape "
                       r"expected to broadcast to \(4, 3\), got \(2,\)"):
        losses.binary_cross_entropy_with_logits(PRED, TARGET, pos_weight=np.ones(2))
    with pytest.raises(ShapeError, match=r"mae: targets shape expected"):
        jax.jit(losses.mae)(PRED, TARGET[0])


def test_config_errors():
    with pytest.raises(ConfigError, match=r"reduction: unknown value 'avg'; expected one of "
                       r"\['mean', 'none', 'sum'\]"):
        losses.mse(PRED, TARGET, reduction="avg")
    with pytest.raises(ConfigError, match=r"label_smoothing: expected a float in \[0, 1\], got 1.5"):
        losses.cross_entropy(LOGITS, LABELS, label_smoothing=1.5)
    with pytest.raises(ConfigError, match=r"delta: expected a number > 0, got 0"):
        losses.huber(PRED, TARGET, delta=0)
    with pytest.raises(ConfigError, match=r"beta: expected a number >= 0, got -1.0"):
        losses.smooth_l1(PRED, TARGET, beta=-1.0)


def test_get_resolves_names():
    assert losses.get("mse") is losses.mse
    assert losses.get("MeanSquaredError") is losses.mse
    assert losses.get("SparseCategoricalCrossentropy") is losses.sparse_categorical_crossentropy
    assert losses.get("CrossEntropyLoss") is losses.cross_entropy
    assert losses.get("BCEWithLogitsLoss") is losses.binary_cross_entropy_with_logits
    assert losses.get("SmoothL1Loss") is losses.smooth_l1
    fn = lambda p, t: p  # noqa: E731
    assert losses.get(fn) is fn
    with pytest.raises(ConfigError, match=r"loss: unknown value 'msee'; expected one of .*'mse'"):
        losses.get("msee")
    with pytest.raises(ConfigError, match=r"loss: expected a name or a callable, got 3"):
        losses.get(3)


def test_check_labels():
    np.testing.assert_array_equal(losses.check_labels([0, 2, 1], 3), [0, 2, 1])
    np.testing.assert_array_equal(losses.check_labels(np.array([0.0, 2.0]), 3), [0, 2])
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\), got 3 at "
                       r"index \(1, 0\) \(2 out of range\)"):
        losses.check_labels(np.array([[0, 1], [3, -1]]), 3)
    with pytest.raises(ShapeError, match=r"labels: expected integer class indices, got "
                       r"non-integer value 1.5 at index \(1,\)"):
        losses.check_labels(np.array([1.0, 1.5]), 3)
    with pytest.raises(ShapeError, match=r"labels: expected integer class indices, got dtype bool"):
        losses.check_labels(np.array([True]), 3)
    with pytest.raises(ConfigError, match=r"num_classes: expected a positive int, got 0"):
        losses.check_labels([0], 0)
    with pytest.raises(ConfigError, match=r"check_labels: labels expected concrete values, got a "
                       r"tracer"):
        jax.jit(lambda y: losses.check_labels(y, 3))(jnp.array([0, 1]))
