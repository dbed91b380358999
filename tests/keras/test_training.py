"""compile / fit / evaluate / predict / train_on_batch: against hand-written training loops and
numpy recomputation; compile counts; Keras semantics (validation_split, 'accuracy', Dropout and
BatchNorm in training vs inference); every error message."""
import math

import numpy as np
import optax
import pytest
import jax
import jax.numpy as jnp

import functorch_lite.keras as keras
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.datasets import DataLoader
from functorch_lite.keras import layers

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture
def data(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return x, y


def _mlp(n_out=3, act=None):
    return keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="tanh"),
                             layers.Dense(n_out, activation=act)])


def _ce(logits, y):
    logp = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
    return -jnp.take_along_axis(logp, y[:, None], 1)[:, 0]


# ---------------------------------------------------------------- fit is the train step
def test_fit_matches_a_hand_written_loop_and_its_history(data):
    x, y = data
    model = _mlp()
    w0 = model.get_weights()
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

    ref = _mlp()
    ref.set_weights(w0)
    params, tx = ref.params, keras.optimizers.SGD(0.1, momentum=0.9).tx
    opt_state = tx.init(params)
    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            logits = ref.apply_fn(p, {}, xb)[0]
            return jnp.mean(_ce(logits, yb)), logits
        (l, logits), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        u, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, u), opt_state, l, jnp.sum(jnp.argmax(logits, -1) == yb)

    losses, accs = [], []
    for _ in range(3):
        tot_l = tot_a = 0.0
        for s in range(0, 40, 16):  # 16, 16 and a last partial batch of 8
            xb, yb = jnp.asarray(x[s:s + 16]), jnp.asarray(y[s:s + 16])
            params, opt_state, l, hits = step(params, opt_state, xb, yb)
            tot_l += float(l) * len(xb)
            tot_a += float(hits)
        losses.append(tot_l / 40)
        accs.append(tot_a / 40)
    for a, b in zip(jax.tree_util.tree_leaves(model.params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-5)
    np.testing.assert_allclose(hist.history["accuracy"], accs, rtol=1e-6)
    assert model.optimizer.iterations == 9 and hist.epoch == [0, 1, 2]
    assert hist.params == {"verbose": 0, "epochs": 3, "steps": 3}
    assert model.history is hist


def test_one_compilation_per_shape_across_epochs_and_fit_calls(data):
    x, y = data
    model = _mlp()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)  # 2 full batches + a tail of 8
    counter = model._k.trainer.train_step.compiles
    assert counter.count == 2  # the full-batch step and the tail, once each
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:10], y[:10]))
    model.evaluate(x, y, verbose=0)
    model.train_on_batch(x[:8], y[:8])  # the plain step, compiled for the tail shape
    assert counter.count == 2
    evals = model._k.trainer.eval_step.compiles.count
    model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x[:10], y[:10]))
    assert model._k.trainer.eval_step.compiles.count == evals
    for n in (1, 7, 33, 64):
        model.predict(x[:n] if n <= 40 else np.concatenate([x, x])[:n], verbose=0)
    assert model._eager_fn(False)._cache_size() == 1  # padded: one compiled predict


def test_steps_per_execution_gives_the_same_training(data):
    x, y = data
    results = []
    for k in (1, 3):
        keras.utils.set_random_seed(3)
        model = _mlp()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=k)
        h = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        results.append((model.get_weights(), h.history["loss"]))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)


def test_fit_on_an_iterable_of_batches_equals_fit_on_arrays(data):
    x, y = data
    keras.utils.set_random_seed(1)
    a = _mlp()
    keras.utils.set_random_seed(1)
    b = _mlp()
    for m in (a, b):
        m.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    a.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(DataLoader((x, y), 16), epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)
    assert hb.params["steps"] == 3
    with pytest.raises(ConfigError, match=r"fit: with x an iterable of \(x, y\) batches, y and "
                                          r"validation_split expected None/0"):
        b.fit(DataLoader((x, y), 16), y, verbose=0)


# ---------------------------------------------------------------- history and validation
def test_history_keys_lengths_and_validation_split_takes_the_last_fraction(data):
    x, y = data
    model = _mlp(act="softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0)
    assert sorted(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.params["steps"] == 4  # 30 training examples (the first 75 %) in batches of 8
    loss, acc = model.evaluate(x[30:], y[30:], verbose=0)
    assert math.isclose(hist.history["val_loss"][-1], loss, rel_tol=1e-5)
    assert math.isclose(hist.history["val_accuracy"][-1], acc, rel_tol=1e-6)
    hist2 = model.fit(x, y, epochs=4, initial_epoch=2, validation_data=(x[:5], y[:5]),
                      verbose=0)
    assert hist2.epoch == [2, 3] and len(hist2.history["val_loss"]) == 2


def test_evaluate_return_forms_and_sample_weight(data):
    x, y = data
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.evaluate(x, y, verbose=0, batch_size=7)
    per = np.asarray(_ce(jnp.asarray(model.predict(x, verbose=0)), jnp.asarray(y)))
    assert isinstance(loss, float) and math.isclose(loss, per.mean(), rel_tol=1e-5)
    w = np.linspace(0.0, 2.0, 40).astype(np.float32)
    wl = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert math.isclose(wl, (per * w).sum() / w.sum(), rel_tol=1e-5)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    res = model.evaluate(x, y, verbose=0)
    assert isinstance(res, list) and len(res) == 3 and res[2] == 1.0  # top-5 of 3 classes
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(d) == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"]


def test_evaluate_prints_with_verbose(data, capsys):
    x, y = data
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["acc"])
    model.evaluate(x, y)
    assert "loss: " in capsys.readouterr().out


@pytest.mark.parametrize("case", ["sparse", "sparse_n1", "categorical", "binary"])
def test_accuracy_resolves_like_keras(rng, case):
    x = rng.standard_normal((30, 5)).astype(np.float32)
    cls = rng.integers(0, 3, 30)
    if case == "binary":
        model, loss, y = _mlp(1, "sigmoid"), "binary_crossentropy", (cls > 0).astype(np.float32)
    elif case == "categorical":
        model, loss, y = _mlp(3, "softmax"), "categorical_crossentropy", np.eye(3)[cls]
    else:
        model, loss = _mlp(3, "softmax"), "sparse_categorical_crossentropy"
        y = cls[:, None] if case == "sparse_n1" else cls
    model.compile("adam", loss, metrics=["accuracy"])
    _, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)
    expected = ((p[:, 0] > 0.5) == y).mean() if case == "binary" else (p.argmax(1) == cls).mean()
    assert math.isclose(acc, expected, rel_tol=1e-6)
    names = {"binary": "BinaryAccuracy", "categorical": "CategoricalAccuracy"}
    m = keras.metrics.resolve("accuracy", keras.losses.get(loss), (None,) + y.shape[1:],
                              (None,) + p.shape[1:])
    assert type(m).__name__ == names.get(case, "SparseCategoricalAccuracy")


# ---------------------------------------------------------------- training vs inference
def test_dropout_is_active_in_training_steps_only(rng):
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((5,)), layers.Dropout(0.5), layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    kernel, bias = model.get_weights()
    expected = float(np.mean(_ce(jnp.asarray(x @ kernel + bias), jnp.asarray(y))))
    assert math.isclose(model.test_on_batch(x, y), expected, rel_tol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, **TOL)
    assert not math.isclose(model.train_on_batch(x, y), expected, rel_tol=1e-3)
    hist = model.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    assert not math.isclose(hist.history["loss"][0], expected, rel_tol=1e-3)
    assert math.isclose(model.evaluate(x, y, verbose=0), expected, rel_tol=1e-5)


def test_batchnorm_uses_batch_statistics_in_training_and_moving_ones_in_inference(rng):
    x = (rng.standard_normal((32, 4)) * 2 + 3).astype(np.float32)
    t = rng.standard_normal((32, 4)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), layers.BatchNormalization()])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    before = model.predict(x, verbose=0)
    np.testing.assert_allclose(before, x / np.sqrt(1 + 1e-3), **TOL)  # moving mean 0, var 1
    model.evaluate(x, t, verbose=0)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[2], 0)  # inference leaves the state
    loss = model.train_on_batch(x, t)
    normed = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    assert math.isclose(loss, float(np.mean((normed - t) ** 2)), rel_tol=1e-4)
    _, _, mean, var = model.get_weights()
    np.testing.assert_allclose(mean, 0.01 * x.mean(0), rtol=1e-4)
    np.testing.assert_allclose(var, 0.99 + 0.01 * x.var(0), rtol=1e-4)
    np.testing.assert_allclose(model.predict(x, verbose=0), (x - mean) / np.sqrt(var + 1e-3),
                               atol=1e-4)


def test_train_on_batch_is_one_sgd_step_and_learning_rate_can_be_set(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32)
    t = rng.standard_normal((8, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    assert math.isclose(float(model.optimizer.learning_rate), 0.1, rel_tol=1e-6)
    model.optimizer.learning_rate = 0.5  # before the optimizer state exists
    k, b = model.get_weights()
    loss, mae = model.train_on_batch(x, t)
    err = x @ k + b - t
    assert math.isclose(loss, float(np.mean(err ** 2)), rel_tol=1e-5)
    assert math.isclose(mae, float(np.mean(np.abs(err))), rel_tol=1e-5)
    gk, gb = 2 * x.T @ err / err.size, 2 * err.sum(0) / err.size
    k1, b1 = model.get_weights()
    np.testing.assert_allclose(k1, k - 0.5 * gk, atol=1e-6)
    np.testing.assert_allclose(b1, b - 0.5 * gb, atol=1e-6)
    model.optimizer.learning_rate = 0.0  # now in the optimizer state: no recompilation
    model.train_on_batch(x, t)
    np.testing.assert_array_equal(model.get_weights()[0], k1)
    assert model._k.trainer.train_step.compiles.count == 1
    d = model.train_on_batch(x, t, return_dict=True)
    assert set(d) == {"loss", "mae"}
    np.testing.assert_allclose(model.predict_on_batch(x), x @ k1 + b1, atol=1e-5)
    assert model.test_on_batch(x, t, return_dict=True)["loss"] == pytest.approx(d["loss"],
                                                                                 rel=1e-5)


def test_learning_rate_schedule_drives_the_steps(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32)
    t = rng.standard_normal((8, 1)).astype(np.float32)
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, use_bias=False)])
    model.compile(keras.optimizers.SGD(sched), "mse")
    for step in range(3):
        (k,) = model.get_weights()
        g = 2 * x.T @ (x @ k - t) / 8
        model.train_on_batch(x, t)
        np.testing.assert_allclose(model.get_weights()[0], k - 0.1 * 0.5 ** step * g, atol=1e-6)
    with pytest.raises(ConfigError, match=r"SGD: learning_rate expected a settable value, but "
                                          r"this optimizer was created with a schedule"):
        model.optimizer.learning_rate = 0.1


def test_inputs_are_converted_like_keras(rng):
    x8 = rng.integers(0, 255, (16, 4, 4, 1)).astype(np.uint8)
    y = rng.integers(0, 2, 16).astype(np.float64)  # float labels for a sparse loss
    model = keras.Sequential([layers.Rescaling(1 / 255), layers.Conv2D(2, 3), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(x8, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 4, 4, 1) and np.isfinite(h.history["loss"][0])
    np.testing.assert_allclose(model.predict(x8, verbose=0),
                               model.predict(x8.astype(np.float64) , verbose=0), atol=1e-6)


def test_custom_loss_and_metric_functions(rng):
    x = rng.standard_normal((16, 3)).astype(np.float32)
    t = rng.standard_normal((16, 1)).astype(np.float32)

    def my_loss(y_true, y_pred):
        return jnp.mean(jnp.abs(y_true - y_pred) ** 3, axis=-1)

    def max_err(y_true, y_pred):
        return jnp.max(jnp.abs(y_true - y_pred), axis=-1)

    model = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
    model.compile("sgd", my_loss, metrics=[max_err, keras.metrics.MeanAbsoluteError()])
    loss, me, mae = model.evaluate(x, t, verbose=0)
    err = np.abs(model.predict(x, verbose=0) - t)
    assert math.isclose(loss, float(np.mean(err ** 3)), rel_tol=1e-5)
    assert math.isclose(me, float(np.mean(err)), rel_tol=1e-5)  # per example: one output
    assert math.isclose(mae, float(np.mean(err)), rel_tol=1e-5)
    h = model.fit(x, t, verbose=0)
    assert set(h.history) == {"loss", "max_err", "mean_absolute_error"}


def test_regression_targets_of_shape_n_for_one_output(rng):
    x = rng.standard_normal((16, 3)).astype(np.float32)
    t = rng.standard_normal(16).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    loss = model.evaluate(x, t, verbose=0)
    assert math.isclose(loss, float(np.mean((model.predict(x, verbose=0)[:, 0] - t) ** 2)),
                        rel_tol=1e-5)


# ---------------------------------------------------------------- errors
def test_fit_before_compile_and_without_loss(data):
    x, y = data
    model = _mlp()
    with pytest.raises(ConfigError, match=r"fit: you must call model.compile\(optimizer=..., "
                                          r"loss=...\) before model.fit\(\)"):
        model.fit(x, y)
    with pytest.raises(ConfigError, match=r"evaluate: you must call model.compile"):
        model.evaluate(x, y)
    model.compile("adam")
    with pytest.raises(ConfigError, match=r"fit: the model was compiled without a loss"):
        model.fit(x, y)


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizer="adamm"), r"optimizer: unknown value 'adamm'; expected one of \['adagrad', "
                              r"'adam', 'adamw', 'rmsprop', 'sgd'\]"),
    (dict(optimizer=3), r"optimizer: expected a name, a keras Optimizer or an optax"),
    (dict(loss="sparse_categorical_crosentropy"),
     r"loss: unknown value 'sparse_categorical_crosentropy'; expected one of \[.*"
     r"'sparse_categorical_crossentropy'.*\]"),
    (dict(loss=3), r"loss: expected a name, a keras Loss or a function"),
    (dict(loss="mse", metrics=["acuracy"]),
     r"metric: unknown value 'acuracy'; expected one of \[.*'accuracy'.*\]"),
    (dict(loss="mse", metrics=[3]), r"metric: expected a name, a keras Metric or a function"),
    (dict(loss="mse", metrics={"out": "mae"}), r"metrics as a dict \(per output\) is not supported"),
    (dict(loss="mse", steps_per_execution=0), r"steps_per_execution expected a positive int"),
    (dict(loss="mse", jit_compile=False), r"jit_compile expected 'auto' or True"),
    (dict(loss="mse", run_eagerly=True), r"run_eagerly=True is not supported"),
])
def test_compile_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _mlp().compile(**kwargs)


def test_label_errors_name_the_loss_and_the_fix(data):
    x, y = data
    model = _mlp(act="softmax")
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match=r"loss 'sparse_categorical_crossentropy': y expected "
                                         r"integer class indices of shape \(N,\), got shape "
                                         r"\(40, 3\), which looks one-hot .*\nHint: use "
                                         r"loss='categorical_crossentropy'"):
        model.fit(x, np.eye(3)[y], verbose=0)
    with pytest.raises(ValueError, match=r"y expected class indices in \[0, 3\) \(the model outputs "
                                         r"3 classes\), got 7 at index \(4,\) \(1 out of range\)"):
        model.fit(x, np.where(np.arange(40) == 4, 7, y), verbose=0)
    with pytest.raises(ShapeError, match=r"y expected integer class indices, got 0.5 at index "
                                         r"\(0,\)"):
        model.fit(x, np.full(40, 0.5), verbose=0)
    with pytest.raises(ShapeError, match=r"y expected integer class indices of shape \(N,\) for "
                                         r"model outputs \(N, 3\), got shape \(40, 2\)"):
        model.fit(x, np.zeros((40, 2)), verbose=0)
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ShapeError, match=r"loss 'categorical_crossentropy': y expected one-hot "
                                         r"targets of shape \(N, 3\), got shape \(40,\), which looks "
                                         r"like integer class indices\nHint: .*to_categorical\(y, "
                                         r"3\)"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ShapeError, match=r"y expected shape \(N, 3\) \(one-hot, like the model "
                                         r"outputs\), got shape \(40, 5\)"):
        model.fit(x, np.zeros((40, 5)), verbose=0)
    model.compile("adam", "mse")
    with pytest.raises(ShapeError, match=r"loss 'mse': y expected one target per model output, "
                                         r"shape \(N, 3\), got shape \(40, 2\)"):
        model.fit(x, np.zeros((40, 2)), verbose=0)


def test_custom_loss_shape_errors_surface_before_training(data):
    x, y = data
    model = _mlp()
    model.compile("adam", lambda yt, yp: jnp.mean((yt - yp) ** 2, axis=-1))
    with pytest.raises(TypeError, match=r"fit: loss '<lambda>' on model outputs \(None, 3\) and y "
                                        r"\(40, 2\): "):
        model.fit(x, np.zeros((40, 2), np.float32), verbose=0)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(y=np.zeros(39)), ShapeError, r"fit: x and y expected the same number of examples"),
    (dict(y=None), ConfigError, r"fit: expected x and y arrays, got y=None"),
    (dict(sample_weight=np.ones(3)), ShapeError, r"sample_weight expected shape \(40,\), got \(3,\)"),
    (dict(validation_split=1.5), ConfigError, r"validation_split expected a number in \(0, 1\)"),
    (dict(validation_split=0.99), ConfigError, r"validation_split=0.99 leaves no training "
                                               r"examples out of 40"),
    (dict(validation_split=0.2, validation_data=(1, 2)), ConfigError,
     r"expected validation_split or validation_data, not both"),
    (dict(validation_data=[1]), ConfigError, r"validation_data expected a tuple"),
    (dict(verbose=3), ConfigError, r"verbose: expected 'auto', 0, 1 or 2, got 3"),
    (dict(epochs=0), ConfigError, r"fit: epochs expected a positive int, got 0"),
    (dict(batch_size=0), ConfigError, r"fit: batch_size expected a positive int, got 0"),
    (dict(callbacks=[object()]), ConfigError, r"callbacks expected keras.callbacks.Callback"),
    (dict(x=[np.zeros((40, 5)), np.zeros((40, 5))]), ConfigError,
     r"x expected one array \(models with several inputs are not supported"),
    (dict(x=np.array([None] * 40)), ConfigError, r"x: expected a numeric array"),
])
def test_fit_argument_errors(data, kwargs, exc, match):
    x, y = data
    model = _mlp()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    args = dict(x=x, y=y, verbose=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        model.fit(**args)


def test_duplicate_metric_names_are_rejected(data):
    x, y = data
    model = _mlp()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    with pytest.raises(ConfigError, match=r"metric names must be unique and not 'loss', got "
                                          r"\['accuracy'\]"):
        model.fit(x, y, verbose=0)


def test_multi_output_models_are_rejected_by_fit(data):
    x, y = data
    inp = keras.Input((5,))
    model = keras.Model(inp, [layers.Dense(3)(inp), layers.Dense(2)(inp)])
    model.compile("adam", "mse")
    with pytest.raises(ConfigError, match=r"fit: models with several outputs are not supported"):
        model.fit(x, y, verbose=0)
    assert [o.shape for o in model.predict(x, verbose=0)] == [(40, 3), (40, 2)]


def test_a_subclassed_model_trains(rng):
    x = rng.standard_normal((256, 6)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int32)  # xor: needs the hidden layer

    class XorNet(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = layers.Dense(32)
            self.norm = layers.BatchNormalization()
            self.drop = layers.Dropout(0.1)
            self.out = layers.Dense(2, activation="softmax")

        def call(self, inputs, training=None):
            h = keras.layers.Activation("relu")(self.norm(self.hidden(inputs), training=training))
            return self.out(self.drop(h, training=training))

    net = XorNet(name="xor")
    net.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    hist = net.fit(x, y, batch_size=32, epochs=30, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert net.evaluate(x, y, verbose=0)[1] > 0.9
    assert net.name == "xor" and set(net.params) == {"hidden", "norm", "drop", "out",
                                                      "inline_0_activation"}
    assert np.abs(net.norm.get_weights()[2]).max() > 0  # moving mean was trained


def test_an_embedding_model_trains_on_integer_ids(rng):
    ids = rng.integers(0, 20, (128, 6))
    y = (ids == 3).any(1).astype(np.int32)  # does token 3 occur?
    model = keras.Sequential([layers.Embedding(20, 8), layers.GlobalAveragePooling1D(),
                              layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(ids, y, batch_size=32, epochs=20, verbose=0)
    assert model.input_shape == (None, 6)
    assert hist.history["accuracy"][-1] > 0.85 > hist.history["accuracy"][0]
    np.testing.assert_allclose(model.predict(ids.astype(np.float32), verbose=0),
                               model.predict(ids, verbose=0), atol=1e-6)
