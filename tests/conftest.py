"""Shared fixtures.

``torch`` is the independent oracle for forward/gradient parity (never imported by the library);
tests that need it take the ``torch`` fixture so they skip cleanly where it is not installed.
Parity tests compare float32 results at atol=rtol=1e-5: XLA's CPU float32 dot/conv are exact
float32 (no TF32), so no global matmul-precision override is set here.
"""
import numpy as np
import pytest
import jax


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # the CPU cores are shared; torch's thread pool only adds noise
    return torch


@pytest.fixture
def rng():
    """A fresh seeded numpy Generator per test (independent of JAX's PRNG)."""
    return np.random.default_rng(0)


@pytest.fixture
def x64():
    """Run the test body with 64-bit types enabled (finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def ones_init():
    """``ones_init(model, spec) -> (params, state)`` with every leaf ones, shapes/dtypes from
    ``jax.eval_shape(model.init)``: for tests that need a valid tree but not random values
    (error messages, tree structure). Each new shape drawn by the real initializers costs an
    XLA compile (~0.5-1 s of CPU here), so this keeps such tests cheap."""
    import jax.numpy as jnp

    def init(model, spec):
        shapes = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
        return jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
    return init
