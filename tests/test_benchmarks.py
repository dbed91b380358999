"""The benchmark suite's report: ratios are taken within each round, so a machine that speeds up
or slows down between rounds does not move them."""
import os


def _summarize(monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.run import summarize
    return summarize


def _result(name, rnd, sps, first=1.0):
    return {"name": name, "model": "mlp", "round": rnd, "samples_per_s": sps, "first_step_s": first,
            "test_accuracy_after_epoch_1": 0.9, "peak_rss_mb": 100.0 + rnd}


def test_ratios_are_taken_within_each_round(monkeypatch):
    summarize = _summarize(monkeypatch)
    # the machine ran twice as fast in round 1; within each round fl_torch is 0.9x, then 0.95x
    results = [_result("fl_fit", 0, 100.0), _result("fl_torch", 0, 90.0, 2.0),
               _result("fl_fit", 1, 200.0), _result("fl_torch", 1, 190.0, 3.0),
               {"name": "equinox", "model": "mlp", "round": 0, "skipped": "equinox not installed"},
               {"name": "equinox", "model": "mlp", "round": 1, "skipped": "equinox not installed"}]
    row = summarize("mlp", "fl_torch", results, peak=100.0, rounds=2)
    assert row["x fl_fit"] == 0.925 and row["x fl_fit per round"] == "0.900, 0.950"
    assert row["samples/s"] == 140 and row["first step s"] == 2.5 and row["peak RSS MB"] == 101
    assert row["note"] == "median of 2 rounds"
    assert summarize("mlp", "fl_fit", results, 100.0, 2)["x fl_fit"] == 1.0
    skipped = summarize("mlp", "equinox", results, 100.0, 2)
    assert skipped["samples/s"] == "-" and skipped["note"] == "equinox not installed"


def test_a_round_without_fl_fit_gives_no_ratio_for_that_round(monkeypatch):
    summarize = _summarize(monkeypatch)
    results = [_result("fl_fit", 0, 100.0), _result("fl_torch", 0, 80.0), _result("fl_torch", 1, 300.0),
               {"name": "fl_fit", "model": "mlp", "round": 1, "skipped": "timed out after 1200 s"}]
    row = summarize("mlp", "fl_torch", results, peak=100.0, rounds=2)
    assert row["x fl_fit"] == 0.8 and row["x fl_fit per round"] == "0.800"



def test_reports_name_the_processor_and_its_vector_unit(monkeypatch):
    """Two machines of one size differ threefold in matmul rate: each report says which ran it."""
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.common import cpu_model
    xeon = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
            "flags\t\t: fpu sse2 avx avx2 avx512f avx512bw\n\nprocessor\t: 1\n"
            "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: fpu\n")
    assert cpu_model(xeon) == "Intel(R) Xeon(R) Platinum 8488C (avx512f)"
    assert cpu_model("model name\t: AMD EPYC\nflags\t\t: sse2 avx avx2 fma\n") == "AMD EPYC (avx2)"
    assert cpu_model("model name\t: Some CPU\n") == "Some CPU"
    import platform
    assert cpu_model("processor\t: 0\n") == (platform.processor() or platform.machine())

def _step_variants(monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import step_variants
    return step_variants


def test_step_variants_kernel_gradients_match_the_convolutions(monkeypatch):
    """Every kernel-gradient formulation the benchmark times computes lax.conv's kernel
    gradient (a faster wrong answer would prove nothing)."""
    import jax
    import numpy as np
    sv = _step_variants(monkeypatch)
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))
    dy = jax.random.normal(jax.random.key(1), (2, 6, 5, 4))
    fns = sv._kgrad_variants(3, 4)
    ref = np.asarray(fns["lax"](x, dy))
    assert ref.shape == (3, 3, 3, 4) and np.abs(ref).max() > 0.1
    for name, f in fns.items():
        np.testing.assert_allclose(np.asarray(f(x, dy)), ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_step_variants_compute_the_shipped_function(monkeypatch):
    """relu after the pool gives the CNN's loss and gradients with the same parameters, and the
    argmax mask is the shipped first-maximum mask, ties included."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import nets
    from functorch_lite import losses
    from functorch_lite.layers import pool
    sv = _step_variants(monkeypatch)
    a, b = nets.cnn(), sv._cnn_relu_after_pool()
    pa, _ = a.init(jax.random.key(0), (1, 28, 28, 1))
    pb, _ = b.init(jax.random.key(1), (1, 28, 28, 1))
    weighted = ("0_conv", "3_conv", "7_dense", "9_dense")       # the same layers at the same places
    pb = {k: pa[k] if k in weighted else v for k, v in pb.items()}
    x = jax.random.normal(jax.random.key(1), (4, 28, 28, 1))
    y = jnp.arange(4)

    def loss(m):
        return lambda p: losses.cross_entropy(m.apply(p, {}, x)[0], y)
    (la, ga), (lb, gb) = jax.value_and_grad(loss(a))(pa), jax.value_and_grad(loss(b))(pb)
    assert abs(float(la) - float(lb)) < 1e-6
    for k in weighted:
        for u, v in zip(jax.tree_util.tree_leaves(ga[k]), jax.tree_util.tree_leaves(gb[k])):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-7, err_msg=k)
    z = jnp.asarray(np.random.default_rng(0).integers(0, 3, (2, 4, 6, 3)).astype(np.float32))
    shape, red = (2, 2, 2, 3, 2, 3), (2, 4)
    assert bool(jnp.all(sv._argmax_mask(z, shape, red) == pool._first_max_mask(z, shape, red)))


def test_step_variants_conv_parts_are_the_convolution_and_its_gradients(monkeypatch):
    """The three conv2 parts the benchmark times on all cores and on one are the 'same'
    convolution and its two gradients, checked against a numpy sum over the 9 kernel offsets."""
    import jax
    import numpy as np
    sv = _step_variants(monkeypatch)
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (2, 5, 4, 3))
    w = jax.random.normal(k[1], (3, 3, 3, 2))
    dy = jax.random.normal(k[2], (2, 5, 4, 2))
    parts = sv._conv_parts(3, 2)
    xn, wn, dyn = (np.asarray(a, np.float64) for a in (x, w, dy))
    xp = np.pad(xn, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros((2, 5, 4, 2))
    dx = np.zeros_like(xp)
    dw = np.zeros_like(wn)
    for i in range(3):
        for j in range(3):
            win = xp[:, i:i + 5, j:j + 4]
            y += win @ wn[i, j]
            dx[:, i:i + 5, j:j + 4] += dyn @ wn[i, j].T
            dw[i, j] = np.einsum("nhwc,nhwf->cf", win, dyn)
    np.testing.assert_allclose(np.asarray(parts["forward"](x, w)), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(parts["input_grad"](w, dy)), dx[:, 1:-1, 1:-1],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(parts["kernel_grad"](x, dy)), dw, rtol=1e-5, atol=1e-5)


def test_step_variants_patches_kgrad_is_the_convolutions_gradient(monkeypatch):
    """Under the conv2_patches_kgrad variant a 32-channel convolution goes through the patches
    kernel gradient and still has lax.conv's value and gradients; the switch is undone after."""
    import jax
    import numpy as np
    from functorch_lite.layers import shifted_conv
    sv = _step_variants(monkeypatch)
    cfg = ((1, 1), ((1, 1), (1, 1)), (1, 1), ("NHWC", "HWIO", "NHWC"))
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 3))

    def loss(conv):
        return lambda x, w: (conv(x, w, cfg) ** 2).sum()
    want = jax.value_and_grad(loss(shifted_conv.lax_conv), argnums=(0, 1))(x, w)
    seen = []

    def build():
        seen.append(shifted_conv.applies(x, w, groups=1, pads=cfg[1], channels_last=True))
        return jax.value_and_grad(loss(shifted_conv.conv), argnums=(0, 1))(x, w)
    got = sv._patches_kgrad(build)
    assert seen == [True] and shifted_conv.MAX_CHANNELS == 1
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
