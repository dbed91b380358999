"""core/xla.py: which computations get which XLA compiler options, and that the options change
how XLA compiles (the library dots) but not what it computes; and the CPU host allocator
setting (freed large buffers stay in the process)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import functorch_lite as fl
from functorch_lite import layers as L
from functorch_lite.core import xla
from functorch_lite.train.state import TrainState
from functorch_lite.train.step import make_train_step

CPU = jax.default_backend() == "cpu"


def _cnn():
    return fl.Sequential([L.Conv(4, (3, 3), padding="same"), fl.relu, L.MaxPool((2, 2)),
                          L.Flatten(), L.Dense(10)])


def _mlp():
    return fl.Sequential([L.Flatten(), L.Dense(16), fl.relu, L.Dense(10)])


@pytest.mark.parametrize("model, expected", [
    (_cnn(), True),
    (_mlp(), False),
    (fl.Sequential([L.Dense(4), fl.Residual(fl.Sequential([L.Conv(4, 3, padding="same")]))]), True),
    (fl.Parallel([L.Dense(3), L.ConvTranspose(2, 3)]), True),
    (L.Conv(3, 3), True),
    (L.Dense(3), False),
    ([L.Dense(3), None, {"a": L.Conv1D(2, 3)}], True),
    (fl.relu, False),
    (None, False),
])
def test_uses_convolution_walks_the_module_tree(model, expected):
    assert xla.uses_convolution(model) is expected


def test_keras_subclassed_model_reports_its_convolutions():
    import functorch_lite.keras as keras

    class Net(keras.Model):
        def __init__(self, conv):
            super().__init__()
            self.body = keras.layers.Conv2D(4, 3) if conv else keras.layers.Dense(4)
            self.flat, self.out = keras.layers.Flatten(), keras.layers.Dense(2)

        def call(self, x):
            return self.out(self.flat(self.body(x)))

    for conv in (True, False):
        net = Net(conv)
        net(np.zeros((1, 6, 6, 1), np.float32))
        assert xla.uses_convolution(net.module) is conv


@pytest.mark.skipif(not CPU, reason="the options are chosen for XLA:CPU only")
def test_options_on_cpu_and_the_switch(monkeypatch):
    assert xla.conv_compiler_options() == {
        "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
    assert xla.once_compiler_options() == {"xla_backend_optimization_level": "0",
                                           "xla_cpu_use_fusion_emitters": False}
    assert xla.compiler_options_for(_mlp()) is None
    monkeypatch.setenv("FUNCTORCH_LITE_CPU_CONV_LIBRARY", "0")
    xla._accepted.cache_clear()
    try:
        assert xla.conv_compiler_options() is None
        assert xla.compiler_options_for(_cnn()) is None
        assert xla.once_compiler_options() is not None
    finally:
        monkeypatch.delenv("FUNCTORCH_LITE_CPU_CONV_LIBRARY")
        xla._accepted.cache_clear()


@pytest.mark.skipif(not CPU, reason="the options are chosen for XLA:CPU only")
def test_a_compiler_that_rejects_one_option_set_keeps_the_other(monkeypatch):
    """The probe tries both sets together; when that fails each set is tried on its own, so an
    option this jaxlib lacks costs only its own set."""
    tried = []

    def compiles_with(options):
        tried.append(sorted(options))
        return "xla_cpu_use_fusion_emitters" not in options   # as if this jaxlib lacked it
    monkeypatch.setattr(xla, "_compiles_with", compiles_with)
    for f in (xla._accepted, xla._both_accepted):
        f.cache_clear()
    try:
        assert xla.once_compiler_options() is None
        assert xla.conv_compiler_options() == xla._YNN
        assert len(tried) == 3   # both together once, then each set once
    finally:
        for f in (xla._accepted, xla._both_accepted):
            f.cache_clear()


def _library_fusions(jitted, model, tx, batch):
    """The ops of the compiled step that XLA handed to its YNNPACK library, by JAX op name."""
    ts = TrainState.create(model, tx, jax.random.key(0), jax.ShapeDtypeStruct(batch[0].shape, jnp.float32))
    text = jitted.lower(ts, batch).compile().as_text()
    return sorted(line.split('op_name="')[1].split('"')[0].split("/")[-1]
                  for line in text.splitlines() if "__ynn_fusion" in line and 'op_name="' in line)


@pytest.mark.skipif(not CPU, reason="the options are chosen for XLA:CPU only")
def test_train_step_of_a_conv_model_is_compiled_with_the_options():
    """The options reach XLA: the same step body compiles differently with and without them."""
    batch = (jnp.zeros((32, 12, 12, 1)), jnp.zeros((32,), jnp.int32))
    model = fl.Sequential([L.Conv(16, (3, 3), padding="same"), fl.relu,
                           L.Conv(32, (3, 3), padding="same"), fl.relu, L.Flatten(), L.Dense(10)])
    step = make_train_step(model, "cross_entropy", "adam")
    assert step.convolutions and not make_train_step(_mlp(), "cross_entropy", "adam").convolutions
    tuned = _library_fusions(step._fn, model, step.tx, batch)
    default = _library_fusions(jax.jit(step.raw), model, step.tx, batch)
    assert "dot_general" in tuned and tuned != default


def test_conv_train_step_matches_the_default_compilation():
    """Three Adam steps of a conv model: library dots vs XLA's default compilation."""
    model = _cnn()
    step = make_train_step(model, "cross_entropy", optax.adam(1e-2))
    plain = jax.jit(step.raw)   # the same body, XLA's defaults
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((16, 8, 8, 1), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, 16).astype(np.int32))
    spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
    a = TrainState.create(model, step.tx, jax.random.key(1), spec)
    b = TrainState.create(model, step.tx, jax.random.key(1), spec)
    for _ in range(3):
        a, la = step(a, (x, y))
        b, lb = plain(b, (x, y))
    np.testing.assert_allclose(la["loss"], lb["loss"], rtol=1e-5)
    for u, v in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_init_compiled_once_equals_the_op_by_op_init():
    """The init compiled without backend optimisations gives the same parameters as running
    every initializer eagerly (uniform initializers: bit for bit)."""
    model = fl.Sequential([L.Conv(4, (3, 3)), fl.relu, L.Flatten(), L.Dense(5),
                           L.Dense(3, kernel_init="normal")])
    spec = fl.as_spec((2, 6, 6, 1))
    fast, _ = model.init(jax.random.key(3), spec)
    with jax.disable_jit():
        slow, _ = model._init(jax.random.key(3), spec)
    np.testing.assert_array_equal(fast["0_conv"]["kernel"], slow["0_conv"]["kernel"])
    np.testing.assert_array_equal(fast["3_dense"]["kernel"], slow["3_dense"]["kernel"])
    np.testing.assert_allclose(fast["4_dense"]["kernel"], slow["4_dense"]["kernel"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("conv", [True, False])
def test_torch_adapter_compiles_conv_graphs_with_the_conv_options(monkeypatch, conv):
    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F
    seen = []
    real = xla.jit
    monkeypatch.setattr(xla, "jit", lambda fn, **kw: seen.append(kw.get("convolutions")) or real(fn, **kw))
    body = nn.Conv2d(1, 3, 3, padding=1) if conv else nn.Linear(7, 7)   # shapes no other test uses
    model = nn.Sequential(body, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 7 * 7 if conv else 7 * 7, 5))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.from_numpy(np.ones((3, 1, 7, 7) if conv else (3, 7, 7), np.float32))
    loss = F.cross_entropy(model(x), torch.from_numpy(np.zeros(3, np.int64)))
    loss.backward()
    opt.step()
    assert np.isfinite(loss.item())
    assert seen and all(s is conv for s in seen)


# ------------------------------------------------------------------ the host allocator

@pytest.mark.parametrize("env, why", [
    ({}, None),
    ({"FUNCTORCH_LITE_CPU_MALLOC": "0"}, "FUNCTORCH_LITE_CPU_MALLOC=0"),
    ({"FUNCTORCH_LITE_CPU_MALLOC": "1"}, None),
    ({"MALLOC_ARENA_MAX": "2"}, "MALLOC_ARENA_MAX is set"),
    ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1000"}, "GLIBC_TUNABLES sets glibc.malloc"),
    ({"GLIBC_TUNABLES": "glibc.rtld.nns=2"}, None),
    ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "LD_PRELOAD has jemalloc"),
])
def test_the_allocator_is_left_to_a_user_who_chose_one(env, why):
    assert xla._user_chose_allocator(env) == why


class _FakeLibc:
    def __init__(self, accept=True):
        self.calls, self.accept = [], accept

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1 if self.accept else 0


def test_tune_host_allocator_sets_the_mmap_and_trim_thresholds_once(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(xla, "_glibc", lambda: fake)
    monkeypatch.delenv("FUNCTORCH_LITE_CPU_MALLOC", raising=False)
    for k in [k for k in os.environ if k.startswith("MALLOC_")] + ["GLIBC_TUNABLES", "LD_PRELOAD"]:
        monkeypatch.delenv(k, raising=False)
    xla.tune_host_allocator.cache_clear()
    try:
        applied, why = xla.tune_host_allocator()
        xla.tune_host_allocator()
        assert applied and sorted(fake.calls) == [(-3, 256 << 20), (-1, 256 << 20)]   # M_MMAP, M_TRIM
        assert "M_MMAP_THRESHOLD=256 MB" in why
        xla.tune_host_allocator.cache_clear()
        monkeypatch.setenv("FUNCTORCH_LITE_CPU_MALLOC", "0")
        assert xla.tune_host_allocator() == (False, "FUNCTORCH_LITE_CPU_MALLOC=0")
        assert len(fake.calls) == 2
        xla.tune_host_allocator.cache_clear()
        monkeypatch.delenv("FUNCTORCH_LITE_CPU_MALLOC")
        monkeypatch.setattr(xla, "_glibc", lambda: _FakeLibc(accept=False))
        assert xla.tune_host_allocator()[0] is False
    finally:
        xla.tune_host_allocator.cache_clear()


def _faults_per_call(script: str, malloc_mode: str) -> float:
    """The page faults per call that ``script`` prints, run in a fresh process with
    ``FUNCTORCH_LITE_CPU_MALLOC=malloc_mode`` and none of the caller's ``MALLOC_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(FUNCTORCH_LITE_CPU_MALLOC=malloc_mode, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.split()[-1])


_FAULTS = """
import resource
import jax.numpy as jnp
from functorch_lite.core import xla
f = xla.jit(lambda x, w: jnp.tanh(jnp.tanh(x @ w) @ w.T).sum())   # (2048, 2048) temporaries
x, w = jnp.ones((2048, 1024), jnp.float32), jnp.full((1024, 2048), 1e-3, jnp.float32)
for _ in range(10):     # every thread that allocates has touched its arena's memory
    f(x, w).block_until_ready()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(15):
    f(x, w).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 15)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or xla._glibc() is None, reason="glibc only")
def test_compiled_cpu_calls_reuse_their_large_buffers_instead_of_faulting_them_in():
    # each call's 16 MB temporaries: glibc would give them back to the kernel on free, and the
    # next call would page-fault them in again (the MNIST CNN step: ~10,700 faults, 25% of it)
    untuned = _faults_per_call(_FAULTS, "0")
    if untuned < 200:
        pytest.skip(f"this allocator already reuses the buffers ({untuned} faults per call)")
    # measured: 0-634 against 2,900-4,300 per call after 3 warm-up calls (flaky under load: a
    # thread's first touch of its arena); 0 against 567-2,554 after 10 (2026-12-04, idle and
    # with both cores busy)
    assert _faults_per_call(_FAULTS, "1") < untuned / 3


# ------------------------------------------------------------------ one malloc arena (opt-in)

@pytest.mark.parametrize("value, mode", [(None, "1"), ("1", "1"), ("0", "0"),
                                         ("one_arena", "one_arena")])
def test_malloc_mode_reads_the_environment_variable(value, mode):
    assert xla.malloc_mode({} if value is None else {"FUNCTORCH_LITE_CPU_MALLOC": value}) == mode


@pytest.mark.parametrize("value", ["2", "true", "ONE_ARENA", ""])
def test_an_unknown_malloc_mode_is_an_error_that_names_the_variable(value):
    with pytest.raises(fl.ConfigError, match=r"FUNCTORCH_LITE_CPU_MALLOC expected one of "
                                             r"\['1', '0', 'one_arena'\], got " + repr(value)):
        xla.malloc_mode({"FUNCTORCH_LITE_CPU_MALLOC": value})


def _no_user_allocator(monkeypatch):
    for k in [k for k in os.environ if k.startswith("MALLOC_")] + ["GLIBC_TUNABLES", "LD_PRELOAD"]:
        monkeypatch.delenv(k, raising=False)


def test_one_arena_also_limits_glibc_to_one_arena_and_is_applied_at_import(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(xla, "_glibc", lambda: fake)
    _no_user_allocator(monkeypatch)
    monkeypatch.setattr(xla, "_jax_backends_started", lambda: False)
    xla.tune_host_allocator.cache_clear()
    try:
        monkeypatch.setenv("FUNCTORCH_LITE_CPU_MALLOC", "1")
        xla.tune_host_allocator_at_import()
        assert fake.calls == []             # the default mode waits for the first compiled call
        monkeypatch.setenv("FUNCTORCH_LITE_CPU_MALLOC", "one_arena")
        xla.tune_host_allocator_at_import()
        assert sorted(fake.calls) == [(-8, 1), (-3, 256 << 20), (-1, 256 << 20)]   # M_ARENA_MAX
        assert xla.tune_host_allocator()[1].endswith("M_ARENA_MAX=1")
        monkeypatch.setattr(xla, "_jax_backends_started", lambda: True)
        xla.tune_host_allocator.cache_clear()
        with pytest.warns(RuntimeWarning, match="import functorch_lite before the first JAX"):
            xla.tune_host_allocator_at_import()
    finally:
        xla.tune_host_allocator.cache_clear()


_BIG_OUTPUT = """
import ctypes, resource, threading
import functorch_lite               # applies FUNCTORCH_LITE_CPU_MALLOC=one_arena
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []

def worker():                       # as XLA:CPU's threads allocate a computation's result
    for i in range(8):
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(96 << 20)
        ctypes.memset(p, 1, 96 << 20)
        libc.free(p)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
t = threading.Thread(target=worker)
t.start()
t.join()
print(sum(faults[3:]) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or xla._glibc() is None, reason="glibc only")
def test_one_arena_reuses_a_result_too_big_for_a_worker_threads_arena():
    # glibc's thread arenas hold at most 64 MB per heap: a bigger buffer is mmapped and unmapped
    # on every call whatever the thresholds (XLA:CPU's 205 MB result of the MNIST CNN's
    # per-example gradients: ~50,000 faults per call; 0-4,500 with one arena)
    default = _faults_per_call(_BIG_OUTPUT, "1")
    if default < 5000:
        pytest.skip(f"this allocator already reuses the result ({default} faults per call)")
    # measured: 0 against 24,577 (96 MB / 4 KB)
    assert _faults_per_call(_BIG_OUTPUT, "one_arena") < default / 10
