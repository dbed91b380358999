"""torch.utils.data: Dataset, TensorDataset, Subset, random_split, DataLoader (batching,
shuffling with torch's seed, drop_last, collate, the device-resident fast path)."""
import numpy as np
import pytest
from torch_helpers import real_torch

import functorch_lite.torch as torch
from functorch_lite.torch.utils.data import (DataLoader, Dataset, Subset, TensorDataset,
                                             default_collate, random_split)


def _ds(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return TensorDataset(torch.tensor(x), torch.tensor(np.arange(n)))


def test_tensor_dataset_items_and_length():
    ds = _ds()
    assert len(ds) == 10
    x, y = ds[3]
    assert x.tolist() == [6.0, 7.0] and y.item() == 3
    with pytest.raises(ValueError, match=r"Size mismatch between tensors: first dimensions \[3, 2\]"):
        TensorDataset(torch.ones(3), torch.ones(2))


@pytest.mark.parametrize("n,bs,drop_last,lengths", [(10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]),
                                                     (8, 4, False, [4, 4]), (3, 5, False, [3])])
def test_batches_cover_the_data_in_order(n, bs, drop_last, lengths):
    loader = DataLoader(_ds(n), batch_size=bs, drop_last=drop_last)
    real = real_torch.utils.data.DataLoader(real_torch.utils.data.TensorDataset(real_torch.arange(n)),
                                            batch_size=bs, drop_last=drop_last)
    assert len(loader) == len(real) == len(lengths)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == lengths
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == list(range(sum(lengths)))
    assert batches[0][0].shape == (lengths[0], 2) and batches[0][1].dtype == torch.int64
    assert loader.dataset is not None and isinstance(batches[0], list)


def test_shuffle_is_a_permutation_seeded_by_manual_seed_and_new_each_epoch():
    loader = DataLoader(_ds(20), batch_size=6, shuffle=True)
    torch.manual_seed(3)
    e1 = np.concatenate([y.numpy() for _, y in loader])
    e2 = np.concatenate([y.numpy() for _, y in loader])
    assert sorted(e1.tolist()) == list(range(20)) and sorted(e2.tolist()) == list(range(20))
    assert e1.tolist() != list(range(20)) and e1.tolist() != e2.tolist()
    torch.manual_seed(3)
    assert np.concatenate([y.numpy() for _, y in loader]).tolist() == e1.tolist()
    g = torch.Generator().manual_seed(5)
    a = [y.tolist() for _, y in DataLoader(_ds(20), batch_size=6, shuffle=True, generator=g)]
    g = torch.Generator().manual_seed(5)
    assert [y.tolist() for _, y in DataLoader(_ds(20), batch_size=6, shuffle=True, generator=g)] == a


def test_array_backed_batches_are_lazy_row_gathers_that_materialise_on_use():
    loader = DataLoader(_ds(10), batch_size=4, shuffle=True)
    x, y = next(iter(loader))
    assert x._node.op == "take_rows" and x._node.value is None
    rows = y.numpy()
    assert np.array_equal(x.numpy(), np.stack([rows * 2, rows * 2 + 1], 1).astype(np.float32))


class Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.full(3, i, np.float32), "y": i * i, "name": f"s{i}"}


def test_map_style_dataset_goes_through_collate():
    loader = DataLoader(Squares(), batch_size=3)
    batches = list(loader)
    assert len(batches) == 3
    assert batches[0]["x"].shape == (3, 3) and batches[0]["y"].tolist() == [0, 1, 4]
    assert batches[2]["name"] == ["s6"]
    custom = DataLoader(Squares(), batch_size=2, collate_fn=lambda b: [s["y"] for s in b])
    assert list(custom)[1] == [4, 9]
    single = DataLoader(Squares(), batch_size=None)
    assert len(single) == 7 and next(iter(single))["y"] == 0


def test_default_collate_of_tuples_of_tensors_and_numbers():
    out = default_collate([(torch.tensor([1.0, 2.0]), 1), (torch.tensor([3.0, 4.0]), 0)])
    assert out[0].tolist() == [[1.0, 2.0], [3.0, 4.0]] and out[1].tolist() == [1, 0]
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays"):
        default_collate([object()])


def test_random_split_and_subset():
    torch.manual_seed(0)
    a, b = random_split(_ds(10), [7, 3])
    assert len(a) == 7 and len(b) == 3
    ids = sorted([int(a[i][1].item()) for i in range(7)] + [int(b[i][1].item()) for i in range(3)])
    assert ids == list(range(10))
    c, d = random_split(_ds(10), [0.5, 0.5])
    assert len(c) == len(d) == 5
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        random_split(_ds(10), [3, 3])
    sub = Subset(_ds(10), [9, 0])
    assert [y.tolist() for _, y in DataLoader(sub, batch_size=2)] == [[9, 0]]


def test_dataloader_argument_errors():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        DataLoader(_ds(), batch_size=0)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(_ds(), sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(_ds(), num_workers=-1)
    assert len(DataLoader(_ds(), batch_size=2, num_workers=4, pin_memory=True)) == 5
