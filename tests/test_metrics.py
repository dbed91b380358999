"""functorch_lite.metrics against numpy."""
import jax
import numpy as np
import pytest

from functorch_lite import metrics
from functorch_lite.core.errors import ConfigError, ShapeError

rng = np.random.default_rng(0)
N, C = 50, 7
LOGITS = rng.normal(size=(N, C)).astype(np.float32)
LABELS = rng.integers(0, C, size=N)
LABELS[:10] = LOGITS[:10].argmax(-1)                 # make some right, so accuracy is not ~1/C
RED = {"mean": np.mean, "sum": np.sum, "none": lambda x: x}


@pytest.mark.parametrize("reduction", list(RED))
def test_accuracy_matches_numpy(reduction):
    want = RED[reduction]((LOGITS.argmax(-1) == LABELS).astype(np.float32))
    f = jax.jit(metrics.accuracy, static_argnames="reduction")
    np.testing.assert_allclose(f(LOGITS, LABELS, reduction=reduction), want, rtol=1e-6)
    one_hot = np.eye(C, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(f(LOGITS, one_hot, reduction=reduction), want, rtol=1e-6)
    probs = np.asarray(jax.nn.softmax(LOGITS))
    np.testing.assert_allclose(f(probs, LABELS, reduction=reduction), want, rtol=1e-6)


def test_accuracy_class_axis():
    logits = rng.normal(size=(3, C, 4)).astype(np.float32)
    labels = rng.integers(0, C, size=(3, 4))
    want = (logits.argmax(1) == labels).mean()
    np.testing.assert_allclose(metrics.accuracy(logits, labels, axis=1), want, rtol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5, C])
@pytest.mark.parametrize("reduction", list(RED))
def test_top_k_accuracy_matches_numpy(k, reduction):
    top = np.argsort(-LOGITS, axis=-1)[:, :k]
    want = RED[reduction]((top == LABELS[:, None]).any(-1).astype(np.float32))
    f = jax.jit(metrics.top_k_accuracy, static_argnames=("k", "reduction"))
    np.testing.assert_allclose(f(LOGITS, LABELS, k=k, reduction=reduction), want, rtol=1e-6)
    one_hot = np.eye(C, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(f(LOGITS, one_hot, k=k, reduction=reduction), want, rtol=1e-6)


def test_top_1_equals_accuracy():
    np.testing.assert_allclose(metrics.top_k_accuracy(LOGITS, LABELS, k=1),
                               metrics.accuracy(LOGITS, LABELS))


@pytest.mark.parametrize("reduction", list(RED))
@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_binary_accuracy_matches_numpy(threshold, reduction):
    preds = rng.uniform(size=(20, 3)).astype(np.float32)
    targets = (rng.uniform(size=(20, 3)) > 0.5).astype(np.float32)
    want = RED[reduction](((preds > threshold) == (targets == 1)).astype(np.float32))
    np.testing.assert_allclose(
        metrics.binary_accuracy(preds, targets, threshold, reduction=reduction), want, rtol=1e-6)


def test_errors():
    with pytest.raises(ShapeError, match=r"accuracy: labels shape expected \(50,\) \(class "
                       r"indices\) or \(50, 7\) \(one-hot or probabilities\), got \(50, 1\)"):
        metrics.accuracy(LOGITS, LABELS[:, None])
    with pytest.raises(ConfigError, match=r"k: expected an int in \[1, 7\] \(the number of "
                       r"classes\), got 8"):
        metrics.top_k_accuracy(LOGITS, LABELS, k=8)
    with pytest.raises(ConfigError, match=r"k: expected an int in \[1, 7\] .*got 0"):
        metrics.top_k_accuracy(LOGITS, LABELS, k=0)
    with pytest.raises(ShapeError, match=r"binary_accuracy: targets shape expected \(50, 7\) "
                       r"\(same as predictions\), got \(50,\)"):
        metrics.binary_accuracy(LOGITS, LABELS)
    with pytest.raises(ConfigError, match=r"reduction: unknown value 'avg'"):
        metrics.accuracy(LOGITS, LABELS, reduction="avg")


def test_get():
    assert metrics.get("accuracy") is metrics.accuracy
    assert metrics.get("acc") is metrics.accuracy
    assert metrics.get("SparseCategoricalAccuracy") is metrics.accuracy
    assert metrics.get("top_k") is metrics.top_k_accuracy
    assert metrics.get("BinaryAccuracy") is metrics.binary_accuracy
    assert metrics.get(len) is len
    with pytest.raises(ConfigError, match=r"metric: unknown value 'accuracyy'; expected one of "
                       r".*'acc'.*'binary_accuracy'"):
        metrics.get("accuracyy")
    with pytest.raises(ConfigError, match=r"metric: expected a name or a callable, got None"):
        metrics.get(None)
