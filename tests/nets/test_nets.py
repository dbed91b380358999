"""The model zoo's shape contracts and the MNIST job end to end (small but real)."""
import os

import jax
import numpy as np
import pytest

import functorch_lite as fl
import nets
from nets import mnist as job


@pytest.mark.parametrize("make, params_count", [
    (nets.mlp, 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10),
    (nets.cnn, 3 * 3 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 3136 * 128 + 128 + 128 * 10 + 10),
    (nets.lenet5, 5 * 5 * 6 + 6 + 5 * 5 * 6 * 16 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10),
])
def test_zoo_shape_contract_and_parameter_count(make, params_count):
    model = make()
    assert fl.output_spec(model, (7, 28, 28, 1)).shape == (7, 10)
    params, state = model.init(jax.random.key(0), (1, 28, 28, 1))
    assert sum(p.size for p in jax.tree_util.tree_leaves(params)) == params_count
    assert jax.tree_util.tree_leaves(state) == []


def test_prepare_standardises_with_the_training_statistics():
    x = np.array([[[0, 255]]], np.uint8)
    out = job.prepare(x)
    assert out.shape == (1, 1, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)


def test_job_arguments_are_validated(capsys):
    with pytest.raises(SystemExit):
        job.parse_args(["--epochs", "0"])
    assert "expected a positive number, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        job.parse_args(["--model", "resnet1000"])


@pytest.mark.slow
def test_job_trains_reports_and_saves_a_loadable_checkpoint(tmp_path, capsys):
    result = job.main(["--model", "mlp", "--epochs", "1", "--limit", "12000", "--out", str(tmp_path),
                       "--verbose", "0"])
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "checkpoint saved to" in out
    assert result["test_accuracy"] > 0.93          # 12k examples, 1 epoch of an MLP
    assert os.path.exists(result["checkpoint"])
    model = nets.mlp()
    params, state = model.init(jax.random.key(0), (1, 28, 28, 1))
    loaded = fl.checkpoint.load(result["checkpoint"])
    restored = fl.checkpoint.load(result["checkpoint"], target={
        "params": params, "state": state, "opt_state": loaded["opt_state"], "step": loaded["step"]})
    (_, _), (xs, ys) = fl.datasets.load_mnist()
    acc = fl.evaluate(model, restored["params"], (job.prepare(xs), ys.astype(np.int32)))["accuracy"]
    np.testing.assert_allclose(acc, result["test_accuracy"], rtol=1e-6)
