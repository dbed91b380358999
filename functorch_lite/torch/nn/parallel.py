"""``nn.DataParallel`` / ``nn.parallel.DistributedDataParallel`` on JAX's SPMD partitioner.

    model = nn.DataParallel(Net(), device_ids=[0, 1, 2, 3])    # or all devices
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()   # one compiled step

The wrapper replicates the wrapped module's parameters and buffers on the devices (a
``NamedSharding`` over a ``jax.sharding.Mesh``; FSDP-style sharding with
``distribution=functorch_lite.distributed.DataParallel(mesh, param_axis='model')``) and splits
every tensor argument of ``forward`` along ``dim`` over the data axis.  Nothing here
communicates: ``backward()`` + ``optimizer.step()`` still run as ONE ``jax.jit`` computation
(``graph.py``), ``jit`` propagates the input shardings, and XLA inserts the all-reduce of the
gradients of the replicated parameters; the optimizer state is created with the parameters'
sharding (``optim/_functional.py``).  The result equals the single-device step on the same
global batch up to float summation order (BatchNorm statistics are over the global batch, like
``SyncBatchNorm``).

Differences from PyTorch: the batch size must be a multiple of the number of devices (PyTorch
splits unevenly; here a ``ConfigError`` says so; ``DataLoader(..., drop_last=True)`` drops a
last partial batch); outputs stay split over the devices as one global array instead of being
gathered on ``output_device`` (``.item()``, ``.numpy()``, ``print`` work as usual).
``DistributedDataParallel`` takes each process's *local* part of the global batch (as with a
``DistributedSampler``) and needs ``torch.distributed.init_process_group`` (or
``functorch_lite.distributed.initialize_from_env``) for several processes; in one process it
is ``DataParallel``.  Its output is the *global* batch's (one SPMD program for the whole job),
so the targets must be made global the same way before the loss:
``loss = F.cross_entropy(model(x), model.global_batch(y))``; ``loss`` is then the global mean
(PyTorch's DDP reports each process's local loss; the gradients are the same average).
"""
from __future__ import annotations

import jax
import numpy as np

from ... import distributed as _fld
from ...core.errors import ConfigError
from .. import graph
from .._base import wrap
from ..graph import record, register
from ..tensor import Tensor
from .module import Module

__all__ = ["DataParallel", "DistributedDataParallel"]


@register("dp_scatter")
def _dp_scatter(x, dist=None, dim=0):
    """Inside the compiled graph: ``x`` split over the distribution's batch axes along ``dim``."""
    return jax.lax.with_sharding_constraint(x, dist.batch_sharding(x.ndim, dim))


def _distribution(device_ids, distribution, what):
    if distribution is not None:
        if device_ids is not None:
            raise ConfigError(f"{what}: expected device_ids or distribution, not both")
        return _fld.as_distribution(distribution, f"{what}: distribution")
    if device_ids is None:
        return _fld.DataParallel()
    devices = jax.devices()
    out = []
    for d in device_ids:
        if isinstance(d, jax.Device):
            out.append(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d < len(devices):
            out.append(devices[int(d)])
        else:
            raise ConfigError(f"{what}: device_ids expected indices in [0, {len(devices)}) of "
                              f"jax.devices() or jax devices, got {d!r}")
    return _fld.DataParallel(devices=out)


class DataParallel(Module):
    """``DataParallel(module, device_ids=None, output_device=None, dim=0)``: ``module`` with its
    parameters and buffers replicated on ``device_ids`` (indices into ``jax.devices()``, default
    all) and the tensor arguments of ``forward`` split over them along ``dim``.  The batch is
    the *global* batch.  ``distribution=`` (keyword) takes a
    ``functorch_lite.distributed.DataParallel`` / Mesh instead of ``device_ids``."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, *, distribution=None):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: module expected an nn.Module, got "
                            f"{type(module).__name__}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
            raise ConfigError(f"{type(self).__name__}: dim expected a non-negative int, got {dim!r}")
        self.module = module
        object.__setattr__(self, "dim", int(dim))
        object.__setattr__(self, "output_device", output_device)
        object.__setattr__(self, "distribution",
                           _distribution(device_ids, distribution, type(self).__name__))
        object.__setattr__(self, "device_ids", list(self.distribution.mesh.devices.flat))
        self._place_state()

    def extra_repr(self) -> str:
        return f"distribution={self.distribution!r}, dim={self.dim}"

    # ------------------------------------------------------------------ placement
    def _place_state(self):
        """Parameters and buffers (concrete leaves) not yet laid out as the distribution says
        (new module, ``load_state_dict``, ``.data =``) are placed: replicated, or FSDP-sharded."""
        dist = self.distribution
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            n = t._node
            if n.op is not None or n.value is None or not isinstance(n.value, (jax.Array, np.ndarray)):
                continue
            v = n.value
            target = dist.state_shardings(v)
            if isinstance(v, jax.Array) and v.sharding.is_equivalent_to(target, v.ndim):
                continue
            t._set_value(_fld._put(v, target))

    def _check(self, n, what):
        k = self.distribution.num_shards
        if n % k:
            lo, hi = (n // k) * k, (n // k + 1) * k
            raise ConfigError(
                f"{type(self).__name__}: {what} size {n} along dim {self.dim} is not divisible by "
                f"the {k} devices of {self.distribution!r}\nHint: use a batch size that is a "
                f"multiple of {k}, e.g. {f'{lo} or {hi}' if lo else hi} "
                f"(DataLoader(..., drop_last=True) drops a last partial batch)")

    def _scatter(self, t):
        if not isinstance(t, Tensor) or t.ndim <= self.dim:
            return t
        n = t._node
        dist, dim = self.distribution, self.dim
        if graph.is_functional():   # a traced torch.func / functional_call: annotate only
            return wrap(record("dp_scatter", [n], (("dist", dist), ("dim", dim))))
        self._check(int(t.shape[dim]), "input")
        if n.op is None and n.value is not None and not n.requires_grad:
            v = n.value
            if isinstance(v, jax.Array) and v.sharding.is_equivalent_to(
                    dist.batch_sharding(v.ndim, dim), v.ndim):
                return t
            return wrap(graph.leaf(self._global(v)))
        return self._lazy(t)

    def _lazy(self, t):
        """A lazy (or differentiated) input: the split becomes part of the compiled graph."""
        attrs = (("dist", self.distribution), ("dim", self.dim))
        return wrap(record("dp_scatter", [t._node], attrs, lazy=True))

    def _global(self, v):
        """The input array as a global array split over the devices (a global batch)."""
        return self.distribution.shard_batch(v, batch_dim=self.dim)

    def _tree_scatter(self, x):
        if isinstance(x, Tensor):
            return self._scatter(x)
        if isinstance(x, (tuple, list)):
            return type(x)(self._tree_scatter(a) for a in x)
        if isinstance(x, dict):
            return {k: self._tree_scatter(v) for k, v in x.items()}
        return x

    def global_batch(self, *tensors):
        """``tensors`` split over the devices as ``forward`` splits its inputs: for the targets
        that meet the model's output in the loss (optional for ``DataParallel``, where they are
        global already; required for ``DistributedDataParallel`` in several processes, whose
        local targets must become the global ones: ``y = model.global_batch(y)``)."""
        out = tuple(self._scatter(t) for t in tensors)
        return out[0] if len(out) == 1 else out

    def forward(self, *inputs, **kwargs):
        if not graph.is_functional():
            self._place_state()
        inputs = self._tree_scatter(inputs)
        kwargs = self._tree_scatter(kwargs)
        return self.module(*inputs, **kwargs)


class DistributedDataParallel(DataParallel):
    """``DistributedDataParallel(module, device_ids=None, output_device=None, dim=0, ...)``:
    as :class:`DataParallel` over every device of every process (or ``device_ids``, indices
    into ``jax.devices()``), but ``forward`` takes this process's
    *local* part of the global batch (the processes' parts in process order make the global
    batch, built with ``jax.make_array_from_process_local_data``).  All processes must pass the
    same local batch size.  PyTorch's tuning arguments (``broadcast_buffers``,
    ``bucket_cap_mb``, ``find_unused_parameters``, ...) are accepted and have no effect: XLA
    schedules the all-reduce."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False, *,
                 distribution=None, **kwargs):
        if process_group is not None:
            raise ConfigError("DistributedDataParallel: process_group expected None (the job's "
                              "devices form one group)")
        if dim != 0:
            raise ConfigError(f"DistributedDataParallel: dim expected 0 (process-local parts are "
                              f"stacked along the first axis), got {dim!r}")
        super().__init__(module, device_ids, output_device, dim, distribution=distribution)

    def _check(self, n, what):
        k = self.distribution.local_num_shards
        if n % k:
            raise ConfigError(
                f"DistributedDataParallel: process-local {what} size {n} is not divisible by the "
                f"{k} devices of this process in {self.distribution!r}\nHint: use a local batch "
                f"size that is a multiple of {k}")

    def _global(self, v):
        out, _ = self.distribution.host_local_batch_to_global(v, pad=False)
        return out

    def _lazy(self, t):
        """A process-local part must be concrete to be assembled into the global batch."""
        if t._node.requires_grad:
            raise ConfigError("DistributedDataParallel: inputs that require grad are not "
                              "supported (process-local parts are assembled on the host)\n"
                              "Hint: pass the batch as it comes from the DataLoader")
        return wrap(graph.leaf(self._global(t._value())))
