"""MultiHeadAttention and scaled_dot_product_attention: parity with torch nn.MultiheadAttention and
F.scaled_dot_product_attention (weights copied), masks, fully-masked rows, dropout, finite
differences, torch autograd, errors."""
import dataclasses

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.core.module import output_spec
from functorch_lite.layers.attention import MultiHeadAttention, scaled_dot_product_attention
from functorch_lite.layers.dense import Dense

TOL = dict(atol=1e-5, rtol=1e-5)


def _params_from_torch(m):
    """nn.MultiheadAttention state_dict -> our nested params (dotted names nested, nothing else)."""
    params = {}
    for name, t in m.state_dict().items():
        arr = jnp.asarray(t.detach().numpy())
        if "." in name:
            outer, inner = name.split(".")
            params.setdefault(outer, {})[inner] = arr
        else:
            params[name] = arr
    return params


def _torch_mha(torch, E, H, *, bias=True, random_bias=True, **kw):
    m = torch.nn.MultiheadAttention(E, H, bias=bias, **kw)
    if bias and random_bias:   # torch initialises the biases to zero; make them count
        with torch.no_grad():
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m


def _some_allowed(mask_true_blocks):
    """Make sure every row of a (…, L, S) 'True = blocked' mask lets one key through."""
    m = np.array(mask_true_blocks)
    m[..., 0] = False
    return m


def _t(torch, a):
    return None if a is None else torch.tensor(np.asarray(a))


MASKS = ["none", "bool_2d", "float_3d", "kpm_bool", "kpm_float", "both", "causal", "causal_kpm"]


# (kdim/vdim, batch_first, masks, need_weights, average_attn_weights): every mask kind meets both
# weight outputs, both layouts and the separate q/k/v projections at least once.
MHA = [
    (None, True, "none", False, True), (None, False, "none", True, False),
    ((5, 3), True, "none", True, True),
    (None, True, "bool_2d", True, True), ((5, 3), False, "bool_2d", False, True),
    (None, False, "float_3d", True, False), ((5, 3), True, "float_3d", False, True),
    (None, True, "kpm_bool", False, True), ((5, 3), False, "kpm_bool", True, False),
    (None, False, "kpm_float", True, True), ((5, 3), True, "kpm_float", True, False),
    (None, False, "both", False, True), ((5, 3), True, "both", True, True),
    (None, True, "causal", True, False), ((5, 3), False, "causal", False, True),
    (None, True, "causal_kpm", True, True), (None, False, "causal_kpm", False, True),
]
assert {m for *_, m, _, _ in MHA} == set(MASKS)


@pytest.mark.parametrize("kdim,batch_first,masks,need_weights,average", MHA, ids=str)
def test_mha_matches_torch(torch, rng, kdim, batch_first, masks, need_weights, average):
    torch.manual_seed(0)
    E, H, N, L, S = 8, 2, 2, 4, 5
    kd, vd = kdim if kdim else (None, None)
    tm = _torch_mha(torch, E, H, kdim=kd, vdim=vd, batch_first=batch_first)
    layer = MultiHeadAttention(H, E, kdim=kd, vdim=vd, batch_first=batch_first,
                               need_weights=need_weights, average_attn_weights=average,
                               is_causal=masks.startswith("causal"))
    bshape = lambda T, C: (N, T, C) if batch_first else (T, N, C)
    q = rng.standard_normal(bshape(L, E)).astype(np.float32)
    k = rng.standard_normal(bshape(S, kd or E)).astype(np.float32)
    v = rng.standard_normal(bshape(S, vd or E)).astype(np.float32)
    am = kpm = None
    if masks in ("bool_2d", "both"):
        am = _some_allowed(rng.random((L, S)) < 0.4)
    if masks == "float_3d":
        am = rng.standard_normal((N * H, L, S)).astype(np.float32)
    if masks in ("kpm_bool", "both", "causal_kpm"):
        kpm = _some_allowed(rng.random((N, S)) < 0.4)
    if masks == "kpm_float":
        kpm = rng.standard_normal((N, S)).astype(np.float32)
    torch_am, causal = am, False
    if masks.startswith("causal"):   # torch needs the mask itself; is_causal is only a hint there
        torch_am, causal = ~np.tril(np.ones((L, S), bool)), True
    out_t, w_t = tm(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, torch_am),
                    key_padding_mask=_t(torch, kpm), need_weights=need_weights,
                    average_attn_weights=average, is_causal=causal)
    params = _params_from_torch(tm)
    ref, _ = jax.eval_shape(lambda key: layer.init(key, (q.shape, k.shape, v.shape)), jax.random.key(0))
    assert jax.tree_util.tree_map(jnp.shape, ref) == jax.tree_util.tree_map(jnp.shape, params)
    inputs = {"query": q, "key": k, "value": v, "attn_mask": am, "key_padding_mask": kpm}
    y, state = jax.jit(layer.apply)(params, {}, jax.tree_util.tree_map(jnp.asarray, inputs))
    assert state == {}
    if need_weights:
        y, w = y
        assert w.shape == tuple(w_t.shape) == ((N, L, S) if average else (N, H, L, S))
        np.testing.assert_allclose(np.asarray(w), w_t.detach().numpy(), **TOL)
    assert y.shape == tuple(out_t.shape) == bshape(L, E)
    np.testing.assert_allclose(np.asarray(y), out_t.detach().numpy(), **TOL)


def test_mha_input_forms_agree(rng):
    layer = MultiHeadAttention(2, 6)
    x = jnp.asarray(rng.standard_normal((3, 4, 6)).astype(np.float32))
    params, _ = layer.init(jax.random.key(1), x.shape)
    base, _ = layer.apply(params, {}, x)
    for form in [(x,), [x, x], (x, x, x), (x, None, None, None, None), {"query": x},
                 {"query": x, "key": x}, {"query": x, "value": x, "attn_mask": None}]:
        y, _ = layer.apply(params, {}, form)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(base))
    # cross-attention: value defaults to key, not to query
    kv = jnp.asarray(rng.standard_normal((3, 7, 6)).astype(np.float32))
    y1, _ = layer.apply(params, {}, (x, kv))
    y2, _ = layer.apply(params, {}, {"query": x, "key": kv, "value": kv})
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    assert not np.allclose(y1, base)
    # a tuple carries the masks positionally like the dict does
    am = jnp.asarray(_some_allowed(rng.random((4, 4)) < 0.5))
    y3, _ = layer.apply(params, {}, (x, None, None, am))
    y4, _ = layer.apply(params, {}, {"query": x, "attn_mask": am})
    np.testing.assert_array_equal(np.asarray(y3), np.asarray(y4))
    assert not np.allclose(y3, base)


def test_mha_no_bias_and_fully_masked_rows(torch, rng):
    torch.manual_seed(2)
    E, H = 6, 3
    for bias in (False, True):
        tm = _torch_mha(torch, E, H, bias=bias, batch_first=True)
        params = _params_from_torch(tm)
        layer = MultiHeadAttention(H, E, use_bias=bias, need_weights=True)
        assert jax.tree_util.tree_structure(layer.init(jax.random.key(0), (1, 2, E))[0]) == \
            jax.tree_util.tree_structure(params)
        x = rng.standard_normal((2, 3, E)).astype(np.float32)
        am = np.zeros((3, 3), bool)
        am[1] = True                                   # query 1 may attend to nothing
        kpm = np.array([[True, True, True], [False, False, True]])   # batch 0: every key padded
        # torch's need_weights=False path (scaled_dot_product_attention) gives zero attention there
        out_t, _ = tm(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(am),
                      key_padding_mask=torch.tensor(kpm), need_weights=False)
        (y, w), _ = layer.apply(params, {}, {"query": jnp.asarray(x), "attn_mask": jnp.asarray(am),
                                             "key_padding_mask": jnp.asarray(kpm)})
        np.testing.assert_allclose(np.asarray(y), out_t.detach().numpy(), **TOL)
        assert np.all(np.isfinite(np.asarray(w)))
        np.testing.assert_array_equal(np.asarray(w)[0], 0.0)
        np.testing.assert_array_equal(np.asarray(w)[1, 1], 0.0)
        np.testing.assert_allclose(np.asarray(w)[1, [0, 2]].sum(-1), 1.0, rtol=1e-6)
        expected_dead = params["out_proj"]["bias"] if bias else np.zeros(E)
        np.testing.assert_allclose(np.asarray(y)[0], np.broadcast_to(expected_dead, (3, E)), atol=1e-6)


def test_mha_init_like_torch():
    E = 16
    params, state = MultiHeadAttention(4, E).init(jax.random.key(0), (1, 3, E))
    assert state == {}
    w = np.asarray(params["in_proj_weight"])
    bound = np.sqrt(6 / (E + 3 * E))            # xavier_uniform on (3E, E)
    assert w.shape == (3 * E, E) and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    o = np.asarray(params["out_proj"]["weight"])
    assert np.abs(o).max() <= 1 / np.sqrt(E) and np.abs(o).max() > 0.9 / np.sqrt(E)
    np.testing.assert_array_equal(params["in_proj_bias"], 0.0)
    np.testing.assert_array_equal(params["out_proj"]["bias"], 0.0)
    sep, _ = MultiHeadAttention(4, E, kdim=3, vdim=5).init(jax.random.key(0), ((1, 2, E), (1, 4, 3), (1, 4, 5)))
    assert {k: v.shape for k, v in sep.items() if k != "out_proj"} == {
        "q_proj_weight": (E, E), "k_proj_weight": (E, 3), "v_proj_weight": (E, 5), "in_proj_bias": (3 * E,)}
    kb = np.sqrt(6 / (3 + E))
    assert np.abs(sep["k_proj_weight"]).max() <= kb and np.abs(sep["k_proj_weight"]).max() > 0.8 * kb
    p16, _ = MultiHeadAttention(2, 4).init(jax.random.key(0), jax.ShapeDtypeStruct((1, 2, 4), jnp.bfloat16))
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree_util.tree_leaves(p16))


def test_mha_dropout(torch, rng):
    torch.manual_seed(3)
    tm = _torch_mha(torch, 6, 2, dropout=0.4, batch_first=True).eval()
    params = _params_from_torch(tm)
    layer = MultiHeadAttention(2, 6, dropout=0.4, need_weights=True, average_attn_weights=False)
    assert layer.needs_key and not MultiHeadAttention(2, 6).needs_key
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    (y_eval, w_eval), _ = layer.apply(params, {}, jnp.asarray(x))       # train=False: no dropout
    out_t, _ = tm(*(torch.tensor(x),) * 3)
    np.testing.assert_allclose(np.asarray(y_eval), out_t.detach().numpy(), **TOL)
    run = jax.jit(layer.apply, static_argnames="train")
    (y1, w1), _ = run(params, {}, jnp.asarray(x), key=jax.random.key(0), train=True)
    (y2, w2), _ = layer.apply(params, {}, jnp.asarray(x), key=jax.random.key(0), train=True)
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), **TOL)
    w1, w_eval = np.asarray(w1), np.asarray(w_eval)
    dropped = w1 == 0
    assert 0.2 < dropped.mean() < 0.6
    np.testing.assert_allclose(w1[~dropped], w_eval[~dropped] / 0.6, rtol=1e-5)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: train=True with dropout=0.4 needs a random "
                                         r"key, got key=None\nHint: pass key="):
        layer.apply(params, {}, jnp.asarray(x), train=True)


# (q shape, k shape, v shape, mask kind, is_causal, scale, enable_gqa)
SDPA = [
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), None, False, None, False),
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), "bool", False, None, False),
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), "float", False, 0.3, False),
    ((2, 3, 6, 8), (2, 3, 4, 8), (2, 3, 4, 8), None, True, None, False),       # L > S
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, True, None, False),       # L < S
    ((5, 7, 4), (5, 9, 4), (5, 9, 3), "bool_bcast", False, None, False),       # no head axis
    ((2, 4, 5, 8), (2, 2, 7, 8), (2, 2, 7, 6), None, True, None, True),        # grouped-query
    ((2, 6, 5, 8), (2, 2, 7, 8), (2, 2, 7, 6), "float", False, None, True),
]


@pytest.mark.parametrize("cfg", SDPA, ids=str)
def test_sdpa_matches_torch(torch, rng, cfg):
    qs, ks, vs, mask, causal, scale, gqa = cfg
    F = torch.nn.functional
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in (qs, ks, vs))
    L, S = qs[-2], ks[-2]
    m = None
    if mask == "bool":   # the functional's booleans are True = allowed
        m = ~_some_allowed(rng.random(qs[:-2] + (L, S)) < 0.5)
    elif mask == "float":
        m = rng.standard_normal((L, S)).astype(np.float32)
    elif mask == "bool_bcast":
        m = ~_some_allowed(rng.random((1, L, S)) < 0.5)
    ref = F.scaled_dot_product_attention(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, m),
                                         is_causal=causal, scale=scale, enable_gqa=gqa).numpy()
    out = scaled_dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                       None if m is None else jnp.asarray(m), is_causal=causal,
                                       scale=scale, enable_gqa=gqa)
    assert out.shape == ref.shape
    np.testing.assert_allclose(np.asarray(out), ref, **TOL)


def test_sdpa_fully_masked_rows_and_dropout(torch, rng):
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 4)))
    m = rng.random((2, 3, 5)) < 0.5
    m[0, 1] = False                                                   # nothing allowed
    ref = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(m)).numpy()
    out = scaled_dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(m))
    np.testing.assert_allclose(np.asarray(out), ref, **TOL)
    np.testing.assert_array_equal(np.asarray(out)[0, 1], 0.0)
    # dropout on the weights: with v = identity the output IS the weight matrix
    S = 6
    qd = jnp.asarray(rng.standard_normal((4, 8, 3)).astype(np.float32))
    kd = jnp.asarray(rng.standard_normal((4, S, 3)).astype(np.float32))
    eye = jnp.broadcast_to(jnp.eye(S), (4, S, S))
    w = np.asarray(scaled_dot_product_attention(qd, kd, eye))
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    wd = np.asarray(scaled_dot_product_attention(qd, kd, eye, dropout_p=0.25, key=jax.random.key(0)))
    dropped = wd == 0
    assert 0.1 < dropped.mean() < 0.4
    np.testing.assert_allclose(wd[~dropped], w[~dropped] / 0.75, rtol=1e-5)
    wd2 = np.asarray(scaled_dot_product_attention(qd, kd, eye, dropout_p=0.25, key=jax.random.key(0)))
    np.testing.assert_array_equal(wd, wd2)


def test_gradients_match_finite_differences(x64, rng):
    layer = MultiHeadAttention(2, 4, kdim=3, vdim=5, is_causal=True, need_weights=True)
    shapes = ((2, 3, 4), (2, 4, 3), (2, 4, 5))
    params, _ = layer.init(jax.random.key(0), tuple(jax.ShapeDtypeStruct(s, jnp.float64) for s in shapes))
    assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(params))
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * jnp.asarray(rng.standard_normal(a.shape)), params)
    q, k, v = (jnp.asarray(rng.standard_normal(s)) for s in shapes)
    kpm = jnp.asarray([[False, False, True, False], [False, True, False, False]])

    @jax.jit
    def f(p, q, k, v):
        (y, w), _ = layer.apply(p, {}, {"query": q, "key": k, "value": v, "key_padding_mask": kpm})
        return jnp.sin(y), w
    check_grads(f, (params, q, k, v), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)

    mask = jnp.asarray(rng.standard_normal((3, 5)))
    qs, ks, vs = (jnp.asarray(rng.standard_normal(s)) for s in ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)))
    check_grads(jax.jit(lambda q, k, v, m: scaled_dot_product_attention(q, k, v, m, scale=0.7)),
                (qs, ks, vs, mask), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_fully_masked_rows_have_finite_gradients():
    q = k = v = jnp.ones((1, 2, 3))
    m = jnp.asarray([[False, False], [True, True]])
    g = jax.grad(lambda q, k, v: jnp.sum(scaled_dot_product_attention(q, k, v, m) ** 2),
                 argnums=(0, 1, 2))(q, k, v)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in g)


def test_gradients_match_torch_autograd(torch, rng):
    torch.manual_seed(4)
    tm = _torch_mha(torch, 6, 3, batch_first=True)
    params = _params_from_torch(tm)
    layer = MultiHeadAttention(3, 6)
    q, kv = rng.standard_normal((2, 4, 6)).astype(np.float32), rng.standard_normal((2, 5, 6)).astype(np.float32)
    kpm = _some_allowed(rng.random((2, 5)) < 0.4)
    target = rng.standard_normal((2, 4, 6)).astype(np.float32)
    qt = torch.tensor(q, requires_grad=True)
    out_t, _ = tm(qt, torch.tensor(kv), torch.tensor(kv), key_padding_mask=torch.tensor(kpm))
    (out_t * torch.tensor(target)).sin().sum().backward()

    def loss(p, q):
        y, _ = layer.apply(p, {}, (q, jnp.asarray(kv), None, None, jnp.asarray(kpm)))
        return jnp.sum(jnp.sin(y * target))
    g, gq = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.asarray(q))
    for name, t in tm.named_parameters():
        ours = g["out_proj"][name.split(".")[1]] if name.startswith("out_proj") else g[name]
        np.testing.assert_allclose(np.asarray(ours), t.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gq), qt.grad.numpy(), atol=1e-5, rtol=1e-4)


def test_sequential_jit_and_output_spec():
    model = Sequential([MultiHeadAttention(2, 8), Dense(3)])
    params, state = model.init(jax.random.key(0), (1, 5, 8))
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((4, 5, 8)))
    assert y.shape == (4, 5, 3)
    spec = output_spec(MultiHeadAttention(2, 8, batch_first=False, need_weights=True,
                                          average_attn_weights=False), (7, 3, 8))
    assert spec[0].shape == (7, 3, 8) and spec[1].shape == (3, 2, 7, 7)
    assert repr(MultiHeadAttention(2, 8, kdim=4)) == "MultiHeadAttention(num_heads=2, features=8, kdim=4)"
    assert hash(MultiHeadAttention(2, 8)) == hash(MultiHeadAttention(2, 8))
    assert dataclasses.replace(MultiHeadAttention(2, 8), dropout=0.1).needs_key


def test_mha_shape_errors():
    model = Sequential([MultiHeadAttention(2, 8)])
    params, state = model.init(jax.random.key(0), (1, 5, 8))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention '0_multi_head_attention': query features 6 "
                                         r"!= features 8 \(query \(2, 5, 6\), key \(2, 5, 6\), value "
                                         r"\(2, 5, 6\)\)"):
        model.apply(params, state, jnp.ones((2, 5, 6)))
    layer = MultiHeadAttention(2, 8, kdim=3, vdim=4, batch_first=False)
    p, _ = layer.init(jax.random.key(0), ((5, 2, 8), (6, 2, 3), (6, 2, 4)))
    q, k, v = jnp.ones((5, 2, 8)), jnp.ones((6, 2, 3)), jnp.ones((6, 2, 4))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: key features 4 != kdim 3"):
        layer.apply(p, {}, (q, v, v))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: value features 3 != vdim 4"):
        layer.apply(p, {}, (q, k, k))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: query rank expected 3 \(seq, batch, "
                                         r"features\), got 2 \(query \(5, 8\)\)\nHint: add a batch axis"):
        layer.apply(p, {}, (q[:, 0], k, v))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: batch sizes differ \(query \(5, 3, 8\)"):
        layer.apply(p, {}, (jnp.ones((5, 3, 8)), k, v))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: key length 6 != value length 7"):
        layer.apply(p, {}, (q, k, jnp.ones((7, 2, 4))))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: attn_mask shape expected \(5, 6\) or "
                                         r"\(4, 5, 6\) \(L, S\) or \(N\*num_heads, L, S\), got \(6, 5\)"):
        layer.apply(p, {}, (q, k, v, jnp.zeros((6, 5), bool)))
    with pytest.raises(ShapeError, match=r"MultiHeadAttention: key_padding_mask shape expected \(2, 6\) "
                                         r"\(N, S\), got \(6, 2\)"):
        layer.apply(p, {}, {"query": q, "key": k, "value": v, "key_padding_mask": jnp.zeros((6, 2), bool)})
    with pytest.raises(TypeError, match=r"MultiHeadAttention: input dict expected keys \['query', 'key', "
                                        r"'value', 'attn_mask', 'key_padding_mask'\] \('query' required\), "
                                        r"got \['keys', 'query'\]"):
        layer.apply(p, {}, {"query": q, "keys": k})
    with pytest.raises(TypeError, match=r"MultiHeadAttention: input tuple expected 1 to 5 entries"):
        layer.apply(p, {}, (q,) * 6)


def test_mha_config_errors():
    with pytest.raises(ConfigError, match=r"MultiHeadAttention: features 10 not divisible by num_heads 3"):
        MultiHeadAttention(3, 10)
    with pytest.raises(ConfigError, match=r"MultiHeadAttention: num_heads expected a positive int, got 0"):
        MultiHeadAttention(0, 8)
    with pytest.raises(ConfigError, match=r"MultiHeadAttention: kdim expected a positive int, got -2"):
        MultiHeadAttention(2, 8, kdim=-2)
    with pytest.raises(ConfigError, match=r"MultiHeadAttention: dropout expected in \[0, 1\), got 1.5"):
        MultiHeadAttention(2, 8, dropout=1.5)


def test_sdpa_errors():
    q, k, v = jnp.ones((2, 4, 8)), jnp.ones((2, 5, 8)), jnp.ones((2, 5, 3))
    with pytest.raises(ShapeError, match=r"scaled_dot_product_attention: q features 8 != k features 7 "
                                         r"\(q \(2, 4, 8\), k \(2, 5, 7\), v \(2, 5, 3\)\)"):
        scaled_dot_product_attention(q, jnp.ones((2, 5, 7)), v)
    with pytest.raises(ShapeError, match=r"scaled_dot_product_attention: k length 5 != v length 6"):
        scaled_dot_product_attention(q, k, jnp.ones((2, 6, 3)))
    with pytest.raises(ShapeError, match=r"scaled_dot_product_attention: v rank expected >= 2 \(\.\.\., "
                                         r"seq, features\), got 1 \(v \(5,\)\)"):
        scaled_dot_product_attention(q, k, jnp.ones((5,)))
    with pytest.raises(ShapeError, match=r"scaled_dot_product_attention: attn_mask shape \(5, 4\) does not "
                                         r"broadcast to \(2, 4, 5\) \(\.\.\., L, S\)"):
        scaled_dot_product_attention(q, k, v, jnp.ones((5, 4), bool))
    with pytest.raises(ShapeError, match=r"scaled_dot_product_attention: enable_gqa: q heads 3 expected a "
                                         r"multiple of k and v heads \(2, 2\)"):
        scaled_dot_product_attention(jnp.ones((1, 3, 4, 8)), jnp.ones((1, 2, 5, 8)),
                                     jnp.ones((1, 2, 5, 3)), enable_gqa=True)
    with pytest.raises(ConfigError, match=r"scaled_dot_product_attention: give either attn_mask or "
                                          r"is_causal=True, not both"):
        scaled_dot_product_attention(q, k, v, jnp.ones((4, 5), bool), is_causal=True)
    with pytest.raises(ConfigError, match=r"scaled_dot_product_attention: dropout_p expected in \[0, 1\), "
                                          r"got 1.0"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: attention dropout 0.5 needs a "
                                         r"random key, got key=None\nHint: pass key="):
        scaled_dot_product_attention(q, k, v, dropout_p=0.5)
