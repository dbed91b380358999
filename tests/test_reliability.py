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
from hypothesis import HealthCheck, given, settings, strategies as st

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
    ("torch: indexed targets out of range", lambda t: F.cross_entropy(
        torch.randn(2, 3), torch.tensor([0, 1, 2, 5])[torch.tensor([3, 0])]),
     IndexError, r"Target 5 is out of bounds: .* got 5 at index \(3,\) of the indexed target tensor"),
    # ---- configuration
    ("core: unknown optimizer", lambda t: _fit(optimizer="adamm"),
     ConfigError, r"optimizer: unknown value 'adamm'; expected one of \['adabelief', .*'sgd'"),
    ("core: unknown loss", lambda t: _fit(loss="crossentropy"),
     ConfigError, r"loss: unknown value 'crossentropy'; expected one of \[.*'cross_entropy'"),
    ("core: unknown activation", lambda t: fl.Activation("rellu"),
     ConfigError, r"activation: unknown value 'rellu'; expected one of \[.*'relu'"),
    ("core: unknown initializer", lambda t: fl.Dense(3, kernel_init="glorot"),
     ConfigError, r"Dense: kernel_init initializer: unknown value 'glorot'; expected one of "
                  r"\[.*'glorot_uniform'"),
    ("core: epochs 0", lambda t: _fit(epochs=0), ConfigError,
     r"fit: epochs expected a positive int, got 0"),
    ("core: batch_size -1", lambda t: _fit(batch_size=-1), ConfigError,
     r"fit: batch_size expected a positive int, got -1"),
    ("core: learning rate -1", lambda t: fl.optim.get("sgd", learning_rate=-1.0), ConfigError,
     r"optimizer 'sgd': learning_rate expected a finite number > 0 or a schedule .*got -1.0"),
    ("core: learning rate 0", lambda t: fl.optim.get("adam", learning_rate=0.0), ConfigError,
     r"optimizer 'adam': learning_rate expected a finite number > 0 .*got 0.0\nHint: .*set_to_zero"),
    ("core: learning rate nan", lambda t: _fit(optimizer=fl.optim.get("adam", learning_rate=np.nan)),
     ConfigError, r"learning_rate expected a finite number > 0 .*got nan"),
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


# ================================================================== faults
# ------------------------------------------------------------------ a writer failing mid-way
def _save_checkpoint(path):
    ck.save(path, {"w": np.full(50, float(_save_checkpoint.n))})


def _save_keras(path):
    m = _k_model()
    m.set_weights([np.full_like(w, float(_save_checkpoint.n)) for w in m.get_weights()])
    m.save_weights(path)


def _save_torch(path):
    torch.save({"w": torch.full((50,), float(_save_checkpoint.n))}, str(path))


def _read_back(saver, path):
    if saver is _save_torch:
        return torch.load(str(path))["w"].numpy()
    return ck.load(path)["w" if saver is _save_checkpoint else "params"]


@pytest.mark.parametrize("saver, module", [(_save_checkpoint, ck), (_save_keras, ck),
                                           (_save_torch, "torch")],
                         ids=["checkpoint.save", "keras save_weights", "torch.save"])
@pytest.mark.parametrize("fault", [OSError("No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "Ctrl-C"])
def test_a_save_failing_mid_way_leaves_the_previous_file_intact(tmp_path, monkeypatch, saver,
                                                                module, fault):
    from functorch_lite.torch import serialization
    module = serialization if module == "torch" else module
    path = tmp_path / "w.npz"
    _save_checkpoint.n = 1
    saver(path)
    before = path.read_bytes()

    def half_then_fail(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise fault
    monkeypatch.setattr(module, "_write_npz", half_then_fail)
    _save_checkpoint.n = 2
    with pytest.raises(type(fault)):
        saver(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]   # no temporary file left behind
    monkeypatch.undo()
    leaves = jax.tree_util.tree_leaves(_read_back(saver, path))
    assert all(np.all(np.asarray(l) == 1.0) for l in leaves)


# ------------------------------------------------------------------ loads never half apply
def test_keras_load_and_set_weights_never_half_apply(tmp_path):
    m = _k_model()
    before = m.get_weights()
    other = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8),
                              keras.layers.Dense(2)])   # last layer differs only
    other.save_weights(tmp_path / "o.npz")
    with pytest.raises(CheckpointError, match=r"shape: params/1_dense/bias \(saved \(2,\) vs "
                                              r"expected \(3,\)\)"):
        m.load_weights(tmp_path / "o.npz")
    bad = [w + 1 for w in before]
    bad[-1] = np.array(["x"] * 3)        # right shape, cannot be converted: refused before writing
    with pytest.raises((TypeError, ValueError)):
        m.set_weights(bad)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_torch_load_state_dict_never_half_applies(tmp_path):
    torch.manual_seed(0)
    model = _t_mlp()
    before = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    sd = {k: v * 0 + 5 for k, v in model.state_dict().items()}
    sd["3.weight"] = torch.zeros(3, 9)   # the last entry is the wrong shape
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for 3.weight"):
            model.load_state_dict(sd, strict=strict)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), before[k])


# ------------------------------------------------------------------ Ctrl-C during fit
def _ctrl_c(how):
    if how == "signal":   # a real SIGINT, through the handler fit installs
        os.kill(os.getpid(), signal.SIGINT)
    else:
        raise KeyboardInterrupt


class _CoreAt(fl.Callback):
    def __init__(self, k, how):
        self.k, self.how = k, how

    def on_train_batch_end(self, batch, logs=None):
        if int(self.trainer.train_state.step) == self.k:
            if self.how == "stop":
                self.trainer.stop_training = True
            else:
                _ctrl_c(self.how)


@pytest.mark.parametrize("how", ["raise", "signal"])
def test_functional_fit_ctrl_c_keeps_the_weights_of_the_last_completed_step(how, capsys):
    x, y = _xy(40)
    kw = dict(epochs=5, batch_size=8, seed=3)   # 5 steps per epoch; stop at step 7 (epoch 2)
    ref = fl.fit(_mlp(), "cross_entropy", "adam", (x, y), verbose=0, callbacks=[_CoreAt(7, "stop")],
                 **kw)
    h = fl.fit(_mlp(), "cross_entropy", "adam", (x, y), verbose=2, callbacks=[_CoreAt(7, how)], **kw)
    assert h.interrupted and int(h.train_state.step) == 7
    assert h.epoch == [0] and len(h.history["loss"]) == 1          # the partial history
    for a, b in zip(jax.tree_util.tree_leaves(h.train_state.params),
                    jax.tree_util.tree_leaves(ref.train_state.params)):
        np.testing.assert_array_equal(a, b)
    assert "fit: interrupted; keeping the weights of the last completed step (7)" in \
        capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler put back


class _KerasAt(keras.callbacks.Callback):
    def __init__(self, k, how):
        self.k, self.how = k, how

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.k:
            if self.how == "stop":
                self.model.stop_training = True
            else:
                _ctrl_c(self.how)


@pytest.mark.parametrize("how", ["raise", "signal"])
def test_keras_fit_ctrl_c_returns_with_the_weights_of_the_last_completed_step(how):
    x, y = _xy(40)
    runs = {}
    for mode in ("stop", how):
        keras.utils.set_random_seed(5)
        m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(3)])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        hist = m.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[_KerasAt(7, mode)])
        runs[mode] = (m, hist)
    m, hist = runs[how]
    assert hist.interrupted and not runs["stop"][1].interrupted
    assert m.optimizer.iterations == 7
    assert hist.epoch == [0] and len(hist.history["loss"]) == 1 and m.history is hist
    for a, b in zip(m.get_weights(), runs["stop"][0].get_weights()):
        np.testing.assert_array_equal(a, b)
    # training continues from there
    assert np.isfinite(m.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0])
    assert m.optimizer.iterations == 12


def test_sigint_to_a_training_process_exits_cleanly_with_its_checkpoint(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import functorch_lite as fl

        class Ready(fl.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if int(self.trainer.train_state.step) == 3:
                    print("TRAINING", flush=True)

        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32)
        model = fl.Sequential([fl.Dense(16), fl.relu, fl.Dense(2)])
        h = fl.fit(model, "cross_entropy", "adam", (x, y), epochs=100000, batch_size=8,
                   verbose=0, callbacks=[Ready()])
        ts = h.train_state
        fl.checkpoint.save({str(tmp_path / 'ck.npz')!r}, {{"params": ts.params, "step": ts.step}})
        print("INTERRUPTED" if h.interrupted else "FINISHED", int(ts.step), flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "TRAINING"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    word, step = out.split()
    assert word == "INTERRUPTED" and int(step) >= 3
    tree = ck.load(tmp_path / "ck.npz")
    assert int(tree["step"]) == int(step)
    assert all(np.all(np.isfinite(l)) for l in jax.tree_util.tree_leaves(tree["params"]))


# ------------------------------------------------------------------ Ctrl-C in a torch loop
def _t_step(model, opt, x, y):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _t_params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def _t_pair():
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        models.append((m, torch.optim.Adam(m.parameters(), lr=0.05)))
    return models


@pytest.mark.parametrize("when", ["signal during the step", "raised before the step ran"])
def test_torch_interrupted_step_is_all_or_nothing_and_training_continues(when, monkeypatch):
    from functorch_lite.torch import graph
    x, y = torch.tensor(_xy()[0]), torch.tensor(_xy()[1].astype(np.int64))
    (a, opt_a), (b, opt_b) = _t_pair()
    start = _t_params(a)
    _t_step(b, opt_b, x, y)                       # the reference: one uninterrupted step
    compile_ = graph._compile

    def interrupted(*args):
        fn = compile_(*args)

        def run(*xs):
            if when == "raised before the step ran":
                raise KeyboardInterrupt
            out = fn(*xs)
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C while XLA runs the step
            return out
        return run
    monkeypatch.setattr(graph, "_CACHE", {})
    monkeypatch.setattr(graph, "_compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _t_step(a, opt_a, x, y)
    monkeypatch.undo()
    # every parameter holds the new values, or every one the old
    expected = _t_params(b) if when == "signal during the step" else start
    for p, e in zip(_t_params(a), expected):
        np.testing.assert_array_equal(p, e)
    if when == "raised before the step ran":
        _t_step(a, opt_a, x, y)                   # redo the lost step
    _t_step(a, opt_a, x, y)
    _t_step(b, opt_b, x, y)
    for p, q in zip(_t_params(a), _t_params(b)):
        np.testing.assert_array_equal(p, q)


# ------------------------------------------------------------------ seeds
def _run_functional(seed):
    x, y = _xy(64)
    model = fl.Sequential([fl.Dense(16), fl.relu, fl.Dropout(0.3), fl.Dense(3)])
    h = fl.fit(model, "cross_entropy", "adam", (x, y), epochs=2, batch_size=16, seed=seed,
               verbose=0)
    return [np.asarray(l) for l in jax.tree_util.tree_leaves(h.train_state.params)]


def _run_keras(seed):
    x, y = _xy(64)
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dropout(0.3), keras.layers.Dense(3)])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
    return m.get_weights()


def _run_torch(seed):
    x, y = _xy(64)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y.astype(np.int64))),
                        batch_size=16, shuffle=True)
    for _ in range(2):
        for xb, yb in loader:
            _t_step(model, opt, xb, yb)
    return _t_params(model)


@pytest.mark.parametrize("run", [_run_functional, _run_keras, _run_torch],
                         ids=["functional", "keras", "torch"])
def test_same_seed_is_bit_identical_and_different_seeds_differ(run):
    a, b, c = run(1), run(1), run(2)
    assert len(a) == len(b) == len(c) > 0
    for la, lb in zip(a, b):
        np.testing.assert_array_equal(la, lb)
    assert all(not np.array_equal(la, lc) for la, lc in zip(a, c))


# ------------------------------------------------------------------ torch.load on damaged files
def _valid_torch_file():
    import io
    buf = io.BytesIO()
    torch.manual_seed(0)
    torch.save({"model": nn.Linear(3, 2).state_dict(), "epoch": 3, "lr": 0.1}, buf)
    return buf.getvalue()


TORCH_FILE = _valid_torch_file()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, len(TORCH_FILE) - 1), mode=st.sampled_from(["cut", "flip", "random"]),
       noise=st.binary(max_size=200))
def test_torch_load_raises_only_its_runtime_error_on_damaged_files(tmp_path, at, mode, noise):
    data = {"cut": TORCH_FILE[:at],
            "flip": TORCH_FILE[:at] + bytes([TORCH_FILE[at] ^ 0xFF]) + TORCH_FILE[at + 1:],
            "random": noise}[mode]
    path = tmp_path / "bad.pt"
    path.write_bytes(data)
    try:
        torch.load(str(path))
    except RuntimeError as e:
        assert "bad.pt" in str(e)


# ------------------------------------------------------------------ the guard itself
def test_interrupt_guard_defers_the_first_ctrl_c_and_lets_the_second_through(capsys):
    from functorch_lite.core import InterruptGuard
    with pytest.raises(KeyboardInterrupt):
        with InterruptGuard("stopping soon") as guard:
            os.kill(os.getpid(), signal.SIGINT)
            assert guard.pending                      # deferred, this line still runs
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)   # the second one: at once
            guard.pending = True
    assert "stopping soon (press Ctrl-C again to abort at once)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # a handler the user installed stays in charge
    seen = []
    old = signal.signal(signal.SIGINT, lambda *a: seen.append(1))
    try:
        with InterruptGuard() as guard:
            os.kill(os.getpid(), signal.SIGINT)
        assert seen == [1] and not guard.pending
    finally:
        signal.signal(signal.SIGINT, old)


def test_nets_run_epochs_stops_cleanly_on_ctrl_c(capsys):
    from nets._common import run_epochs

    def step(carry, batch):
        (x,) = batch
        w, n = carry
        jax.lax.cond(n == 3, lambda: jax.debug.callback(lambda: os.kill(os.getpid(), signal.SIGINT)),
                     lambda: None)
        return (w - 0.1 * x.mean(0), n + 1), {"loss": jnp.sum(w ** 2)}
    x = np.ones((64, 2), np.float32)
    (w, n), history = run_epochs(step, (jnp.zeros(2), jnp.int32(0)), (x,), epochs=50, batch_size=8,
                                 seed=0, verbose=0)
    assert 4 <= int(n) < 50 * 8                  # stopped soon after the Ctrl-C, not at the end
    np.testing.assert_allclose(np.asarray(w), -0.1 * int(n) * np.ones(2), rtol=1e-5)   # alive
    assert len(history.get("loss", [])) == int(n) // 8        # completed epochs only
    assert "train: interrupted; keeping the weights of the last completed step" in \
        capsys.readouterr().out
