"""Embedding: parity with torch.nn.Embedding (forward and scatter-add gradient), init, errors."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from functorch_lite.core.combinators import Sequential
from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.core.module import output_spec
from functorch_lite.layers import Embedding, Flatten


@pytest.mark.parametrize("ids_shape", [(7,), (3, 5), (2, 3, 4)])
def test_forward_and_grad_match_torch(torch, rng, ids_shape):
    emb = torch.nn.Embedding(11, 6)
    ids = rng.integers(0, 11, ids_shape)
    ids[..., 0] = 3  # repeated ids: the gradient must accumulate
    layer = Embedding(11, 6)
    params = {"embedding": jnp.asarray(emb.weight.detach().numpy())}
    y, state = layer.apply(params, {}, jnp.asarray(ids, dtype=jnp.int32))
    yt = emb(torch.from_numpy(ids))
    assert y.shape == ids_shape + (6,) and state == {}
    np.testing.assert_allclose(np.asarray(y), yt.detach().numpy(), atol=1e-6, rtol=1e-6)

    w = rng.standard_normal(ids_shape + (6,)).astype(np.float32)
    (yt * torch.from_numpy(w)).sum().backward()
    g = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, {}, jnp.asarray(ids))[0] * w)))(params)
    np.testing.assert_allclose(np.asarray(g["embedding"]), emb.weight.grad.numpy(), atol=1e-5, rtol=1e-5)


def test_gradient_matches_finite_differences(x64, rng):
    ids = jnp.asarray([[1, 4, 1], [0, 2, 4]])
    table = jnp.asarray(rng.standard_normal((5, 3)))
    layer = Embedding(5, 3)
    check_grads(lambda p: jnp.sin(layer.apply(p, {}, ids)[0]), ({"embedding": table},), order=2,
                modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_init_is_standard_normal_and_spec_independent():
    layer = Embedding(1000, 64)
    p1, s = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 7), jnp.int32))
    p2, _ = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((64, 3), jnp.int32))
    table = np.asarray(p1["embedding"])
    assert table.shape == (1000, 64) and table.dtype == np.float32 and s == {}
    np.testing.assert_array_equal(table, p2["embedding"])
    # 64k N(0, 1) draws: mean within 0.02 (5 sigma), std within 2%
    assert abs(table.mean()) < 0.02 and abs(table.std() - 1) < 0.02
    assert output_spec(Sequential([layer, Flatten()]),
                       jax.ShapeDtypeStruct((4, 5), jnp.int32)) == jax.ShapeDtypeStruct((4, 320), jnp.float32)


def test_float_ids_are_rejected_with_path():
    model = Sequential([Embedding(10, 4)])
    params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 3), jnp.int32))
    with pytest.raises(ShapeError, match=r"Embedding '0_embedding': input dtype expected an integer type "
                                         r"\(token ids\), got float32 \(input \(2, 3\)\)\n"
                                         r"Hint: cast ids with x.astype\('int32'\)"):
        model.apply(params, state, jnp.ones((2, 3)))


@pytest.mark.parametrize("kw,name", [(dict(num_embeddings=0, features=4), "num_embeddings"),
                                     (dict(num_embeddings=10, features=-2), "features"),
                                     (dict(num_embeddings=10.0, features=4), "num_embeddings")], ids=str)
def test_bad_sizes(kw, name):
    with pytest.raises(ConfigError, match=rf"Embedding: {name} expected a positive int, got"):
        Embedding(**kw)
