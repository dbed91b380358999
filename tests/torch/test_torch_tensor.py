"""Tensor API: values and gradients of every op against PyTorch 2.13, metadata, conversions,
printing, indexing, in-place ops and the PyTorch-like errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from torch_helpers import assert_close, real_torch

import functorch_lite.torch as torch

# (name, function of (lib, *tensors), input shapes); every function runs on both libraries.
UNARY_BINARY = [
    ("add", lambda t, a, b: a + b, [(3, 4), (3, 4)]),
    ("add_broadcast", lambda t, a, b: a + b, [(3, 4), (4,)]),
    ("radd_scalar", lambda t, a: 2.5 + a, [(3, 4)]),
    ("sub", lambda t, a, b: a - b, [(3, 4), (1, 4)]),
    ("rsub_scalar", lambda t, a: 1 - a, [(3, 4)]),
    ("mul", lambda t, a, b: a * b, [(3, 4), (3, 4)]),
    ("div", lambda t, a, b: a / (b.abs() + 1), [(3, 4), (3, 4)]),
    ("rdiv_scalar", lambda t, a: 2 / (a.abs() + 1), [(3, 4)]),
    ("pow_scalar", lambda t, a: a ** 2, [(3, 4)]),
    ("rpow", lambda t, a: 2 ** a, [(3, 4)]),
    ("neg", lambda t, a: -a, [(5,)]),
    ("matmul", lambda t, a, b: a @ b, [(3, 4), (4, 5)]),
    ("bmm", lambda t, a, b: t.bmm(a, b), [(2, 3, 4), (2, 4, 5)]),
    ("exp", lambda t, a: a.exp(), [(3, 4)]),
    ("log", lambda t, a: (a.abs() + 0.5).log(), [(3, 4)]),
    ("sqrt", lambda t, a: (a.abs() + 0.5).sqrt(), [(3, 4)]),
    ("tanh", lambda t, a: t.tanh(a), [(3, 4)]),
    ("sigmoid", lambda t, a: t.sigmoid(a), [(3, 4)]),
    ("relu", lambda t, a: t.relu(a), [(3, 4)]),
    ("abs", lambda t, a: t.abs(a), [(3, 4)]),
    ("clamp", lambda t, a: a.clamp(-0.5, 0.5), [(3, 4)]),
    ("clamp_min", lambda t, a: a.clamp(min=0.1), [(3, 4)]),
    ("maximum", lambda t, a, b: t.maximum(a, b), [(3, 4), (3, 4)]),
    ("where", lambda t, a, b: t.where(a > 0, a, b), [(3, 4), (3, 4)]),
    ("where_scalar", lambda t, a: t.where(a > 0, a, 0.0), [(3, 4)]),
    ("sum", lambda t, a: a.sum(), [(3, 4)]),
    ("sum_dim", lambda t, a: a.sum(dim=1), [(3, 4)]),
    ("sum_dims_keepdim", lambda t, a: a.sum(dim=(0, 2), keepdim=True), [(2, 3, 4)]),
    ("mean", lambda t, a: t.mean(a), [(3, 4)]),
    ("mean_dim", lambda t, a: a.mean(-1, keepdim=True), [(3, 4)]),
    ("max_all", lambda t, a: a.max(), [(3, 4)]),
    ("max_dim_values", lambda t, a: t.max(a, 1).values, [(3, 4)]),
    ("min_dim_values", lambda t, a: a.min(dim=0)[0], [(3, 4)]),
    ("var", lambda t, a: a.var(dim=1), [(3, 4)]),
    ("std_biased", lambda t, a: a.std(unbiased=False), [(3, 4)]),
    ("norm", lambda t, a: a.norm(), [(3, 4)]),
    ("logsumexp", lambda t, a: a.logsumexp(1), [(3, 4)]),
    ("softmax", lambda t, a: t.softmax(a, 1), [(3, 4)]),
    ("log_softmax", lambda t, a: a.log_softmax(dim=0), [(3, 4)]),
    ("view", lambda t, a: a.view(4, 3) * 2, [(3, 4)]),
    ("view_infer", lambda t, a: a.view(-1) * 2, [(3, 4)]),
    ("reshape", lambda t, a: a.reshape(2, -1, 2), [(3, 4)]),
    ("flatten", lambda t, a: t.flatten(a, 1), [(2, 3, 4)]),
    ("permute", lambda t, a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("transpose", lambda t, a: a.transpose(0, 1), [(3, 4)]),
    ("T", lambda t, a: a.T, [(3, 4)]),
    ("unsqueeze_squeeze", lambda t, a: a.unsqueeze(1).squeeze(), [(3, 4)]),
    ("expand", lambda t, a: a.expand(3, 4) * 1, [(1, 4)]),
    ("getitem", lambda t, a: a[1:, ::2], [(3, 4)]),
    ("getitem_int", lambda t, a: a[-1], [(3, 4)]),
    ("getitem_none_ellipsis", lambda t, a: a[None, ..., 1], [(3, 4)]),
    ("cat", lambda t, a, b: t.cat([a, b], dim=1), [(3, 4), (3, 2)]),
    ("stack", lambda t, a, b: t.stack([a, b], dim=1), [(3, 4), (3, 4)]),
    ("split", lambda t, a: a.split(2, dim=1)[1], [(3, 5)]),
    ("chunk", lambda t, a: t.chunk(a, 2)[0], [(4, 3)]),
    ("gather", lambda t, a: a.gather(1, t.tensor([[0, 1], [2, 2], [1, 0]])), [(3, 4)]),
    ("index_tensor", lambda t, a: a[t.tensor([2, 0, 2])], [(3, 4)]),
    ("index_select", lambda t, a: a.index_select(1, t.tensor([3, 1])), [(3, 4)]),
    ("masked_fill", lambda t, a: a.masked_fill(a < 0, 0.5), [(3, 4)]),
    ("cumsum", lambda t, a: a.cumsum(1), [(3, 4)]),
    ("flip", lambda t, a: a.flip(0), [(3, 4)]),
    ("einsum", lambda t, a, b: t.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)]),
    ("topk_values", lambda t, a: a.topk(2, dim=1).values, [(3, 4)]),
    ("tril", lambda t, a: a.tril(), [(4, 4)]),
]


def _pair(shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [torch.tensor(a, requires_grad=True) for a in arrays]
    theirs = [real_torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


@pytest.mark.parametrize("name,fn,shapes", UNARY_BINARY, ids=[c[0] for c in UNARY_BINARY])
def test_op_forward_and_gradient_match_pytorch(name, fn, shapes):
    ours, theirs = _pair(shapes)
    y, yr = fn(torch, *ours), fn(real_torch, *theirs)
    assert tuple(y.shape) == tuple(yr.shape)
    # a fixed random cotangent so every output element matters
    w = np.random.default_rng(1).standard_normal(tuple(yr.shape)).astype(np.float32)
    (y * torch.tensor(w)).sum().backward()       # y, alive, is computed in the same call
    (yr * real_torch.tensor(w)).sum().backward()
    assert_close(y, yr)
    for a, b in zip(ours, theirs):
        assert_close(a.grad, b.grad)


def test_comparisons_argmax_and_integer_results_match_pytorch(np_rng):
    a = np_rng.standard_normal((4, 5)).astype(np.float32)
    t, r = torch.tensor(a), real_torch.tensor(a)
    for f in (lambda x: x > 0, lambda x: x.eq(x[0]), lambda x: x.argmax(dim=1),
              lambda x: x.argmax(), lambda x: x.argmin(0, keepdim=True),
              lambda x: x.max(dim=1).indices, lambda x: (x > 0).sum(), lambda x: (x > 0).float().mean(),
              lambda x: x.long() // 1, lambda x: (x * 10).long() % 3, lambda x: ~(x > 0)):
        ours, theirs = f(t), f(r)
        assert_close(ours, theirs, atol=1e-7, rtol=1e-6)
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")


def test_max_returns_values_and_indices_namedtuple():
    t = torch.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    values, indices = torch.max(t, 1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    out = t.max(dim=1, keepdim=True)
    assert out.values.shape == torch.Size([2, 1]) and out.indices.shape == (2, 1)


def test_dtypes_follow_torch_promotion_and_report_torch_names():
    assert torch.tensor([1, 2]).dtype == torch.int64 == torch.long
    assert torch.tensor([1.0]).dtype == torch.float32
    assert torch.tensor([True]).dtype == torch.bool
    i = torch.tensor([1, 2])
    assert (i * 2.5).dtype == torch.float32
    assert (i / 2).dtype == torch.float32
    assert (i + 1).dtype == torch.int64
    assert torch.arange(5).dtype == torch.int64 and torch.arange(0.0, 1.0, 0.5).dtype == torch.float32
    assert torch.zeros(2, 3).dtype == torch.float32
    assert torch.tensor(np.zeros(3, np.float64)).dtype == torch.float32  # x64 is off in JAX
    assert torch.tensor(np.zeros(3, np.uint8)).float().dtype == torch.float32
    assert repr(torch.float32) == "torch.float32"


def test_metadata_without_materialising():
    w = torch.randn(4, 3, requires_grad=True)
    y = (w @ torch.randn(3, 2)).relu()
    assert y._node.value is None  # lazy: nothing ran
    assert y.shape == torch.Size([4, 2]) and y.size(1) == 2 and y.size() == (4, 2)
    assert y.dim() == 2 and y.ndim == 2 and y.numel() == 8 and y.dtype == torch.float32
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    assert w.is_leaf and w.grad_fn is None and y.device == torch.device("cpu")
    assert y._node.value is None


def test_values_materialise_on_item_numpy_tolist_bool_float():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    s = (a * a).sum()
    assert s._node.value is None
    assert s.item() == 30.0 and isinstance(s.item(), float)
    assert float(s) == 30.0 and int(s) == 30 and bool(s > 29)
    assert (a * 2).detach().numpy().tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert (a * 2).tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert torch.tensor([3]).item() == 3 and isinstance(torch.tensor([3]).item(), int)
    assert np.asarray(a * 1).shape == (2, 2)
    assert f"{s:.1f}" == "30.0"


def test_printing_looks_like_torch():
    assert repr(torch.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(torch.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(torch.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(torch.tensor(3.0)) == "tensor(3.)"
    assert repr(torch.tensor([True, False])) == "tensor([ True, False])"
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    assert repr(w) == "tensor([1., 2.], requires_grad=True)"
    assert repr(w * 2) == "tensor([2., 4.], grad_fn=<MulBackward0>)"
    assert repr(torch.tensor([1, 2], dtype=torch.uint8)) == "tensor([1, 2], dtype=torch.uint8)"
    assert repr(torch.Size([2, 3])) == "torch.Size([2, 3])"
    assert str(torch.nn.Linear(2, 3)(torch.ones(1, 2))).endswith("grad_fn=<AddmmBackward0>)")


def test_item_on_multi_element_tensor_raises_like_torch():
    with pytest.raises(RuntimeError, match="a Tensor with 3 elements cannot be converted to Scalar"):
        torch.ones(3).item()
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(torch.ones(2))


def test_numpy_on_tensor_requiring_grad_raises():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        w.numpy()
    assert w.detach().numpy().tolist() == [1.0, 1.0]


def test_view_errors_like_torch():
    with pytest.raises(RuntimeError, match=r"shape '\[5, -1\]' is invalid for input of size 12"):
        torch.ones(3, 4).view(5, -1)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        torch.ones(3, 4).view(-1, -1)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        torch.ones(3, 4).sum(dim=2)


def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 5x2\)"):
        torch.ones(3, 4) @ torch.ones(5, 2)


def test_cat_and_stack_shape_errors():
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 0"):
        torch.cat([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2, 3\] at entry 0 and \[2, 4\] at entry 1"):
        torch.stack([torch.ones(2, 3), torch.ones(2, 4)])


def test_mean_of_integer_tensor_raises_like_torch():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        torch.tensor([1, 2]).mean()


def test_requires_grad_only_for_float_tensors():
    with pytest.raises(RuntimeError, match="only Tensors of floating point and complex dtype can require gradients"):
        torch.tensor([1, 2], requires_grad=True)
    y = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)


def test_inplace_on_leaf_requiring_grad_raises_but_works_under_no_grad():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        w.add_(1)
    with torch.no_grad():
        w -= 0.5 * torch.ones(3)
        w.mul_(2)
    assert w.tolist() == [1.0, 1.0, 1.0] and w.requires_grad and w.is_leaf
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3.0, 3.0, 3.0]


def test_data_attribute_aliases_the_parameter():
    w = torch.nn.Parameter(torch.ones(2))
    w.data.mul_(3)
    assert w.tolist() == [3.0, 3.0]
    w.data = torch.tensor([5.0, 6.0])
    assert w.tolist() == [5.0, 6.0] and w.requires_grad
    assert not w.data.requires_grad


def test_setitem_and_inplace_ops_on_plain_tensors():
    t = torch.zeros(3, 4)
    t[1] = 2.0
    t[:, 0] = torch.tensor([7.0, 8.0, 9.0])
    t[t > 8] = -1.0
    r = real_torch.zeros(3, 4)
    r[1] = 2.0
    r[:, 0] = real_torch.tensor([7.0, 8.0, 9.0])
    r[r > 8] = -1.0
    assert_close(t, r)
    t.zero_()
    assert t.sum().item() == 0
    t.fill_(2).add_(torch.ones(3, 4), alpha=3)
    assert t.tolist()[0] == [5.0] * 4
    assert t.clamp_(max=4.0).max().item() == 4.0


def test_setitem_on_lazy_tensor_keeps_gradient_flow():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ra = real_torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b, rb = a * 2, ra * 2
    b[0] = 10.0
    rb[0] = 10.0
    (b * b).sum().backward()
    (rb * rb).sum().backward()
    assert_close(b, rb)
    assert_close(a.grad, ra.grad)


CONCRETE_INDEXES = ["[1]", "[-1]", "[1:3]", "[-2:]", "[5:]", "[2:100]", "[:, 1]", "[..., -1]",
                    "[None, 1:3]", "[1, None, 2:]", "[0, ..., 3]", "[1, 2, 3]", "[:, -3:-1, None]",
                    "[::2]", "[1:, ::3]", "[t.tensor([1, -1, 0])]", "[t.tensor([[0, 1], [1, 1]])]",
                    "[t.tensor([1, 0]), 2]", "[:, t.tensor([2, 0])]"]


@pytest.mark.parametrize("index", CONCRETE_INDEXES)
def test_indexing_concrete_tensors_matches_pytorch(index):
    # concrete (data) tensors take the dynamic-start and lazy-rows paths, so check them apart
    # from the graph ops above, whose inputs require grad
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    ours = eval("a" + index, {"a": torch.tensor(data), "t": torch})
    theirs = eval("a" + index, {"a": real_torch.tensor(data), "t": real_torch})
    assert_close(ours, theirs)


@st.composite
def _basic_indexes(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    parts, dims = [], list(shape)
    ellipsis = draw(st.booleans())
    while dims and draw(st.integers(0, 3)):
        n = dims.pop(0)
        kind = draw(st.sampled_from(["int", "slice", "none"] if n else ["slice", "none"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            parts.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2]))))
        else:
            parts.append(None)
            dims.insert(0, n)
    if ellipsis:   # anywhere when the parts index every dim (it then stands for none)
        parts.insert(draw(st.integers(0, len(parts))) if not dims else len(parts), Ellipsis)
    return shape, tuple(parts)


@settings(max_examples=60, deadline=None)
@given(_basic_indexes())
def test_basic_indexing_of_concrete_tensors_matches_numpy(case):
    shape, index = case
    data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    got = torch.tensor(data)[index].numpy()
    want = data[index]
    assert got.shape == want.shape and np.array_equal(got, want), (shape, index)


@pytest.mark.parametrize("index", ["[2]", "[-3]", "[1, 3]", "[:, 3]", "[..., 4]", "[None, 2]",
                                   "[t.tensor([0]), 3]"])
def test_an_integer_index_out_of_range_raises_like_pytorch(index):
    for a in (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, requires_grad=True) * 2):
        with pytest.raises(IndexError, match="is out of bounds for dimension [0-9] with size"):
            eval("a" + index, {"a": a, "t": torch})


def test_indexing_a_concrete_tensor_compiles_per_shape_not_per_index():
    # a Dataset's ``xs[i]`` or a loop's ``perm[i:i + 128]``: the starts are an argument
    from functorch_lite.torch import graph
    xs = torch.tensor(np.arange(40 * 3, dtype=np.float32).reshape(40, 3))
    before = set(graph._EAGER)
    rows = [xs[i] for i in range(40)]
    blocks = [xs[i:i + 4] for i in range(0, 40, 4)]
    new = [k for k in graph._EAGER if k not in before]
    assert len(new) <= 2, new
    assert [r.tolist() for r in rows] == np.arange(120.0).reshape(40, 3).tolist()
    assert np.array_equal(np.concatenate([b.numpy() for b in blocks]), xs.numpy())


def test_boolean_mask_indexing_materialises():
    a = torch.tensor([1.0, -2.0, 3.0, -4.0])
    assert a[a > 0].tolist() == [1.0, 3.0]
    rows = torch.arange(6).view(3, 2)
    assert rows[torch.tensor([True, False, True])].tolist() == [[0, 1], [4, 5]]


def test_iteration_len_and_unbind():
    t = torch.arange(6).view(3, 2)
    assert len(t) == 3 and [r.tolist() for r in t] == [[0, 1], [2, 3], [4, 5]]
    assert [u.tolist() for u in t.unbind(1)] == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(torch.tensor(1.0))


def test_conversions_and_device_are_noops_where_torch_would_copy():
    t = torch.ones(2)
    assert t.to("cpu") is t and t.cpu() is t and t.to(torch.device("cpu")) is t
    assert t.to(torch.long).dtype == torch.int64 and t.long().float().dtype == torch.float32
    assert t.to(torch.ones(1, dtype=torch.int64)).dtype == torch.int64
    assert not torch.cuda.is_available() and not torch.backends.mps.is_available()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert str(dev) == "cpu"
    with pytest.raises(RuntimeError, match="Torch not compiled with CUDA enabled"):
        t.cuda()
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda, mps, xla, meta device type"):
        torch.device("tpu0")


def test_factories_shapes_and_seeded_randomness():
    assert torch.zeros(2, 3).shape == (2, 3) and torch.ones((4,)).sum().item() == 4
    assert torch.full((2, 2), 7).dtype == torch.int64 and torch.full((2,), 0.5).tolist() == [0.5, 0.5]
    assert torch.empty(3, 1).shape == (3, 1) and torch.eye(3).sum().item() == 3
    assert torch.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert torch.zeros_like(torch.ones(2, 2, dtype=torch.long)).dtype == torch.int64
    torch.manual_seed(3)
    a = torch.randn(1000)
    torch.manual_seed(3)
    b = torch.randn(1000)
    assert a.tolist() == b.tolist()
    assert abs(a.mean().item()) < 0.1 and abs(a.std().item() - 1) < 0.1
    r = torch.rand(1000)
    assert 0 <= r.min().item() and r.max().item() < 1
    assert sorted(torch.randperm(10).tolist()) == list(range(10))
    ri = torch.randint(0, 5, (100,))
    assert ri.dtype == torch.int64 and set(ri.tolist()) <= set(range(5))
    assert torch.from_numpy(np.arange(3)).tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="expected np.ndarray"):
        torch.from_numpy([1, 2])


def test_tensor_copies_numpy_input():
    a = np.ones(3, np.float32)
    t = torch.tensor(a)
    a[:] = 5
    assert t.tolist() == [1.0, 1.0, 1.0]


def test_tensor_rejects_strings():
    with pytest.raises(TypeError, match="expected numbers, \\(nested\\) lists of numbers or arrays"):
        torch.tensor(["a"])


def test_unhashable_attribute_is_a_clear_error():
    from functorch_lite.torch.graph import record
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"torch op 'reshape': attributes \['shape'\] are not hashable"):
        record("reshape", [w._node], (("shape", [2]),))
    with pytest.raises(TypeError, match=r"torch op 'reshape': attributes \['shape'\] are not hashable"):
        record("reshape", [torch.ones(2)._node], (("shape", [2]),))   # the eager path too


def test_torch_functions_namespace():
    a = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert torch.sum(a).item() == 6 and torch.mean(a).item() == 1.5
    assert torch.argmax(a).item() == 3 and torch.flatten(a).shape == (4,)
    assert torch.exp(torch.log(torch.tensor([2.0]))).item() == pytest.approx(2.0)
    assert torch.allclose(a, a + 1e-9) and torch.equal(a, a.clone())
    assert torch.is_tensor(a) and not torch.is_tensor(a.numpy())


def test_gradients_at_kinks_follow_pytorch():
    for fn in (lambda t, x: x.abs(), lambda t, x: x.clamp(0.0, 1.0), lambda t, x: t.relu(x),
               lambda t, x: x.clamp(min=1.0)):
        x = torch.tensor([0.0, 1.0, -1.0, 2.0], requires_grad=True)
        xr = real_torch.tensor([0.0, 1.0, -1.0, 2.0], requires_grad=True)
        fn(torch, x).sum().backward()
        fn(real_torch, xr).sum().backward()
        assert_close(x.grad, xr.grad, atol=0, rtol=0)


def test_numpy_operands_defer_to_tensor_operators():
    w = torch.ones(2, requires_grad=True)
    y = np.float32(2.0) * w + np.array([1.0, 2.0], np.float32)
    assert isinstance(y, torch.Tensor) and y.requires_grad
    y.sum().backward()
    assert w.grad.tolist() == [2.0, 2.0]
