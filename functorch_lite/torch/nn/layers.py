"""torch.nn layers over functional-core modules, with PyTorch's layouts and initialisation.

``Linear`` is the core ``Dense(kernel_layout='oi', kernel_init='torch', bias_init='torch_bias')``;
``Conv1d/2d`` the core ``Conv(layout='channels_first')`` (OIHW ``weight``); ``BatchNorm`` the core
``BatchNorm(axis=1, decay=1 - momentum, unbiased_running_var=True)`` with torch's buffer names.
Parameters are initialised by the core's ``init`` with a key from ``torch.manual_seed``.
"""
from __future__ import annotations

import collections
import operator
from itertools import islice

import jax.numpy as jnp

import jax
import numpy as np

from .. import random as _random
from ..graph import record
from .._base import host_full
from ..tensor import Tensor
from . import functional as F
from .module import Module, ModuleShapeError, Parameter, module_label

__all__ = ["Identity", "Linear", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
           "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d",
           "LayerNorm", "Dropout", "Dropout1d", "Dropout2d", "Embedding", "ReLU", "ReLU6",
           "LeakyReLU", "GELU", "ELU", "SELU", "SiLU", "Mish", "Softplus", "Tanh", "Sigmoid",
           "Softmax", "LogSoftmax", "Flatten", "Unflatten", "Sequential", "ModuleList",
           "ModuleDict"]


def _init_params(core, spec):
    """Initial params of a core module for input ``spec``, by PyTorch's scheme.

    The tree (names and shapes) is the core's ``init``, evaluated abstractly
    (``jax.eval_shape``: nothing runs); the values follow PyTorch's ``reset_parameters``, the
    same distributions as the core's ``'torch'``/``'torch_bias'`` initialisers: weights
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with a=sqrt(5)), biases the same bound,
    embeddings N(0, 1), normalisation scales 1 and shifts 0.  They are drawn on the host from
    the generator ``torch.manual_seed`` seeds: running the core's jax.random initialisers would
    compile an XLA program per layer shape (about half a second each on a CPU), which is what
    building a model eagerly must not cost.
    """
    shapes, state = jax.eval_shape(lambda k: core.init(k, spec), jax.random.key(0))
    rng = _random.host_rng()
    weight = shapes.get("weight", shapes.get("kernel"))
    fan_in = int(np.prod(weight.shape[1:])) if weight is not None else 0
    bound = 1.0 / np.sqrt(fan_in) if fan_in else 0.0
    out = {}
    for name, sd in shapes.items():
        if name in ("weight", "bias"):
            v = rng.uniform(-bound, bound, sd.shape)
        elif name == "embedding":
            v = rng.standard_normal(sd.shape)
        elif name == "scale":
            v = np.ones(sd.shape)
        else:
            v = np.zeros(sd.shape)
        out[name] = jax.device_put(v.astype(sd.dtype))
    return out


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):  # noqa: A002
        return input


class Linear(Module):
    """``y = x W^T + b``: the core ``Dense`` with torch's (out, in) ``weight`` and init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.core = F._dense(self.out_features, bool(bias))
        p = _init_params(self.core, (1, self.in_features))
        self.weight = Parameter(p["weight"])
        self.bias = Parameter(p["bias"]) if bias else None

    def forward(self, input):  # noqa: A002
        if not input.ndim or input.shape[-1] != self.in_features:
            raise ModuleShapeError(
                f"{module_label(self)}: mat1 and mat2 shapes cannot be multiplied: input of shape "
                f"{tuple(input.shape)} has last dim {input.shape[-1] if input.ndim else None}, "
                f"expected in_features={self.in_features} (weight of shape {tuple(self.weight.shape)})")
        return F.core_call(self.core, input, {"weight": self.weight, "bias": self.bias})

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvNd(Module):
    _n = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        n = self._n
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}: padding_mode={padding_mode!r} is not "
                                      f"supported (only 'zeros')")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = F._tuple(kernel_size, n, "kernel_size")
        self.stride = F._tuple(stride, n, "stride")
        self.padding = padding if isinstance(padding, str) else F._tuple(padding, n, "padding")
        self.dilation = F._tuple(dilation, n, "dilation")
        self.padding_mode = padding_mode
        core = F._conv(out_channels, self.kernel_size, self.stride,
                       F._conv_padding(self.padding, n, self.stride), self.dilation, groups, bool(bias))
        self.core = core
        p = _init_params(core, (1, in_channels) + tuple(max(k, 1) * d for k, d in zip(self.kernel_size, self.dilation)))
        self.weight = Parameter(p["weight"])
        self.bias = Parameter(p["bias"]) if bias else None

    def forward(self, input):  # noqa: A002
        return F._convnd(self._n, f"conv{self._n}d", input, self.weight, self.bias, self.stride,
                         self.padding, self.dilation, self.groups, label=module_label(self))

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    _n = 1


class Conv2d(_ConvNd):
    _n = 2


class _PoolNd(Module):
    _kind, _n = "max", 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):  # noqa: A002
        return F._poolnd(self._kind, self._n, input, self.kernel_size, self.stride, self.padding,
                         self.ceil_mode, self.count_include_pad, self.dilation, self.return_indices,
                         self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(_PoolNd):
    _kind, _n = "max", 1


class MaxPool2d(_PoolNd):
    _kind, _n = "max", 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)


class AvgPool1d(_PoolNd):
    _kind, _n = "avg", 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, False, ceil_mode, count_include_pad)


class AvgPool2d(_PoolNd):
    _kind, _n = "avg", 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, False, ceil_mode, count_include_pad,
                         divisor_override)


class AdaptiveAvgPool1d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):  # noqa: A002
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    def forward(self, input):  # noqa: A002
        return F.adaptive_avg_pool2d(input, self.output_size)


class _BatchNorm(Module):
    _ranks = (2, 3)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        if momentum is None:
            raise NotImplementedError(f"{type(self).__name__}(momentum=None) (cumulative moving "
                                      f"average) is not supported")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        core = F._batch_norm(1.0 - momentum, float(eps), affine, affine)
        params = _init_params(core, (2, num_features))
        state = {"mean": host_full((num_features,), 0, jnp.float32),
                 "var": host_full((num_features,), 1, jnp.float32)}
        self.weight = Parameter(params["scale"]) if affine else None
        self.bias = Parameter(params["bias"]) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._from(state["mean"]))
            self.register_buffer("running_var", Tensor._from(state["var"]))
            self.register_buffer("num_batches_tracked", Tensor._from(host_full((), 0, jnp.int32)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, input):  # noqa: A002
        if input.ndim not in self._ranks:
            raise ModuleShapeError(f"{module_label(self)}: expected {' or '.join(f'{r}D' for r in self._ranks)} "
                                   f"input (got {input.ndim}D input)")
        if input.shape[1] != self.num_features:
            raise ModuleShapeError(f"{module_label(self)}: running_mean should contain "
                                   f"{input.shape[1]} elements not {self.num_features} (input of "
                                   f"shape {tuple(input.shape)}, num_features={self.num_features})")
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked
            # recorded lazily with a lazy input, so the count joins the compiled step
            nbt._inplace(record("add", [nbt._node], (("s", 1), ("rev", False)),
                                lazy=input._node.value is None))
        use_batch = self.training or not self.track_running_stats
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None,
                            self.running_var if keep else None, self.weight, self.bias,
                            use_batch, self.momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    _ranks = (4,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(host_full(shape, 1, jnp.float32))
            self.bias = Parameter(host_full(shape, 0, jnp.float32)) if bias else None
        else:
            self.weight = self.bias = None

    def forward(self, input):  # noqa: A002
        if tuple(input.shape[-len(self.normalized_shape):]) != self.normalized_shape:
            raise ModuleShapeError(f"{module_label(self)}: Given normalized_shape="
                                   f"{list(self.normalized_shape)}, expected input with shape "
                                   f"[*, {', '.join(map(str, self.normalized_shape))}], but got "
                                   f"input of size{list(input.shape)}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):  # noqa: A002
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    def forward(self, input):  # noqa: A002
        if not self.training or self.p == 0:
            return input
        mask = F.dropout(input.new_ones(*input.shape[:-1], 1), self.p, True)
        return input * mask


class Dropout2d(Dropout):
    def forward(self, input):  # noqa: A002
        if not self.training or self.p == 0:
            return input
        mask = F.dropout(input.new_ones(*input.shape[:-2], 1, 1), self.p, True)
        return input * mask


class Embedding(Module):
    """The core ``Embedding`` (N(0, 1) init) with torch's ``weight`` name and ``padding_idx``."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            table = _init_params(F._embedding(num_embeddings, embedding_dim), (1,))["embedding"]
            if padding_idx is not None:
                table = np.array(table)
                table[padding_idx] = 0.0
        else:
            table = _weight._value() if isinstance(_weight, Tensor) else jnp.asarray(_weight)
        self.weight = Parameter(table, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        n, d = tuple(embeddings.shape)
        return cls(n, d, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input):  # noqa: A002
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _activation(name, fn, *fields):
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        vals = dict(zip([k for k, _ in fields], args))
        vals.update({k: v for k, v in kwargs.items() if k in dict(fields)})
        for k, default in fields:
            object.__setattr__(self, k, vals.get(k, default))

    def forward(self, input):  # noqa: A002
        return fn(self, input)

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k, _ in fields if k != "inplace")
    fields = tuple(fields)
    cls = type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                 "__module__": __name__})
    return cls


ReLU = _activation("ReLU", lambda m, x: F.relu(x), ("inplace", False))
ReLU6 = _activation("ReLU6", lambda m, x: F.relu6(x), ("inplace", False))
LeakyReLU = _activation("LeakyReLU", lambda m, x: F.leaky_relu(x, m.negative_slope),
                        ("negative_slope", 0.01), ("inplace", False))
GELU = _activation("GELU", lambda m, x: F.gelu(x, m.approximate), ("approximate", "none"))
ELU = _activation("ELU", lambda m, x: F.elu(x, m.alpha), ("alpha", 1.0), ("inplace", False))
SELU = _activation("SELU", lambda m, x: F.selu(x), ("inplace", False))
SiLU = _activation("SiLU", lambda m, x: F.silu(x), ("inplace", False))
Mish = _activation("Mish", lambda m, x: F.mish(x), ("inplace", False))
Softplus = _activation("Softplus", lambda m, x: F.softplus(x, m.beta, m.threshold),
                       ("beta", 1.0), ("threshold", 20.0))
Tanh = _activation("Tanh", lambda m, x: F.tanh(x))
Sigmoid = _activation("Sigmoid", lambda m, x: F.sigmoid(x))
Softmax = _activation("Softmax", lambda m, x: F.softmax(x, m.dim), ("dim", None))
LogSoftmax = _activation("LogSoftmax", lambda m, x: F.log_softmax(x, m.dim), ("dim", None))


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):  # noqa: A002
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):  # noqa: A002
        return input.unflatten(self.dim, self.unflattened_size)


# ----------------------------------------------------------------------------- containers

class Sequential(Module):
    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input):  # noqa: A002
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(collections.OrderedDict(list(self._modules.items())[idx]))
        n = len(self._modules)
        i = operator.index(idx)
        if not -n <= i < n:
            raise IndexError(f"index {idx} is out of range")
        return next(islice(self._modules.values(), i % n, None))

    def __setitem__(self, idx, module):
        key = list(self._modules)[operator.index(idx)]
        self.add_module(key, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        n = len(self._modules)
        i = operator.index(idx)
        if not -n <= i < n:
            raise IndexError(f"index {idx} is out of range")
        return self._modules[str(i % n)]

    def __setitem__(self, idx, module):
        self.add_module(str(operator.index(idx) % len(self._modules)), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for m in mods:
            self.append(m)

    def forward(self, *args):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your forward")


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            for k, m in (modules.items() if hasattr(modules, "items") else modules):
                self.add_module(k, m)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

