"""Fixtures of the torch-adapter tests (helpers live in ``torch_helpers.py``)."""
import os
import sys

import numpy as np
import pytest

# --import-mode=importlib does not put test directories on sys.path; the helpers module needs it
sys.path.insert(0, os.path.dirname(__file__))

import functorch_lite.torch as flt


@pytest.fixture
def np_rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_seed():
    """Every test starts from the same global seed and with grad mode on."""
    flt.manual_seed(0)
    flt.set_grad_enabled(True)
    yield
    flt.set_grad_enabled(True)
