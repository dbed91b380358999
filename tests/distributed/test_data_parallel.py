"""Data-parallel training on 4 forced host devices equals single-device training on the same
global batches.  The forced device count must be set before JAX starts, so the scenarios
(tests/distributed/_dp_scenarios.py) run in one subprocess; each test checks one scenario's
result (the assertions, single-device reference included, run in the subprocess)."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIMEOUT = 300

SCENARIOS = [
    "fit_mlp_with_padded_tail",
    "fit_cnn_dropout_mesh_from_jax_make_mesh",
    "fit_batchnorm_state_on_two_of_four_devices",
    "fit_steps_per_execution_device_count",
    "fit_iterable_batches_with_odd_batch",
    "fsdp_params_sharded_over_model_axis",
    "compiled_step_contains_the_gradient_all_reduce",
    "hand_written_step_on_shard_batch_and_replicate",
    "evaluate_and_predict_with_distribution",
    "errors_that_need_several_devices",
    "keras_fit_under_set_distribution_equals_single_device",
    "keras_scope_device_mesh_padded_tail_and_errors",
    "torch_data_parallel_loop_equals_single_device",
    "torch_compiled_step_contains_the_gradient_all_reduce",
    "torch_device_ids_dataloader_ddp_and_errors",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp") / "results.json"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "_dp_scenarios.py"), str(out),
                           *SCENARIOS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(results, name):
    assert name in results, sorted(results)
    assert results[name] == "ok", f"{name} failed in the 4-device subprocess:\n{results[name]}"
