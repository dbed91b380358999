"""Shared helpers of the torch-adapter tests (imported as ``torch_helpers``).

PyTorch 2.13 (CPU) is the oracle, imported as ``real_torch``; ``functorch_lite.torch`` is
imported as ``torch`` in the tests, since that is what user code sees."""
import numpy as np
import pytest

real_torch = pytest.importorskip("torch")
real_torch.set_num_threads(1)


def to_np(t):
    """A numpy copy of a real or functorch_lite tensor (or array)."""
    if hasattr(t, "detach"):
        t = t.detach()
    if hasattr(t, "cpu") and hasattr(t, "numpy"):
        return np.array(t.cpu().numpy() if not hasattr(t, "_node") else t.numpy())
    return np.asarray(t)


def assert_close(ours, theirs, atol=1e-5, rtol=1e-5):
    a, b = to_np(ours), to_np(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), atol=atol, rtol=rtol)


def copy_weights(real_module, our_module):
    """Load the real module's state dict into ours (same names, same layouts)."""
    sd = {k: v.detach().numpy().copy() for k, v in real_module.state_dict().items()}
    our_module.load_state_dict(sd)
    return our_module

