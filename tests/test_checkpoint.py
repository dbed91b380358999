"""checkpoint.save/load: bit-exact round trips, the on-disk layout, atomicity, mismatches."""
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functorch_lite import checkpoint as ck
from functorch_lite.core.errors import CheckpointError, TreeMismatchError


def params():
    k1, k2 = jax.random.split(jax.random.key(0))
    return {"params": {"0_dense": {"kernel": jax.random.normal(k1, (3, 4)),
                                   "bias": jnp.zeros(4)},
                       "1_dense": {"kernel": jax.random.normal(k2, (4, 2), jnp.bfloat16)}}}


def bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind in "fV" else a


def assert_bit_equal(x, y):
    jax.tree.map(lambda a, b: (np.testing.assert_array_equal(bits(a), bits(b)),
                               (np.asarray(a).dtype == np.asarray(b).dtype) or
                               pytest.fail(f"{np.asarray(a).dtype} != {np.asarray(b).dtype}")),
                 x, y)


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# ---------------------------------------------------------------- round trips
def test_round_trip_is_bit_exact(tmp_path):
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], np.float32)
    special.view(np.uint32)[0] = 0x7FC00123  # a NaN with a payload
    tree = {"f32": special, "i32": np.array([-2**31, 7, 2**31 - 1], np.int32),
            "bf16": jnp.array([1.5, -0.0, 3e38, 1e-30], jnp.bfloat16),
            "u8": np.arange(4, dtype=np.uint8).reshape(2, 2), "b": np.array([True, False]),
            "nested": {"list": [jnp.ones(2), (jnp.int32(3), 2.5)], "empty": {}}}
    ck.save(tmp_path / "ck.npz", tree)
    out = ck.load(tmp_path / "ck.npz", tree)
    assert jax.tree.structure(out) == jax.tree.structure(tree)
    assert_bit_equal(out, tree)
    assert isinstance(out["f32"], np.ndarray)          # numpy target leaf -> numpy
    assert isinstance(out["bf16"], jax.Array)          # jax target leaf -> jax
    assert type(out["nested"]["list"][1][1]) is float  # Python scalar -> Python scalar


def test_optax_adam_state_round_trip(tmp_path):
    p = params()
    opt = optax.adam(1e-3)
    state = opt.init(p)
    grads = jax.tree.map(lambda x: jnp.ones_like(x) * 0.3, p)
    _, state = opt.update(grads, state, p)  # non-trivial mu, nu and count
    tree = {"params": p, "opt_state": state, "step": jnp.int32(1)}
    ck.save(str(tmp_path / "ck"), tree)
    out = ck.load(str(tmp_path / "ck"), tree)
    assert type(out["opt_state"][0]) is type(state[0])  # the NamedTuple comes back
    assert int(out["opt_state"][0].count) == 1
    assert_bit_equal(out, tree)


def test_load_into_shape_dtype_structs(tmp_path):
    p = params()
    ck.save(tmp_path / "p", p)
    out = ck.load(tmp_path / "p", jax.eval_shape(lambda: p))
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(out))
    assert_bit_equal(out, p)


def test_file_layout_no_pickle(tmp_path):
    """Read the file with plain numpy: one entry per key path, bf16 as uint16, JSON metadata."""
    p = params()
    ck.save(tmp_path / "p.npz", {"params": p["params"], "opt": optax.adam(1e-3).init(p)})
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:
        files = set(z.files)
        meta = json.loads(str(z["__meta__"]))
        stored = z["params/1_dense/kernel"]
    assert {"params/0_dense/kernel", "params/0_dense/bias", "params/1_dense/kernel",
            "opt/0/count", "opt/0/mu/params/0_dense/kernel", "opt/0/nu/params/1_dense/kernel",
            "__meta__"} <= files
    assert len(files) == 3 * 3 + 1 + 1
    assert meta["version"] == ck.FORMAT_VERSION
    assert meta["dtypes"] == {k: "bfloat16" for k in ["params/1_dense/kernel",
                                                       "opt/0/mu/params/1_dense/kernel",
                                                       "opt/0/nu/params/1_dense/kernel"]}
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, bits(p["params"]["1_dense"]["kernel"]))


def test_load_without_target_gives_nested_dicts(tmp_path):
    p = params()
    ck.save(tmp_path / "p", {"p": p, "opt": optax.adam(1e-3).init(p), "seq": [np.int32(4)]})
    out = ck.load(tmp_path / "p")
    assert set(out) == {"p", "opt", "seq"}
    assert out["seq"] == {"0": 4}  # sequence indices become string keys
    assert set(out["opt"]["0"]) == {"count", "mu", "nu"}
    np.testing.assert_array_equal(bits(out["p"]["params"]["1_dense"]["kernel"]),
                                  bits(p["params"]["1_dense"]["kernel"]))
    assert out["p"]["params"]["1_dense"]["kernel"].dtype == jnp.bfloat16


def test_single_leaf_tree(tmp_path):
    ck.save(tmp_path / "x", np.arange(3.0))
    np.testing.assert_array_equal(ck.load(tmp_path / "x"), np.arange(3.0))
    np.testing.assert_array_equal(ck.load(tmp_path / "x", np.zeros(3)), np.arange(3.0))


def test_path_kept_exactly(tmp_path):
    assert ck.save(tmp_path / "weights", {"a": np.ones(1)}) == tmp_path / "weights"
    assert listing(tmp_path) == ["weights"]
    ck.save(str(tmp_path / "weights"), {"a": np.zeros(1)})  # overwrite via str path
    assert ck.load(tmp_path / "weights")["a"].tolist() == [0.0]
    assert listing(tmp_path) == ["weights"]


# ---------------------------------------------------------------- mismatches
def test_mismatch_lists_exactly_the_differing_paths(tmp_path):
    saved = {"a": np.zeros((3, 4), np.float32), "b": np.zeros(2, np.float32),
             "c": {"d": np.zeros(5, np.int32), "e": np.ones(1, np.float32)}}
    ck.save(tmp_path / "ck", saved)
    target = {"a": np.zeros((4, 3), np.float32), "x": np.zeros(2, np.float32),
              "c": {"d": np.zeros(5, np.float32), "e": np.ones(1, np.float32),
                    "f": np.ones(1)}}
    with pytest.raises(ck.CheckpointMismatchError) as info:
        ck.load(tmp_path / "ck", target)
    msg = str(info.value)
    assert re.fullmatch(
        r"load '.*ck': checkpoint does not match the target tree:\n"
        r"  missing: c/f, x\n"
        r"  extra: b\n"
        r"  shape: a \(saved \(3, 4\) vs expected \(4, 3\)\)\n"
        r"  dtype: c/d \(saved int32 vs expected float32\)\n"
        r"Hint: build the target from the same model.*", msg, re.S), msg
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, TreeMismatchError)


def test_mismatch_python_scalar_kind(tmp_path):
    ck.save(tmp_path / "ck", {"lr": 0.5})
    with pytest.raises(TreeMismatchError, match=r"dtype: lr \(saved float64\[\] vs expected a "
                                                 r"Python int scalar\)"):
        ck.load(tmp_path / "ck", {"lr": 1})


def test_mismatch_dtype_bf16_vs_f32(tmp_path):
    ck.save(tmp_path / "ck", {"w": jnp.ones(2, jnp.bfloat16)})
    with pytest.raises(CheckpointError, match=r"dtype: w \(saved bfloat16 vs expected float32\)"):
        ck.load(tmp_path / "ck", {"w": jax.ShapeDtypeStruct((2,), jnp.float32)})


# ---------------------------------------------------------------- atomicity
class Exploding:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("leaf conversion failed")


def test_failed_conversion_keeps_previous_file(tmp_path):
    ck.save(tmp_path / "ck", {"w": np.arange(3.0)})
    before = (tmp_path / "ck").read_bytes()
    with pytest.raises(RuntimeError, match="leaf conversion failed"):
        ck.save(tmp_path / "ck", {"a": np.ones(2), "b": Exploding(), "c": np.ones(2)})
    assert (tmp_path / "ck").read_bytes() == before
    assert listing(tmp_path) == ["ck"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    ck.save(tmp_path / "ck", {"w": np.arange(3.0)})
    before = (tmp_path / "ck").read_bytes()

    def half_then_fail(f, arrays):
        f.write(b"PK\x03\x04 partial zip")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "_write_npz", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ck.save(tmp_path / "ck", {"w": np.arange(4.0)})
    assert (tmp_path / "ck").read_bytes() == before
    assert listing(tmp_path) == ["ck"]
    monkeypatch.undo()
    np.testing.assert_array_equal(ck.load(tmp_path / "ck")["w"], np.arange(3.0))


# ---------------------------------------------------------------- bad files and trees
def test_truncated_file(tmp_path):
    ck.save(tmp_path / "ck", {"w": np.arange(1000.0)})
    data = (tmp_path / "ck").read_bytes()
    (tmp_path / "ck").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"load '.*ck': not a readable .npz archive "
                                              r"\(truncated or corrupt.*\nHint: pass a file"):
        ck.load(tmp_path / "ck")


def test_not_an_npz(tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"load '.*t\.txt': not a readable .npz archive"):
        ck.load(tmp_path / "t.txt")
    np.save(tmp_path / "a.npy", np.ones(2))
    with pytest.raises(CheckpointError, match=r"load '.*a\.npy': not an .npz archive "
                                              r"\(a single .npy array\?\)"):
        ck.load(tmp_path / "a.npy")


def test_npz_without_meta(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(CheckpointError, match=r"'.*plain\.npz': an .npz without the '__meta__' "
                                              r"entry; it was not written by"):
        ck.load(tmp_path / "plain.npz")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"load '.*nope': no such file\nHint: check the "
                                              r"path; save\(\) writes exactly"):
        ck.load(tmp_path / "nope")


def edit_meta(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta.update(changes)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_future_version_and_inconsistent_meta(tmp_path):
    path = tmp_path / "ck.npz"
    ck.save(path, {"w": np.ones(2)})
    edit_meta(path, version=99)
    with pytest.raises(CheckpointError, match=r"format 'functorch_lite.checkpoint' version 99; "
                                              r"this functorch_lite reads .* up to version 1"):
        ck.load(path)
    edit_meta(path, version=1, keys=["w", "v"])
    with pytest.raises(CheckpointError, match=r"entries \['v'\] disagree with the metadata"):
        ck.load(path)
    edit_meta(path, keys=["w"], dtypes={"w": "no_such_dtype"})
    with pytest.raises(CheckpointError, match=r"leaf 'w' has unknown dtype 'no_such_dtype'"):
        ck.load(path)


def test_save_refuses_unstorable_trees(tmp_path):
    with pytest.raises(CheckpointError, match=r"save: leaf 'meta/name' has dtype <U3, which "
                                              r"cannot be stored without pickle"):
        ck.save(tmp_path / "ck", {"meta": {"name": "abc"}})
    with pytest.raises(CheckpointError, match=r"save: two leaves \(or a leaf and the metadata\) "
                                              r"share the key path 'a/b'"):
        ck.save(tmp_path / "ck", {"a/b": np.ones(1), "a": {"b": np.ones(1)}})
    assert listing(tmp_path) == []
