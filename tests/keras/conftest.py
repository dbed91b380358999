"""Fixtures of the Keras-adapter tests: a fresh name counter and seed per test."""
import pytest

import functorch_lite.keras as keras


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
