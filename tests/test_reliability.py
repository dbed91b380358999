"""Issue #6, reliability: a table of bad inputs across the core, both adapters and nets/ (each
gives our error type with a message naming what was expected and what came), and the faults:
a failing writer, Ctrl-C (a KeyboardInterrupt from a callback, a real SIGINT in this process and
one sent to a child process), half-applied loads, and seeds.

Every case uses a tiny model on tiny data; the file runs in well under a minute.
"""
import gzip
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functorch_lite as fl
import functorch_lite.keras as keras
import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
from functorch_lite import checkpoint as ck
from functorch_lite.core.errors import (CheckpointError, ConfigError, DataError, ShapeError,
                                        TreeMismatchError)
from functorch_lite.datasets import read_idx, write_idx
from functorch_lite.torch.utils.data import DataLoader, TensorDataset

OURS = (ShapeError, ConfigError, DataError, CheckpointError, TreeMismatchError)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _xy(n=16, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (np.arange(n) % classes).astype(np.int32)


def _mlp():
    return fl.Sequential([fl.Dense(8), fl.relu, fl.Dense(3)])


def _fit(x=None, y=None, loss="cross_entropy", optimizer="adam", **kw):
    x0, y0 = _xy()
    return fl.fit(_mlp(), loss, optimizer, (x0 if x is None else x, y0 if y is None else y),
                  verbose=0, **kw)


def _core_apply(model, spec, x):
    params, state = model.init(jax.random.key(0), spec)
    return jax.jit(lambda p, s, x: model.apply(p, s, x)[0])(params, state, x)


def _nets_cnn_on_unbatched_channels():
    from nets.cnn import cnn
    return _core_apply(cnn(), (1, 28, 28, 1), jnp.ones((2, 28, 28)))


def _nets_mlp_on_wrong_size():
    from nets.mlp import mlp
    return _core_apply(mlp(), (1, 28, 28, 1), jnp.ones((2, 14, 14, 1)))


# ------------------------------------------------------------------ Keras helpers
def _k_model(opt="adam", loss="sparse_categorical_crossentropy"):
    m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3)])
    m.compile(optimizer=opt, loss=loss)
    return m


def _k_fit(x=None, y=None, loss="sparse_categorical_crossentropy", **kw):
    x0, y0 = _xy()
    return _k_model(loss=loss).fit(x0 if x is None else x, y0 if y is None else y, verbose=0,
                                   **kw)


def _k_cnn_predict(x):
    m = keras.Sequential([keras.Input(shape=(8, 8, 1)), keras.layers.Conv2D(2, 3),
                          keras.layers.Flatten(), keras.layers.Dense(3)])
    return m.predict(x, verbose=0)


def _k_nested_deferred():
    inner = keras.Sequential([keras.layers.Conv2D(2, 3)], name="inner")
    return keras.Sequential([keras.layers.Dense(4), inner], name="outer")(np.ones((2, 4), "f4"))


# ------------------------------------------------------------------ torch helpers
def _t_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _t_loader_loss(labels):
    x = torch.randn(len(labels), 16)
    loader = DataLoader(TensorDataset(x, torch.tensor(np.asarray(labels))), batch_size=4)
    xb, yb = next(iter(loader))
    return F.cross_entropy(_t_mlp()(xb), yb)


# ------------------------------------------------------------------ file helpers
def _idx_truncated(tmp):
    path = tmp / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((4, 3, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    return read_idx(path)


def _gzip_corrupt(tmp):
    path = tmp / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.arange(50, dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF   # the gzip CRC no longer matches
    path.write_bytes(bytes(data))
    return read_idx(path)


def _mnist_checksum(tmp):
    src = os.path.join(ROOT, "functorch_lite", "datasets", "data", "mnist")
    for name in os.listdir(src):
        data = open(os.path.join(src, name), "rb").read()
        if name.startswith("t10k-labels"):
            raw = bytearray(gzip.decompress(data))
            raw[100] = (raw[100] + 1) % 10   # a valid IDX file, with one label changed
            data = gzip.compress(bytes(raw))
        (tmp / name).write_bytes(data)
    return fl.datasets.load_mnist(str(tmp))


def _ckpt_truncated(tmp):
    ck.save(tmp / "w.npz", {"w": np.arange(100.0)})
    data = (tmp / "w.npz").read_bytes()
    (tmp / "w.npz").write_bytes(data[: len(data) // 2])
    return ck.load(tmp / "w.npz")


def _ckpt_other_format(tmp):
    np.save(tmp / "w.npy", np.arange(3.0))
    return ck.load(tmp / "w.npy")


def _ckpt_tree(tmp):
    ck.save(tmp / "w.npz", {"a": np.zeros((2, 3)), "b": np.zeros(2), "c": np.zeros(1)})
    return ck.load(tmp / "w.npz", {"a": np.zeros((3, 2)), "b": np.zeros(2), "d": np.zeros(1)})


def _k_load_other_model(tmp):
    _k_model().save_weights(tmp / "w.npz")
    other = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(9),
                              keras.layers.Dense(3)])
    return other.load_weights(tmp / "w.npz")


def _t_load_truncated(tmp):
    torch.save(_t_mlp().state_dict(), str(tmp / "m.pt"))
    data = (tmp / "m.pt").read_bytes()
    (tmp / "m.pt").write_bytes(data[:100])
    return torch.load(str(tmp / "m.pt"))


def _t_load_reshaped(tmp):
    torch.save(_t_mlp().state_dict(), str(tmp / "m.pt"))
    other = nn.Sequential(nn.Flatten(), nn.Linear(16, 9), nn.ReLU(), nn.Linear(9, 3))
    return other.load_state_dict(torch.load(str(tmp / "m.pt")))


_FIX = r"delete the file .*\$FUNCTORCH_LITE_DATA"

#: (case, callable taking tmp_path, error type, regex the message must match)
CASES = [
    # ---- shapes: the layer's path and both shapes, at trace time (no XLA trace)
    ("core: Dense feature size under jit", lambda t: _core_apply(_mlp(), (1, 4), jnp.ones((2, 5))),
     ShapeError, r"Dense '0_dense': input last axis 5 != kernel in-features 4 \(input \(2, 5\), "
                 r"kernel \(4, 8\)\)"),
    ("core: nested path", lambda t: _core_apply(
        fl.Sequential([fl.Dense(4), fl.Sequential([fl.relu, fl.Conv(2, (3, 3))])]), (1, 5),
        jnp.ones((2, 5))),
     ShapeError, r"Conv '1_sequential/1_conv': input rank expected 4 .*got 2 \(input \(\d, 4\)\)"),
    ("core: Conv channels", lambda t: _core_apply(fl.Conv(2, (3, 3)), (1, 8, 8, 1),
                                                  jnp.ones((2, 8, 8, 3))),
     ShapeError, r"input channels 3 != kernel in-channels 1 x groups 1 \(input \(2, 8, 8, 3\), "
                 r"kernel \(3, 3, 1, 2\)\)"),
    ("core: fit on the wrong feature size", lambda t: _fit(
        train_state=fl.TrainState.create(_mlp(), fl.optim.get("adam"), jax.random.key(0), (1, 3))),
     ShapeError, r"Dense '0_dense': input last axis 4 != kernel in-features 3 \(input \(16, 4\), "
                 r"kernel \(3, 8\)\)"),
    ("nets: cnn without the channel axis", lambda t: _nets_cnn_on_unbatched_channels(),
     ShapeError, r"Conv '0_conv': input rank expected 4 .*got 3 \(input \(2, 28, 28\)\)\n"
                 r"Hint: add a channel axis"),
    ("nets: mlp on 14x14 images", lambda t: _nets_mlp_on_wrong_size(),
     ShapeError, r"Dense '1_dense': input last axis 196 != kernel in-features 784"),
    ("keras: Sequential predict, feature size", lambda t: _k_model().predict(
        np.ones((2, 5), np.float32), verbose=0),
     ShapeError, r"predict: input of Sequential '.*' \(its first layer 'dense.*' \(Dense\)\) "
                 r"expected shape \(None, 4\), got \(2, 5\)"),
    ("keras: fit, rank", lambda t: _k_fit(x=np.ones((16, 4, 1), np.float32)),
     ShapeError, r"fit: input of Sequential .* expected shape \(None, 4\), got \(16, 4, 1\)\n"
                 r"Hint: flatten"),
    ("keras: Conv2D without the channel axis", lambda t: _k_cnn_predict(np.ones((2, 8, 8))),
     ShapeError, r"expected shape \(None, 8, 8, 1\), got \(2, 8, 8\)\nHint: add the channel axis"),
    ("keras: a layer deep in a nested model", lambda t: _k_nested_deferred(),
     ShapeError, r"Conv 'outer/1_sequential/0_conv': input rank expected 4 .*got 2 "
                 r"\(input \(2, 4\)\)"),
    ("torch: nn.Sequential Linear", lambda t: _t_mlp()(torch.randn(2, 5, 4)),
     nn.ModuleShapeError, r"Linear '1': mat1 and mat2 shapes cannot be multiplied: input of shape "
                          r"\(2, 20\) has last dim 20, expected in_features=16 \(weight of shape "
                          r"\(8, 16\)\)"),
    ("torch: Conv2d channels", lambda t: nn.Sequential(nn.Conv2d(1, 4, 3))(torch.randn(2, 3, 8, 8)),
     nn.ModuleShapeError, r"Conv2d '0': Given groups=1, weight of size \[4, 1, 3, 3\], expected "
                          r"input\[2, 3, 8, 8\] to have 1 channels, but got 3 channels instead"),
    # ---- dtypes and labels: checked on the host once per fit
    ("core: integer images", lambda t: _fit(x=(np.abs(_xy()[0]) * 50).astype(np.uint8)),
     ShapeError, r"fit: inputs expected a floating dtype, got uint8 \(shape \(16, 4\)\)\n"
                 r"Hint: scale integer images"),
    ("core: float labels", lambda t: _fit(y=_xy()[1] + 0.5),
     ShapeError, r"expected integer class indices, got non-integer value 0.5 at index \(0,\)"),
    ("core: labels out of range", lambda t: _fit(y=_xy()[1] + 1),
     DataError, r"labels: expected class indices in \[0, 3\), got 3 at index \(2,\)"),
    ("core: one-hot labels for a sparse loss", lambda t: _fit(
        y=np.eye(3, dtype=np.float32)[_xy()[1]], loss="sparse_categorical_crossentropy"),
     ShapeError, r"expects class indices of shape \(N,\), got one-hot-shaped labels \(16, 3\)"),
    ("core: indices for a one-hot loss", lambda t: _fit(loss="categorical_crossentropy"),
     ShapeError, r"expects one-hot labels of shape \(N, 3\), got class indices of shape \(16,\)"),
    ("keras: float labels", lambda t: _k_fit(y=_xy()[1] + 0.5),
     ShapeError, r"loss 'sparse_categorical_crossentropy': y expected integer class indices, got "
                 r"0.5 at index \(0,\)"),
    ("keras: labels out of range", lambda t: _k_fit(y=_xy()[1] - 1),
     DataError, r"y expected class indices in \[0, 3\) \(the model outputs 3 classes\), got -1 "
                r"at index \(0,\)"),
    ("keras: one-hot labels for a sparse loss", lambda t: _k_fit(y=np.eye(3)[_xy()[1]]),
     ShapeError, r"got shape \(16, 3\), which looks one-hot .*\nHint: use "
                 r"loss='categorical_crossentropy'"),
    ("keras: indices for a one-hot loss", lambda t: _k_fit(loss="categorical_crossentropy"),
     ShapeError, r"expected one-hot targets of shape \(N, 3\), got shape \(16,\), which looks "
                 r"like integer class indices"),
    ("torch: float targets", lambda t: F.cross_entropy(torch.randn(2, 3), torch.tensor([0.5, 1.0])),
     RuntimeError, r"cross_entropy: expected target of integer dtype \(class indices, torch.long\)"),
    ("torch: a target out of range", lambda t: F.cross_entropy(torch.randn(2, 3),
                                                               torch.tensor([0, 7])),
     DataError, r"cross_entropy: Target 7 is out of bounds: expected class indices in \[0, 3\) "
                r"for input of shape \[2, 3\], got 7 at index \(1,\) of the target"),
    ("torch: a DataLoader's targets out of range", lambda t: _t_loader_loss([0, 1, 2, 1, 0, 3]),
     IndexError, r"Target 3 is out of bounds: .* got 3 at index \(5,\) of the dataset's targets"),
    # ---- configuration
    ("core: unknown optimizer", lambda t: _fit(optimizer="adamm"),
     ConfigError, r"optimizer: unknown value 'adamm'; expected one of \['adabelief', .*'sgd'"),
    ("core: unknown loss", lambda t: _fit(loss="crossentropy"),
     ConfigError, r"loss: unknown value 'crossentropy'; expected one of \[.*'cross_entropy'"),
    ("core: unknown activation", lambda t: fl.Activation("rellu"),
     ConfigError, r"activation: unknown value 'rellu'; expected one of \[.*'relu'"),
    ("core: unknown initializer", lambda t: fl.Dense(3, kernel_init="glorot"),
     ConfigError, r"Dense: kernel_init \(initializer\): unknown value 'glorot'; expected one of "
                  r"\[.*'glorot_uniform'"),
    ("core: epochs 0", lambda t: _fit(epochs=0), ConfigError,
     r"fit: epochs expected a positive int, got 0"),
    ("core: batch_size -1", lambda t: _fit(batch_size=-1), ConfigError,
     r"fit: batch_size expected a positive int, got -1"),
    ("core: learning rate -1", lambda t: fl.optim.get("sgd", learning_rate=-1.0), ConfigError,
     r"optimizer 'sgd': learning_rate expected a finite number >= 0 or a schedule .*got -1.0"),
    ("core: learning rate nan", lambda t: _fit(optimizer=fl.optim.get("adam", learning_rate=np.nan)),
     ConfigError, r"learning_rate expected a finite number >= 0 .*got nan"),
    ("keras: unknown optimizer", lambda t: _k_model(opt="adamm"),
     ConfigError, r"optimizer: unknown value 'adamm'; expected one of \['adagrad', 'adam'"),
    ("keras: unknown loss", lambda t: _k_model(loss="msee"),
     ConfigError, r"loss: unknown value 'msee'; expected one of \[.*'mse'"),
    ("keras: unknown activation", lambda t: keras.layers.Dense(3, activation="rellu"),
     ConfigError, r"activation: unknown value 'rellu'; expected one of \[.*'relu'"),
    ("keras: unknown initializer", lambda t: keras.layers.Dense(3, kernel_initializer="glorot"),
     ConfigError, r"initializer: unknown value 'glorot'; expected one of \[.*'glorot_uniform'"),
    ("keras: learning rate -1", lambda t: keras.optimizers.Adam(learning_rate=-1),
     ConfigError, r"Adam: learning_rate expected a number >= 0 or a schedule, got -1"),
    ("keras: epochs 0", lambda t: _k_fit(epochs=0), ConfigError,
     r"fit: epochs expected a positive int, got 0"),
    ("keras: batch_size -1", lambda t: _k_fit(batch_size=-1), ConfigError,
     r"fit: batch_size expected a positive int, got -1"),
    ("keras: validation_split -0.1", lambda t: _k_fit(validation_split=-0.1), ConfigError,
     r"fit: validation_split expected a number in \(0, 1\), got -0.1"),
    ("keras: validation_split 1", lambda t: _k_fit(validation_split=1.0), ConfigError,
     r"fit: validation_split expected a number in \(0, 1\), got 1.0"),
    ("keras: validation_split '0.2'", lambda t: _k_fit(validation_split="0.2"), ConfigError,
     r"fit: validation_split expected a number in \(0, 1\), got '0.2'"),
    ("torch: SGD lr -1", lambda t: torch.optim.SGD(_t_mlp().parameters(), lr=-1),
     ValueError, r"Invalid learning rate: -1"),
    ("torch: Adam lr nan", lambda t: torch.optim.Adam(_t_mlp().parameters(), lr=float("nan")),
     ValueError, r"Invalid learning rate: nan"),
    ("torch: DataLoader batch_size 0", lambda t: DataLoader(TensorDataset(torch.randn(4, 2)),
                                                            batch_size=0),
     ValueError, r"batch_size should be a positive integer value, but got batch_size=0"),
    # ---- data files: the file and the fix
    ("IDX: truncated file", _idx_truncated, DataError,
     r"IDX file '.*train-images-idx3-ubyte': truncated: .*\nHint: " + _FIX),
    ("IDX: corrupt gzip", _gzip_corrupt, DataError,
     r"'.*t10k-labels-idx1-ubyte.gz': truncated or corrupt gzip data.*\nHint: " + _FIX),
    ("MNIST: checksum mismatch", _mnist_checksum, DataError,
     r"IDX file '.*t10k-labels-idx1-ubyte.gz': SHA-256 of the decompressed data is [0-9a-f]{64}, "
     r"expected ff7bcfd4.*\nHint: .*delete it .*\$FUNCTORCH_LITE_DATA"),
    # ---- checkpoints: refused whole, with the differing paths
    ("checkpoint: truncated", _ckpt_truncated, CheckpointError,
     r"load '.*w.npz': not a readable .npz archive \(truncated or corrupt"),
    ("checkpoint: another format", _ckpt_other_format, CheckpointError,
     r"load '.*w.npy': not an .npz archive"),
    ("checkpoint: missing/extra/reshaped leaves", _ckpt_tree, TreeMismatchError,
     r"missing: d\n  extra: c\n  shape: a \(saved \(2, 3\) vs expected \(3, 2\)\)"),
    ("keras: load_weights of another model", _k_load_other_model, CheckpointError,
     r"shape: params/0_dense/kernel \(saved \(4, 8\) vs expected \(4, 9\)\)"),
    ("torch: load a truncated file", _t_load_truncated, RuntimeError,
     r"torch.load: '.*m.pt' is not a functorch_lite.torch.save file"),
    ("torch: load_state_dict reshaped", _t_load_reshaped, RuntimeError,
     r"size mismatch for 1.weight: copying a param with shape torch.Size\(\[8, 16\]\) from "
     r"checkpoint, the shape in current model is torch.Size\(\[9, 16\]\)"),
]


@pytest.mark.parametrize("case, call, exc, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(case, call, exc, match, tmp_path):
    with pytest.raises(exc, match=match) as info:
        call(tmp_path)
    # never an XLA stack trace: the error is raised from our own checks
    assert "XlaRuntimeError" not in type(info.value).__name__
    assert isinstance(info.value, OURS) or case.startswith("torch")
