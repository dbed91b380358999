"""Every remaining user-facing error of functorch_lite.torch / torchvision, each with the message
it promises (the parity test files cover the rest)."""
import copy

import numpy as np
import pytest

import functorch_lite.torch as torch
import functorch_lite.torch.nn as nn
import functorch_lite.torch.nn.functional as F
import functorch_lite.torch.optim as optim
from functorch_lite.torch.utils.data import ConcatDataset, DataLoader, Dataset


def test_tensor_creation_and_conversion_errors():
    with pytest.raises(TypeError, match="randint\\(\\) missing 1 required positional argument: 'size'"):
        torch.randint(0, 5)
    with pytest.raises(TypeError, match=r"Tensor\(\): expected data or sizes, got \('a', 2\)"):
        torch.Tensor("a", 2)
    with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
        [1, 2][torch.tensor(1.0)]
    assert [1, 2][torch.tensor(1)] == 2
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"expected a torch dtype \(torch.float32, torch.long, ...\), got 'complex'"):
        torch.zeros(2).to(dtype="complex")
    with pytest.raises(TypeError, match="set_default_dtype: expected a floating point dtype, got torch.int64"):
        torch.set_default_dtype(torch.long)
    with pytest.raises(TypeError, match="no torch dtype for JAX dtype complex64"):
        torch.dtypes.from_jax_dtype(np.complex64)
    with pytest.raises(TypeError, match="device: expected a string like 'cpu', got 3"):
        torch.device(3)


def test_shape_method_errors():
    t = torch.ones(2, 3, 4)
    with pytest.raises(RuntimeError, match="torch.clamp: At least one of 'min' or 'max' must not be None"):
        t.clamp()
    with pytest.raises(NotImplementedError, match=r"view\(dtype\) is not supported; use .to\(dtype\)"):
        t.view(torch.float32)
    with pytest.raises(RuntimeError, match=r"flatten\(\) has invalid args: start_dim cannot come after end_dim"):
        t.flatten(2, 1)
    with pytest.raises(RuntimeError, match=r"number of dimensions in the tensor input does not match the length of the desired ordering of dimensions i.e. input.dim\(\) = 3 is not equal to len\(dims\) = 2"):
        t.permute(1, 0)
    with pytest.raises(RuntimeError, match=r"t\(\) expects a tensor with <= 2 dimensions, but self is 3D"):
        t.t()
    with pytest.raises(TypeError, match="dim: expected an int, got 1.5"):
        t.sum(dim=1.5)
    with pytest.raises(IndexError, match=r"only integers, slices \(`:`\), ellipsis \(`...`\), None and long or byte Variables are valid indices \(got str\)"):
        t["a"]
    with pytest.raises(RuntimeError, match=r"torch.cat\(\): expected a non-empty list of Tensors"):
        torch.cat([])
    with pytest.raises(RuntimeError, match=r"output with shape \[2, 3, 4\] doesn't match the broadcast shape \[2, 2, 3, 4\]"):
        t.add_(torch.ones(2, 2, 3, 4))


def test_autograd_feature_errors():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="retain_grad\\(\\) is not supported by functorch_lite.torch: only leaf tensors"):
        (w * 2).retain_grad()
    with pytest.raises(NotImplementedError, match=r"backward\(inputs=...\) is not supported; set requires_grad"):
        (w * 2).sum().backward(inputs=[w])


def test_serialization_errors(tmp_path):
    with pytest.raises(TypeError, match=r"torch.save: dict keys must be str or int, got tuple at <root>"):
        torch.save({(1, 2): torch.ones(1)}, str(tmp_path / "a.pt"))
    path = tmp_path / "bad.pt"
    with open(path, "wb") as f:
        np.savez(f, __functorch_lite_torch_layout__=np.asarray('{"weird": 1}'))
    with pytest.raises(ValueError, match=r"torch.load: corrupt layout entry \{'weird': 1\}"):
        torch.load(str(path))


def test_module_api_errors():
    with pytest.raises(TypeError, match=r"Module.__init__\(\) got unexpected arguments"):
        nn.Module(3)
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match="parameter name should be a string. Got int"):
        m.register_parameter(1, None)
    with pytest.raises(KeyError, match='buffer name can.{1,2}t be empty string ""'):
        m.register_buffer("", None)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got <class 'list'>."):
        m.load_state_dict([])
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        m.train("yes")
    with pytest.raises(NotImplementedError, match=r"ModuleList has no forward\(\); iterate over it in your forward"):
        nn.ModuleList([m])(torch.ones(1, 2))


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(NotImplementedError, match=r"BatchNorm1d\(momentum=None\) \(cumulative moving average\) is not supported"):
        nn.BatchNorm1d(3, momentum=None)
    with pytest.raises(NotImplementedError, match=r"batch_norm\(momentum=None\) \(cumulative average\) is not supported"):
        F.batch_norm(torch.ones(2, 3), None, None, training=True, momentum=None)
    with pytest.raises(ValueError, match=r"Expected 2D or more input \(got 1D input\)"):
        F.batch_norm(torch.ones(3), None, None, training=True)
    with pytest.raises(RuntimeError, match="batch_norm: running_mean and running_var are needed when not training"):
        F.batch_norm(torch.ones(2, 3), None, None, training=False)
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=5)
    with pytest.raises(NotImplementedError, match="embedding: max_norm, scale_grad_by_freq and sparse are not supported"):
        F.embedding(torch.tensor([0]), torch.ones(3, 2), max_norm=1.0)
    with pytest.raises(ValueError, match=r"kernel_size: expected an int or 2 ints, got \(1, 2, 3\)"):
        nn.Conv2d(1, 1, (1, 2, 3))
    with pytest.raises(ValueError, match="Invalid padding string 'full', should be one of"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(NotImplementedError, match="pad: mode 'reflect' is not supported"):
        F.pad(torch.ones(1, 2), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="Padding length must be divisible by 2"):
        F.pad(torch.ones(1, 2), (1,))
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(2, 3, dropout=2.0)


def test_init_errors():
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(torch.ones(3)))
    with pytest.raises(ValueError, match="Mode fan_avg not supported, please use one of fan_in, fan_out"):
        nn.init.kaiming_uniform_(nn.Parameter(torch.ones(3, 3)), mode="fan_avg")


def test_clip_grad_norm_nonfinite_error():
    w = nn.Parameter(torch.ones(2))
    (w * float("inf")).sum().backward()
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is non-finite"):
        nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)


def test_optimizer_and_scheduler_argument_errors():
    w = nn.Parameter(torch.ones(2))
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict, but got list"):
        opt.add_param_group([w])
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the params is int"):
        optim.SGD([3], lr=0.1)
    with pytest.raises(ValueError, match="max_lr must have the same length as optimizer.param_groups. max_lr has 2 values, param_groups has 1."):
        optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=3)
    with pytest.raises(ValueError, match="Expected positive integer total_steps, but got 0"):
        optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=0)
    with pytest.raises(ValueError, match="Expected positive integer epochs, but got 0"):
        optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=0, steps_per_epoch=2)
    with pytest.raises(ValueError, match="Expected positive integer steps_per_epoch, but got -1"):
        optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=1, steps_per_epoch=-1)
    fresh = optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\] when resuming"):
        optim.lr_scheduler.StepLR(fresh, step_size=1, last_epoch=3)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear', instead got step"):
        optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3, anneal_strategy="step")


def test_data_errors():
    class NoItems(Dataset):
        def __len__(self):
            return 2
    with pytest.raises(NotImplementedError, match="NoItems must implement __getitem__"):
        next(iter(DataLoader(NoItems(), batch_size=1)))
    with pytest.raises(ValueError, match="datasets should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(NotImplementedError, match=r"DataLoader\(batch_sampler=...\) is not supported"):
        DataLoader(NoItems(), batch_sampler=[[0, 1]])


def test_deepcopy_keeps_leaf_semantics():
    t = torch.ones(2, requires_grad=True)
    c = copy.copy(t)
    assert c.requires_grad and c is not t and c.tolist() == [1.0, 1.0]
