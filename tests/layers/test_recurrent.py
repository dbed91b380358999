"""SimpleRNN / LSTM / GRU: parity with torch nn.RNN/LSTM/GRU (weights copied verbatim), final
states, initial states, finite differences, torch autograd, dropout between layers, errors."""
import dataclasses

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.core.module import output_spec
from functorch_lite.layers.dense import Dense
from functorch_lite.layers.dropout import Dropout
from functorch_lite.layers.recurrent import GRU, LSTM, SimpleRNN, rnn_params_from_torch, rnn_params_to_torch

TOL = dict(atol=1e-5, rtol=1e-5)
KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def _pair(torch, kind, cin, H, **kw):
    """(torch module, our module) for the same configuration."""
    ours_kw = dict(kw)
    torch_kw = {k: v for k, v in kw.items() if k in ("num_layers", "bidirectional", "batch_first")}
    if "use_bias" in kw:
        torch_kw["bias"] = kw["use_bias"]
    torch_kw.setdefault("batch_first", True)
    if kind.startswith("rnn"):
        act = kind.split("_")[1]
        return (torch.nn.RNN(cin, H, nonlinearity=act, **torch_kw),
                SimpleRNN(H, activation=act, **ours_kw))
    if kind == "lstm":
        return torch.nn.LSTM(cin, H, **torch_kw), LSTM(H, **ours_kw)
    return torch.nn.GRU(cin, H, **torch_kw), GRU(H, **ours_kw)


def _np(t):
    return t.detach().numpy()


def _jit_apply(layer):
    """``layer.apply`` compiled once (cheaper than eager dispatch of the scan's pieces)."""
    return jax.jit(layer.apply, static_argnames="train")


# (kind, num_layers, bidirectional, batch_first): every option value meets every kind at least
# once (test_initial_state_and_last_step adds 2 layers + bidirectional + batch_first for all kinds)
PARITY = [
    ("rnn_tanh", 1, False, True), ("rnn_tanh", 2, True, False),
    ("rnn_relu", 1, True, True), ("rnn_relu", 2, False, False),
    ("lstm", 1, False, False), ("lstm", 2, True, False), ("lstm", 1, True, True),
    ("gru", 1, True, False), ("gru", 2, False, True), ("gru", 2, True, False),
]


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first", PARITY, ids=str)
def test_matches_torch_with_final_states(torch, rng, kind, num_layers, bidirectional, batch_first):
    torch.manual_seed(0)
    N, T, C, H = 3, 5, 4, 6
    tm, layer = _pair(torch, kind, C, H, num_layers=num_layers, bidirectional=bidirectional,
                      batch_first=batch_first, return_state=True)
    shape = (N, T, C) if batch_first else (T, N, C)
    x = rng.standard_normal(shape).astype(np.float32)
    out_t, state_t = tm(torch.from_numpy(x))
    params = rnn_params_from_torch(tm.state_dict())
    # our init produces exactly torch's tree of shapes
    ref, _ = jax.eval_shape(lambda k: layer.init(k, shape), jax.random.key(0))
    assert jax.tree_util.tree_map(jnp.shape, ref) == jax.tree_util.tree_map(jnp.shape, params)
    (y, final), st = _jit_apply(layer)(params, {}, jnp.asarray(x))
    assert st == {}
    assert y.shape == tuple(out_t.shape) == (shape[:2] + (H * (2 if bidirectional else 1),))
    np.testing.assert_allclose(np.asarray(y), _np(out_t), **TOL)
    if kind == "lstm":
        for ours, theirs in zip(final, state_t):
            assert ours.shape == tuple(theirs.shape) == (num_layers * (1 + bidirectional), N, H)
            np.testing.assert_allclose(np.asarray(ours), _np(theirs), **TOL)
    else:
        assert final.shape == tuple(state_t.shape)
        np.testing.assert_allclose(np.asarray(final), _np(state_t), **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_and_last_step(torch, rng, kind):
    torch.manual_seed(1)
    N, T, C, H, L = 2, 6, 3, 4, 2
    tm, layer = _pair(torch, kind, C, H, num_layers=L, bidirectional=True,
                      return_sequences=False, return_state=True)
    x = rng.standard_normal((N, T, C)).astype(np.float32)
    h0 = rng.standard_normal((2 * L, N, H)).astype(np.float32)
    c0 = rng.standard_normal((2 * L, N, H)).astype(np.float32)
    if kind == "lstm":
        out_t, (hn_t, cn_t) = tm(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        init = (jnp.asarray(h0), jnp.asarray(c0))
    else:
        out_t, hn_t = tm(torch.from_numpy(x), torch.from_numpy(h0))
        init = jnp.asarray(h0)
    params = rnn_params_from_torch(tm.state_dict())
    (y, final), _ = _jit_apply(layer)(params, {}, (jnp.asarray(x), init))
    assert y.shape == (N, 2 * H)
    np.testing.assert_allclose(np.asarray(y), _np(out_t)[:, -1], **TOL)   # torch's out[:, -1]
    np.testing.assert_allclose(np.asarray(final[0] if kind == "lstm" else final), _np(hn_t), **TOL)
    if kind == "lstm":
        np.testing.assert_allclose(np.asarray(final[1]), _np(cn_t), **TOL)
    # without return_state the output is the array alone; a list (x, h0) works too
    plain = dataclasses.replace(layer, return_state=False)
    y2, _ = plain.apply(params, {}, [jnp.asarray(x), init])
    np.testing.assert_allclose(np.asarray(y2), np.asarray(y), atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_no_bias_matches_torch(torch, rng, kind):
    torch.manual_seed(2)
    tm, layer = _pair(torch, kind, 3, 5, use_bias=False)
    params = rnn_params_from_torch(tm.state_dict())
    assert set(params["l0"]) == {"weight_ih", "weight_hh"}
    assert jax.tree_util.tree_structure(layer.init(jax.random.key(0), (1, 2, 3))[0]) == \
        jax.tree_util.tree_structure(params)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y, _ = _jit_apply(layer)(params, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), _np(tm(torch.from_numpy(x))[0]), **TOL)


def test_params_roundtrip_through_torch_state_dict(torch, rng):
    layer = GRU(4, num_layers=2, bidirectional=True)
    params, _ = layer.init(jax.random.key(3), (2, 5, 3))
    tm = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in rnn_params_to_torch(params).items()})
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    y, _ = layer.apply(params, {}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), _np(tm(torch.from_numpy(x))[0]), **TOL)
    back = rnn_params_from_torch(tm.state_dict())
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), params, back)


def test_init_is_torch_uniform_and_batch_independent():
    H = 16
    params, state = LSTM(H, num_layers=2).init(jax.random.key(0), (1, 3, 5))
    assert state == {}
    bound = 1 / np.sqrt(H)
    leaves = np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(params)])
    assert np.all(np.abs(leaves) <= bound)
    assert np.abs(leaves).max() > 0.95 * bound and abs(leaves.mean()) < 0.02
    assert np.std(leaves) == pytest.approx(bound / np.sqrt(3), rel=0.05)   # U(-b, b) has std b/sqrt(3)
    # each leaf gets its own key
    assert not np.allclose(params["l0"]["bias_ih"], params["l0"]["bias_hh"])
    other, _ = LSTM(H, num_layers=2).init(jax.random.key(0), (64, 9, 5))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, other)
    p64, _ = GRU(3).init(jax.random.key(0), jax.ShapeDtypeStruct((1, 2, 2), jnp.bfloat16))
    assert all(v.dtype == jnp.bfloat16 for v in jax.tree_util.tree_leaves(p64))


@pytest.mark.parametrize("layer,modes", [
    (SimpleRNN(3, num_layers=2, bidirectional=True, batch_first=False), ("rev",)),
    (LSTM(3, bidirectional=True, return_state=True), ("fwd", "rev")),
    (GRU(2, num_layers=2, return_sequences=False, return_state=True), ("rev",)),
], ids=repr)
def test_gradients_match_finite_differences(x64, rng, layer, modes):
    shape = (2, 3, 2) if layer.batch_first else (3, 2, 2)
    spec = jax.ShapeDtypeStruct(shape, jnp.float64)
    params, _ = layer.init(jax.random.key(4), spec)
    assert all(v.dtype == jnp.float64 for v in jax.tree_util.tree_leaves(params))
    x = jnp.asarray(rng.standard_normal(shape))
    init = jnp.asarray(rng.standard_normal((layer.num_layers * (1 + layer.bidirectional), 2,
                                            layer.features)))
    if isinstance(layer, LSTM):
        init = (init, 0.5 * init)

    @jax.jit   # one compilation for the many finite-difference evaluations
    def f(p, x, init):
        y, _ = layer.apply(p, {}, (x, init))
        return jax.tree_util.tree_map(jnp.sin, y)
    check_grads(f, (params, x, init), order=1, modes=modes, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradients_match_torch_autograd(torch, rng, kind):
    torch.manual_seed(5)
    tm, layer = _pair(torch, kind, 3, 4, num_layers=2, bidirectional=True)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    target = rng.standard_normal((2, 5, 8)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    (tm(xt)[0] * torch.from_numpy(target)).sin().sum().backward()
    params = rnn_params_from_torch(tm.state_dict())

    def loss(p, x):
        return jnp.sum(jnp.sin(layer.apply(p, {}, x)[0] * target))
    g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(x))
    for name, t in tm.named_parameters():
        w = name[: name.index("_l")]
        sfx = name[len(w) + 1:]
        np.testing.assert_allclose(np.asarray(g[sfx][w]), t.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), atol=1e-5, rtol=1e-4)


def test_dropout_between_layers(torch, rng):
    torch.manual_seed(6)
    tm, layer = _pair(torch, "gru", 3, 4, num_layers=2, dropout=0.5)
    tm.eval()   # torch applies no dropout in eval mode; neither do we with train=False
    params = rnn_params_from_torch(tm.state_dict())
    x = jnp.asarray(rng.standard_normal((2, 6, 3)).astype(np.float32))
    y_eval, _ = _jit_apply(layer)(params, {}, x)
    np.testing.assert_allclose(np.asarray(y_eval), _np(tm(torch.tensor(np.asarray(x)))[0]), **TOL)
    assert layer.needs_key and not GRU(4, dropout=0.5).needs_key and not GRU(4, num_layers=2).needs_key

    key = jax.random.key(7)
    run = _jit_apply(layer)
    y1, _ = run(params, {}, x, key=key, train=True)
    y2, _ = layer.apply(params, {}, x, key=key, train=True)   # eager == compiled
    y3, _ = run(params, {}, x, key=jax.random.key(8), train=True)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    assert not np.allclose(y1, y3) and not np.allclose(y1, y_eval)
    # the documented construction: layer l's input is Dropout(rate) with key fold_in(key, l)
    h, _ = GRU(4).apply({"l0": params["l0"]}, {}, x)
    h, _ = Dropout(0.5).apply({}, {}, jnp.swapaxes(h, 0, 1), key=jax.random.fold_in(key, 1), train=True)
    ref, _ = GRU(4).apply({"l0": params["l1"]}, {}, jnp.swapaxes(h, 0, 1))
    np.testing.assert_allclose(np.asarray(y1), np.asarray(ref), **TOL)
    with pytest.raises(ValueError, match=r"GRU: train=True with dropout=0.5 needs a random key, got "
                                         r"key=None\nHint: pass key=jax.random.key"):
        layer.apply(params, {}, x, train=True)


def test_jit_output_spec_and_sequential():
    model = Sequential([LSTM(8, return_sequences=False), Dense(2)])
    params, state = model.init(jax.random.key(0), (4, 7, 3))
    assert params["0_lstm"]["l0"]["weight_ih"].shape == (32, 3)
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((5, 7, 3)))
    assert y.shape == (5, 2)
    spec = output_spec(GRU(6, bidirectional=True, batch_first=False, return_state=True), (9, 2, 3))
    assert spec[0].shape == (9, 2, 12) and spec[1].shape == (2, 2, 6)
    # init accepts an (x, initial_state) spec
    p, _ = LSTM(2).init(jax.random.key(0), ((1, 4, 3), ((1, 1, 2), (1, 1, 2))))
    assert p["l0"]["weight_ih"].shape == (8, 3)
    assert repr(SimpleRNN(4, activation="relu", num_layers=2)) == \
        "SimpleRNN(features=4, num_layers=2, activation='relu')"
    assert SimpleRNN(4) == SimpleRNN(4) and hash(GRU(3)) == hash(GRU(3))


def test_shape_errors():
    model = Sequential([LSTM(4)])
    params, state = model.init(jax.random.key(0), (2, 5, 3))
    with pytest.raises(ShapeError, match=r"LSTM '0_lstm': input features 6 != weight_ih_l0 in-features 3 "
                                         r"\(input \(2, 5, 6\), weight_ih \(16, 3\)\)"):
        model.apply(params, state, jnp.ones((2, 5, 6)))
    with pytest.raises(ShapeError, match=r"LSTM '0_lstm': input rank expected 3 \(batch, time, features\), "
                                         r"got 2 \(input \(5, 3\)\)\nHint: add a batch axis"):
        model.apply(params, state, jnp.ones((5, 3)))
    with pytest.raises(ShapeError, match=r"GRU: input rank expected 3 \(time, batch, features\), got 4"):
        GRU(2, batch_first=False).init(jax.random.key(0), (1, 2, 3, 4))
    lstm = LSTM(4, num_layers=2)
    p, _ = lstm.init(jax.random.key(0), (2, 5, 3))
    with pytest.raises(ShapeError, match=r"LSTM: initial_state expected a pair \(h_0, c_0\), got ArrayImpl"):
        lstm.apply(p, {}, (jnp.ones((2, 5, 3)), jnp.zeros((2, 2, 4))))
    with pytest.raises(ShapeError, match=r"LSTM: initial c_0 shape expected \(2, 2, 4\) "
                                         r"\(num_layers\*num_directions, batch, features\), got \(1, 2, 4\)"):
        lstm.apply(p, {}, (jnp.ones((2, 5, 3)), (jnp.zeros((2, 2, 4)), jnp.zeros((1, 2, 4)))))
    gru = GRU(4, bidirectional=True)
    pg, _ = gru.init(jax.random.key(0), (2, 5, 3))
    with pytest.raises(ShapeError, match=r"GRU: initial h_0 shape expected \(2, 2, 4\) .*got \(1, 2, 4\)"):
        gru.apply(pg, {}, (jnp.ones((2, 5, 3)), jnp.zeros((1, 2, 4))))
    with pytest.raises(ShapeError, match=r"GRU: input expected an array or a pair \(x, initial_state\), "
                                         r"got a sequence of length 3"):
        gru.apply(pg, {}, (jnp.ones((2, 5, 3)),) * 3)
    with pytest.raises(ShapeError, match=r"SimpleRNN: input time axis is empty \(input \(2, 0, 3\)\); "
                                         r"return_sequences=False needs at least one step"):
        rnn = SimpleRNN(2, return_sequences=False)
        rnn.apply(rnn.init(jax.random.key(0), (2, 1, 3))[0], {}, jnp.ones((2, 0, 3)))


def test_config_errors():
    with pytest.raises(ConfigError, match=r"LSTM: features expected a positive int, got 0"):
        LSTM(0)
    with pytest.raises(ConfigError, match=r"GRU: num_layers expected a positive int, got 1.5"):
        GRU(3, num_layers=1.5)
    with pytest.raises(ConfigError, match=r"SimpleRNN: dropout expected in \[0, 1\), got 1.0"):
        SimpleRNN(3, dropout=1.0)
    with pytest.raises(ConfigError, match=r"activation: unknown value 'tanhh'; expected one of"):
        SimpleRNN(3, activation="tanhh")
    with pytest.raises(TypeError, match=r"takes 2 positional arguments"):
        SimpleRNN(3, "relu")
    with pytest.raises(ConfigError, match=r"rnn_params_from_torch: unexpected entry 'weight_hr_l0'; expected "
                                          r"names like 'weight_ih_l0'"):
        rnn_params_from_torch({"weight_hr_l0": np.zeros((2, 2))})
