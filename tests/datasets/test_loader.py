"""DataLoader: coverage, batch sizes, len, per-epoch reshuffling, seeding, errors."""
import numpy as np
import pytest

from functorch_lite.core.errors import ConfigError, ShapeError
from functorch_lite.datasets import DataLoader


def data(n=10):
    x = np.arange(n * 6).reshape(n, 2, 3)  # sample i holds 6i .. 6i+5
    y = np.arange(n) * 10
    return x, y


def epoch_ids(loader):
    """The sample ids of one epoch, batch by batch, after checking x and y stay paired."""
    out = []
    for xb, yb in loader:
        ids = xb[:, 0, 0] // 6
        np.testing.assert_array_equal(yb, ids * 10)
        np.testing.assert_array_equal(xb, np.arange(6)[None].reshape(1, 2, 3) + 6 * ids[:, None,
                                                                                        None])
        out.append(ids.tolist())
    return out


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_per_epoch(shuffle):
    loader = DataLoader(data(10), 3, shuffle=shuffle, seed=5)
    for _ in range(3):
        batches = epoch_ids(loader)
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert sorted(sum(batches, [])) == list(range(10))


def test_no_shuffle_keeps_order():
    assert sum(epoch_ids(DataLoader(data(7), 2)), []) == list(range(7))


@pytest.mark.parametrize("n,b,drop,expected", [(10, 3, False, 4), (10, 3, True, 3),
                                               (9, 3, False, 3), (9, 3, True, 3),
                                               (2, 5, False, 1), (2, 5, True, 0)])
def test_len_matches_batches(n, b, drop, expected):
    loader = DataLoader(data(n), b, drop_last=drop, shuffle=True)
    batches = epoch_ids(loader)
    assert len(loader) == len(batches) == expected
    assert all(len(x) == b for x in batches) if drop else sum(map(len, batches)) == n


def test_drop_last_with_shuffle_has_no_duplicates():
    loader = DataLoader(data(10), 4, shuffle=True, drop_last=True)
    seen = sum(epoch_ids(loader), [])
    assert len(seen) == len(set(seen)) == 8


def test_reshuffles_each_epoch_and_is_reproducible():
    a = DataLoader(data(50), 7, shuffle=True, seed=3)
    b = DataLoader(data(50), 7, shuffle=True, seed=3)
    c = DataLoader(data(50), 7, shuffle=True, seed=4)
    epochs_a = [sum(epoch_ids(a), []) for _ in range(3)]
    epochs_b = [sum(epoch_ids(b), []) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert sum(epoch_ids(c), []) != epochs_a[0]
    assert epochs_a[0] != list(range(50))


def test_each_iter_call_is_an_epoch():
    ref = DataLoader(data(20), 4, shuffle=True)
    ref_epochs = [sum(epoch_ids(ref), []) for _ in range(2)]
    a = DataLoader(data(20), 4, shuffle=True)
    first, second = iter(a), iter(a)  # two epochs, although neither was consumed yet
    assert sum(epoch_ids(second), []) == ref_epochs[1]
    assert sum(epoch_ids(first), []) == ref_epochs[0]


def test_lists_and_single_array_tuple():
    loader = DataLoader([np.arange(5)], 2)
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3], [4]]
    assert all(isinstance(b, tuple) and len(b) == 1 for b in loader)


def test_unequal_lengths():
    with pytest.raises(ShapeError, match=r"DataLoader: arrays expected the same first dimension, "
                                         r"got lengths \[10, 9\]\nHint: every array"):
        DataLoader((np.zeros((10, 2)), np.zeros(9)), 2)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_bad_batch_size(bad):
    with pytest.raises(ConfigError, match=rf"DataLoader: batch_size expected a positive int, "
                                          rf"got {bad!r}"):
        DataLoader(data(), bad)


def test_bad_arrays_and_seed():
    with pytest.raises(ConfigError, match=r"arrays expected a tuple or list of arrays, got "
                                          r"ndarray\nHint: wrap a single array"):
        DataLoader(np.zeros(3), 1)
    with pytest.raises(ConfigError, match=r"arrays expected at least one array, got an empty "
                                          r"tuple"):
        DataLoader((), 1)
    with pytest.raises(ShapeError, match=r"arrays expected at least 1 dimension each, got "
                                         r"shapes \[\(3,\), \(\)\]"):
        DataLoader((np.zeros(3), np.float32(1)), 1)
    with pytest.raises(ConfigError, match=r"seed expected a non-negative int, got -1"):
        DataLoader(data(), 2, seed=-1)
