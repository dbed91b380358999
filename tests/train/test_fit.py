"""fit / train_step / evaluate against hand-written JAX + optax and real MNIST."""
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import functorch_lite as fl
from functorch_lite.core import xla
from functorch_lite.train import TrainState, make_train_step


def _toy(n=200, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, classes)).astype(np.float32)
    return x, (x @ w).argmax(-1).astype(np.int32)


def _model():
    return fl.Sequential([fl.Dense(16), fl.relu, fl.Dense(3)])


def test_train_step_equals_hand_written_value_and_grad_and_optax_update():
    x, y = _toy(32)
    model, tx = _model(), optax.adam(1e-2)
    ts = TrainState.create(model, tx, jax.random.key(0), (1, 6))
    params0 = jax.tree_util.tree_map(jnp.array, ts.params)   # copy: ts is donated
    step = make_train_step(model, "cross_entropy", tx, metrics=["accuracy"])
    ts2, logs = step(ts, (jnp.asarray(x), jnp.asarray(y)))

    def loss_fn(p):
        logits = model.apply(p, {}, x)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits
    (value, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params0)
    updates, _ = tx.update(grads, tx.init(params0), params0)
    expected = optax.apply_updates(params0, updates)
    np.testing.assert_allclose(float(logs["loss"]), float(value), rtol=1e-6)
    np.testing.assert_allclose(float(logs["accuracy"]), float((logits.argmax(-1) == y).mean()))
    for a, b in zip(jax.tree_util.tree_leaves(ts2.params), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(ts2.step) == 1


def test_fit_history_compiles_once_plus_one_for_the_partial_batch():
    x, y = _toy(200)
    h = fl.fit(_model(), "cross_entropy", "adam", (x, y), epochs=3, batch_size=64, verbose=0,
               validation_data=(x[:50], y[:50]))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.epoch == [0, 1, 2]
    # 3 full batches + a tail of 8 per epoch: two shapes, compiled once each over 3 epochs
    assert h.compiles.count == 2, h.compiles.reasons
    assert "(64, 6)" in h.compiles.reasons[1] and "(8, 6)" in h.compiles.reasons[1]
    assert int(h.train_state.step) == 3 * 4
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_fit_epoch_loss_is_the_size_weighted_mean_of_the_step_losses():
    x, y = _toy(100)
    seen = []

    class Record(fl.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])
    h = fl.fit(_model(), "cross_entropy", "sgd", (x, y), epochs=1, batch_size=40, verbose=0,
               shuffle=False, callbacks=[Record()])
    assert len(seen) == 3
    np.testing.assert_allclose(h.history["loss"][0], (40 * seen[0] + 40 * seen[1] + 20 * seen[2]) / 100,
                               rtol=1e-6)


def test_same_seed_is_bit_identical_and_different_seeds_differ():
    x, y = _toy(128)
    run = lambda seed: fl.fit(fl.Sequential([fl.Dense(16), fl.relu, fl.Dropout(0.3), fl.Dense(3)]),
                              "cross_entropy", "adam", (x, y), epochs=2, batch_size=32, seed=seed,
                              verbose=0).train_state.params
    a, b, c = run(1), run(1), run(2)
    for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(la, lb)
    assert any(not np.array_equal(la, lc) for la, lc in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(c)))


def test_steps_per_execution_matches_one_step_per_call():
    x, y = _toy(256)
    kw = dict(epochs=1, batch_size=32, seed=3, verbose=0)
    one = fl.fit(_model(), "cross_entropy", "adam", (x, y), **kw)
    four = fl.fit(_model(), "cross_entropy", "adam", (x, y), steps_per_execution=4, **kw)
    for a, b in zip(jax.tree_util.tree_leaves(one.train_state.params),
                    jax.tree_util.tree_leaves(four.train_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.history["loss"], four.history["loss"], rtol=1e-5)


def test_fit_from_an_iterable_of_batches_and_batchnorm_state_moves():
    x, y = _toy(96)
    loader = fl.datasets.DataLoader((x, y), batch_size=32, shuffle=True, seed=0)
    model = fl.Sequential([fl.Dense(8), fl.BatchNorm(), fl.relu, fl.Dense(3)])
    h = fl.fit(model, "cross_entropy", "adam", loader, epochs=2, batch_size=32, verbose=0)
    assert int(h.train_state.step) == 6
    mean = h.train_state.state["1_batch_norm"]["mean"]
    assert float(jnp.abs(mean).sum()) > 0   # running statistics were updated in training


def test_keyboard_interrupt_keeps_last_completed_step_and_partial_history():
    x, y = _toy(320)

    class Interrupt(fl.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.trainer.train_state.step) == 7:
                raise KeyboardInterrupt
    h = fl.fit(_model(), "cross_entropy", "adam", (x, y), epochs=3, batch_size=32, verbose=0,
               callbacks=[Interrupt()])
    assert h.interrupted
    assert int(h.train_state.step) == 7
    assert h.epoch == []  # interrupted inside the first epoch
    leaves = jax.tree_util.tree_leaves(h.train_state.params)
    assert all(np.all(np.isfinite(np.asarray(l))) for l in leaves)  # buffers alive, not donated away


def test_stop_on_nan_stops_and_reports_the_step():
    x, y = _toy(320)
    x[100:] = np.nan   # batches from the 4th step on (no shuffle) have NaN inputs
    h = fl.fit(_model(), "cross_entropy", "sgd", (x, y), epochs=2, batch_size=32, verbose=0,
               shuffle=False, stop_on_nan=True)
    assert int(h.train_state.step) == 4
    assert len(h.epoch) == 1 and not np.isfinite(h.history["loss"][0])


def test_evaluate_with_partial_batches_equals_one_full_batch():
    x, y = _toy(103)
    model = _model()
    params, _ = model.init(jax.random.key(1), (1, 6))
    small = fl.evaluate(model, params, (x, y), batch_size=10, loss="cross_entropy")
    logits = model.apply(params, {}, x)[0]
    full_loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
    np.testing.assert_allclose(small["loss"], full_loss, rtol=1e-5)
    np.testing.assert_allclose(small["accuracy"], float((logits.argmax(-1) == y).mean()), rtol=1e-6)
    np.testing.assert_allclose(fl.predict(model, params, x, batch_size=10), logits, rtol=1e-5, atol=1e-6)


def test_sample_weights_zero_weight_examples_do_not_count():
    x, y = _toy(64)
    w = np.zeros(64, np.float32)
    w[:32] = 1.0
    model = _model()
    params, _ = model.init(jax.random.key(1), (1, 6))
    weighted = fl.evaluate(model, params, (x, y, w), loss="cross_entropy")
    first = fl.evaluate(model, params, (x[:32], y[:32]), loss="cross_entropy")
    np.testing.assert_allclose(weighted["loss"], first["loss"], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(epochs=0), "epochs expected a positive int, got 0"),
    (dict(batch_size=-1), "batch_size expected a positive int, got -1"),
])
def test_fit_rejects_bad_configuration(kw, match):
    x, y = _toy(10)
    with pytest.raises(ValueError, match=match):
        fl.fit(_model(), "cross_entropy", "adam", (x, y), verbose=0, **kw)


def test_fit_rejects_mismatched_lengths():
    x, y = _toy(10)
    with pytest.raises(ValueError, match=r"same number of examples, got \[10, 9\]"):
        fl.fit(_model(), "cross_entropy", "adam", (x, y[:9]), verbose=0)


@pytest.mark.slow
def test_real_mnist_mlp_one_epoch_beats_95_percent():
    from nets.mnist import prepare
    (xt, yt), (xs, ys) = fl.datasets.load_mnist()
    model = fl.Sequential([fl.Flatten(), fl.Dense(256), fl.relu, fl.Dense(10)])
    h = fl.fit(model, "cross_entropy", "adam", (prepare(xt), yt.astype(np.int32)), epochs=1,
               batch_size=128, verbose=0)
    acc = fl.evaluate(model, h.train_state, (prepare(xs), ys.astype(np.int32)))["accuracy"]
    assert acc > 0.95, acc


@pytest.mark.parametrize("x_dtype, y, loss, exc, match", [
    (np.uint8, None, "cross_entropy", fl.ShapeError, r"inputs expected a floating dtype, got uint8"),
    (np.float32, np.array([0.5] * 10, np.float32), "cross_entropy", fl.ShapeError,
     r"expected integer class indices, got non-integer value 0.5 at index \(0,\)"),
    (np.float32, np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2]), "cross_entropy", ValueError,
     r"class indices in \[0, 3\), got 3 at index \(3,\)"),
    (np.float32, np.array([0, 1, 2, 1, 0, 1, 2, 0, 1, 2]), "categorical_crossentropy", fl.ShapeError,
     r"expects one-hot labels of shape \(N, 3\), got class indices of shape \(10,\)"),
    (np.float32, np.eye(3, dtype=np.float32)[np.arange(10) % 3], "sparse_categorical_crossentropy",
     fl.ShapeError, r"expects class indices of shape \(N,\), got one-hot-shaped labels \(10, 3\)"),
    (np.float32, np.zeros((10, 5), np.float32), "cross_entropy", fl.ShapeError,
     r"labels shape \(10, 5\) matches neither class indices \(N,\) nor one-hot \(N, 3\)"),
])
def test_fit_checks_inputs_and_labels_on_the_host_before_training(x_dtype, y, loss, exc, match):
    x, y0 = _toy(10)
    x = (np.abs(x) * 10).astype(x_dtype)
    with pytest.raises(exc, match=match):
        fl.fit(_model(), loss, "adam", (x, y0 if y is None else y), verbose=0)


def test_element_wise_losses_on_n_by_1_targets_average_like_the_loss_itself():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    model = fl.Sequential([fl.Dense(1)])
    params, _ = model.init(jax.random.key(0), (1, 3))
    got = fl.evaluate(model, params, (x, y), batch_size=16, loss="mse", metrics=None)["loss"]
    pred = model.apply(params, {}, x)[0]
    np.testing.assert_allclose(got, float(jnp.mean((pred - y) ** 2)), rtol=1e-5)
    tx = fl.optim.get("sgd")
    ts = TrainState.create(model, tx, jax.random.key(1), (1, 3), params=params)
    h = fl.fit(model, "mse", tx, (x, y), epochs=1, batch_size=50, metrics=None, verbose=0,
               shuffle=False, train_state=ts)
    np.testing.assert_allclose(h.history["loss"][0], float(jnp.mean((pred - y) ** 2)), rtol=1e-5)


def test_first_step_compiled_in_the_background_is_the_one_the_first_call_runs():
    """fit's warm-up compiles the step on a thread for the first host batch; the step's own
    call then neither traces nor compiles it again (one trace, one XLA compile in all)."""
    from functorch_lite.train.fit import Trainer, _FirstStepCompile
    x, y = _toy(64)
    model = _model()
    trainer = Trainer(model, "cross_entropy", "adam", ("accuracy",))
    spec = jax.ShapeDtypeStruct((32, 6), jnp.float32)
    names = []
    xla.once_compiler_options()   # its one-off probe compile happens here, not in the window below

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(threading.current_thread().name)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        warm = _FirstStepCompile.start(trainer, model, 5, spec, (x, y), 32)
        warm.lowered()
        warm.join()
        assert trainer.train_step.compiles.count == 1   # traced by the warm-up thread
        compiled_by_warm_up = list(names)
        ts = TrainState.create(model, trainer.tx, 5, spec)
        del names[:]
        ts, logs = trainer.train_step(ts, (x[:32], y[:32]))
        jax.block_until_ready(ts)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled_by_warm_up == ["fit: first step's compile"]
    assert trainer.train_step.compiles.count == 1 and names == [], names   # the call reused it
    h = fl.fit(_model(), "cross_entropy", "adam", (x, y), batch_size=32, verbose=0)
    assert h.compiles.count == 1, h.compiles.reasons


def test_a_failed_input_check_leaves_no_compile_running():
    x, y = _toy(64)
    with pytest.raises(Exception, match="out of range|class"):
        fl.fit(_model(), "cross_entropy", "adam", (x, y + 7), batch_size=32, verbose=0)
    assert not [t for t in threading.enumerate() if t.name == "fit: first step's compile"]
