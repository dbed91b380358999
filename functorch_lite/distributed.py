"""Data-parallel (and optional FSDP-style) training on JAX's own SPMD engine.

Nothing here communicates by itself: a ``DataParallel`` only says *where* arrays live (a
``jax.sharding.Mesh``, ``NamedSharding`` s over it) and XLA's partitioner inserts the collectives
(the gradient all-reduce, FSDP's all-gathers / reduce-scatters) into the one compiled step.

    import functorch_lite as fl
    from functorch_lite import distributed as fld

    dist = fld.DataParallel()                      # every device of the job on one 'data' axis
    fl.fit(model, "cross_entropy", "adam", (x, y), batch_size=128, distribution=dist)

Semantics (single-device equivalence): the training program is the single-device program on the
*global* batch; the batch is split over the data axis (or axes), params and optimizer state are
replicated (or FSDP-sharded over a second axis), and the result equals single-device training on
the same global batches up to float summation order.

Batch sizes.  ``batch_size`` must be divisible by ``dist.num_shards`` (the product of the batch
axes' sizes): otherwise ``fit`` raises a ``ConfigError`` before training.  A batch whose size is
not divisible (the last partial batch of an epoch, an odd batch from an iterable) is padded with
copies of its last row carrying ``sample_weight`` 0; the step's loss and metrics are
``sum(w * l) / sum(w)``, so the padded rows change nothing, except in layers that compute batch
statistics (``BatchNorm`` in training mode sees the padded rows).

Multi-host: call :func:`initialize_from_env` first (see ``docs/distributed.md``).  Arrays given to
``fit`` are the *global* dataset and must be the same on every process (each process transfers
only the slices its own devices hold); batches from an iterable are *process-local*: each process
yields its own part of the global batch (all processes the same local size and number of
batches), see :func:`process_slice` and :func:`host_local_batch_to_global`.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from .core import xla
from .core.errors import ConfigError

__all__ = ["DATA_AXIS", "MODEL_AXIS", "DataParallel", "as_distribution", "data_parallel_mesh",
           "fsdp_shardings", "host_local_batch_to_global", "initialize_from_env", "make_mesh",
           "pad_batch", "process_slice", "replicate", "shard_batch", "to_host"]

DATA_AXIS = "data"
MODEL_AXIS = "model"

ENV_COORDINATOR = "FL_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "FL_NUM_PROCESSES"
ENV_PROCESS_ID = "FL_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "FL_LOCAL_DEVICE_IDS"
ENV_INIT_TIMEOUT = "FL_INIT_TIMEOUT"


# ------------------------------------------------------------------------------------ meshes
def _device_list(devices, what):
    if devices is None:
        return list(jax.devices())
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        avail = jax.devices()
        if not 1 <= devices <= len(avail):
            raise ConfigError(f"{what}: devices={devices} expected a count in [1, {len(avail)}] "
                              f"(this job has {len(avail)} devices)")
        return list(avail[:devices])
    devices = list(np.asarray(devices, dtype=object).ravel()) if not isinstance(devices, (list, tuple)) \
        else list(devices)
    if not devices:
        raise ConfigError(f"{what}: devices expected at least one device, got an empty sequence")
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad:
        raise ConfigError(f"{what}: devices expected jax.Device objects (e.g. jax.devices()), got "
                          f"{type(bad[0]).__name__} {bad[0]!r}")
    if len(set(devices)) != len(devices):
        raise ConfigError(f"{what}: devices contains duplicates: {devices}")
    return devices


def _auto(mesh: Mesh) -> Mesh:
    """The same mesh with Auto axis types (GSPMD propagation; jax.make_mesh defaults to Explicit)."""
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def data_parallel_mesh(devices=None, axis: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of the job, every process's, in
    ``jax.devices()`` order, so each process's devices are contiguous) with one axis ``axis``.
    ``devices`` may also be a count: the first ``n`` devices."""
    devs = _device_list(devices, "data_parallel_mesh")
    return Mesh(np.array(devs, dtype=object), (axis,), axis_types=(AxisType.Auto,))


def make_mesh(data: int | None = None, model: int = 1, *, devices=None,
              axis_names: tuple[str, str] = (DATA_AXIS, MODEL_AXIS)) -> Mesh:
    """A 2-D ``(data, model)`` mesh for data parallelism with FSDP-style parameter sharding over
    the second axis.  ``data=None`` takes all remaining devices."""
    devs = _device_list(devices, "make_mesh")
    if isinstance(model, bool) or not isinstance(model, (int, np.integer)) or model < 1:
        raise ConfigError(f"make_mesh: model expected a positive int, got {model!r}")
    if data is None:
        data = len(devs) // model
    if data * model != len(devs) or data < 1:
        raise ConfigError(f"make_mesh: data x model = {data} x {model} = {data * model} expected to "
                          f"equal the number of devices, {len(devs)}")
    return Mesh(np.array(devs, dtype=object).reshape(data, model), tuple(axis_names),
                axis_types=(AxisType.Auto,) * 2)


# ------------------------------------------------------------------------------- placement
def _to_numpy(x):
    """A host copy of a leaf (typed PRNG keys as their raw key data)."""
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def _put(x, sharding: NamedSharding):
    """``device_put`` that also works when ``sharding`` spans other processes' devices: then every
    process must hold the same value of ``x`` and transfers only its own shards."""
    if sharding.is_fully_addressable or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = jax.device_put(_to_numpy(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)


def _leaf_shape(x):
    return tuple(getattr(x, "shape", np.shape(x)))


def fsdp_shardings(tree, mesh: Mesh, axis: str = MODEL_AXIS, *, min_size: int = 1024):
    """A tree of ``NamedSharding`` for ``tree`` (arrays, ``ShapeDtypeStruct`` or tracers): each
    leaf with at least ``min_size`` elements is split over mesh axis ``axis`` along its largest
    dimension divisible by that axis' size (the first such, on ties); other leaves are
    replicated.  Use it for params, optimizer state, or a whole TrainState."""
    if axis not in mesh.axis_names:
        raise ConfigError(f"fsdp_shardings: axis {axis!r} is not an axis of the mesh; expected one "
                          f"of {list(mesh.axis_names)}")
    size = mesh.shape[axis]

    def one(x):
        shape = _leaf_shape(x)
        if size > 1 and shape and math.prod(shape) >= min_size:
            for d in sorted(range(len(shape)), key=lambda d: (-shape[d], d)):
                if shape[d] % size == 0:
                    spec = [None] * len(shape)
                    spec[d] = axis
                    return NamedSharding(mesh, P(*spec))
        return NamedSharding(mesh, P())
    return jax.tree_util.tree_map(one, tree)


def replicate(tree, mesh):
    """Every leaf of ``tree`` replicated on every device of ``mesh`` (a Mesh or DataParallel)."""
    mesh = mesh.mesh if isinstance(mesh, DataParallel) else mesh
    s = NamedSharding(mesh, P())
    return jax.tree_util.tree_map(lambda x: _put(x, s), tree)


def to_host(tree):
    """Numpy copies of a tree of (possibly sharded, possibly multi-process) arrays: global arrays
    not addressable from this process are all-gathered first."""
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return _to_numpy(x)
    return jax.tree_util.tree_map(one, tree)


# -------------------------------------------------------------------------------- batches
def _batch_tuple(batch, what):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ConfigError(f"{what}: expected a batch (x, y) or (x, y, sample_weight), got "
                          f"{type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
    n = {_leaf_shape(a)[0] if _leaf_shape(a) else None for a in batch}
    if len(n) != 1 or None in n:
        raise ConfigError(f"{what}: x, y (and sample_weight) must have the same leading batch size, "
                          f"got {[_leaf_shape(a) for a in batch]}")
    return tuple(batch)


def pad_batch(batch, multiple: int):
    """``(batch, n)``: ``batch`` ((x, y) or (x, y, w), host arrays) padded to a multiple of
    ``multiple`` rows with copies of its last row weighted 0, as ``(x, y, w)``; ``n`` is the
    number of real rows.  A batch already of the right size is returned unchanged."""
    batch = _batch_tuple(batch, "pad_batch")
    n = _leaf_shape(batch[0])[0]
    pad = (-n) % multiple
    if pad == 0:
        return batch, n
    arrays = [np.asarray(a) if not isinstance(a, np.ndarray) else a for a in batch]
    if len(arrays) == 2:
        arrays.append(np.ones((n,), np.float32))
    x, y, w = (np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays)
    w[n:] = 0
    return (x, y, w), n


def process_slice(n: int, process_index: int | None = None, process_count: int | None = None) -> slice:
    """The contiguous share of ``n`` examples that process ``process_index`` (default
    ``jax.process_index()``) of ``process_count`` (default ``jax.process_count()``) loads:
    ``n // process_count`` rows each; the last ``n % process_count`` rows are dropped so that
    every process has the same number of rows (``make_array_from_process_local_data`` needs it).
    """
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    for name, v in (("n", n), ("process_count", pc), ("process_index", pi)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"process_slice: {name} expected an int, got {v!r}")
    if pc < 1 or not 0 <= pi < pc:
        raise ConfigError(f"process_slice: process_index expected in [0, {pc}), got {pi} "
                          f"(process_count={pc})")
    if n < pc:
        raise ConfigError(f"process_slice: {n} examples cannot be split over {pc} processes")
    per = n // pc
    return slice(pi * per, (pi + 1) * per)


# --------------------------------------------------------------------------- DataParallel
class DataParallel:
    """Where a data-parallel step's arrays live: a mesh, the axis the batch is split over, and
    optionally a second axis over which params/optimizer state are sharded (FSDP-style).

    ``DataParallel()`` uses every device of the job; ``DataParallel(devices=jax.devices()[:2])``
    or ``DataParallel(devices=2)`` a subset; ``DataParallel(mesh)`` an existing mesh (its axis
    ``axis``, default ``'data'``, or its only axis).  With ``param_axis='model'`` on a 2-D mesh
    (:func:`make_mesh`) the batch is split over both axes and every TrainState leaf with at least
    ``min_shard_size`` elements is sharded over ``param_axis`` (:func:`fsdp_shardings`); XLA
    all-gathers params for the forward/backward and reduce-scatters the gradients.

    Equal by value (mesh, axes), so compiled steps can be cached per distribution.
    """

    def __init__(self, mesh: Mesh | None = None, *, devices=None, axis: str | None = None,
                 param_axis: str | None = None, min_shard_size: int = 1024):
        if mesh is not None and devices is not None:
            raise ConfigError("DataParallel: expected mesh or devices, not both")
        if mesh is None:
            mesh = data_parallel_mesh(devices, axis or DATA_AXIS)
        elif not isinstance(mesh, Mesh):
            raise ConfigError(f"DataParallel: mesh expected a jax.sharding.Mesh, got "
                              f"{type(mesh).__name__}")
        if axis is None:
            axis = DATA_AXIS if DATA_AXIS in mesh.axis_names or len(mesh.axis_names) != 1 \
                else mesh.axis_names[0]
        for name, a in (("axis", axis), ("param_axis", param_axis)):
            if a is not None and a not in mesh.axis_names:
                raise ConfigError(f"DataParallel: {name} {a!r} is not an axis of the mesh; expected "
                                  f"one of {list(mesh.axis_names)}")
        if param_axis == axis:
            raise ConfigError(f"DataParallel: param_axis must differ from the data axis, both are "
                              f"{axis!r}")
        self.mesh = _auto(mesh)
        self.axis = axis
        self.param_axis = param_axis
        self.min_shard_size = int(min_shard_size)

    # ------------------------------------------------------------------ identity
    def _key(self):
        return (self.mesh, self.axis, self.param_axis, self.min_shard_size)

    def __eq__(self, other):
        return isinstance(other, DataParallel) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        shape = dict(self.mesh.shape)
        extra = f", param_axis={self.param_axis!r}" if self.param_axis else ""
        return f"DataParallel(mesh={shape}, axis={self.axis!r}{extra})"

    # ------------------------------------------------------------------ facts
    @property
    def batch_axes(self) -> tuple[str, ...]:
        """The mesh axes the batch dimension is split over."""
        return (self.axis,) + ((self.param_axis,) if self.param_axis else ())

    @property
    def num_shards(self) -> int:
        """Into how many pieces a global batch is split (batch sizes must be multiples)."""
        return math.prod(self.mesh.shape[a] for a in self.batch_axes)

    @property
    def local_num_shards(self) -> int:
        """How many distinct batch pieces this process's devices hold (process-local batches
        must be multiples of it)."""
        local = sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)
        return max(1, self.num_shards * local // self.mesh.devices.size)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def batch_spec(self, ndim: int, batch_dim: int = 0) -> P:
        spec = [None] * ndim
        spec[batch_dim] = self.batch_axes if len(self.batch_axes) > 1 else self.axis
        return P(*spec)

    def batch_sharding(self, ndim: int, batch_dim: int = 0) -> NamedSharding:
        """The sharding of an array whose axis ``batch_dim`` is the (global) batch."""
        return NamedSharding(self.mesh, self.batch_spec(ndim, batch_dim))

    def state_shardings(self, tree):
        """Shardings for params / optimizer state / a whole TrainState: replicated, or FSDP over
        ``param_axis``.  Works on arrays, ShapeDtypeStructs and tracers."""
        if self.param_axis is None:
            s = self.replicated
            return jax.tree_util.tree_map(lambda _: s, tree)
        return fsdp_shardings(tree, self.mesh, self.param_axis, min_size=self.min_shard_size)

    def check_batch_size(self, n: int, what: str = "batch"):
        """Raise a ConfigError unless ``n`` is a multiple of ``num_shards``."""
        k = self.num_shards
        if n % k:
            lo, hi = (n // k) * k, (n // k + 1) * k
            sugg = f"{lo} or {hi}" if lo else f"{hi}"
            raise ConfigError(
                f"{what}: batch size {n} is not divisible by the {k} data-parallel shards of "
                f"{self!r}\nHint: use a multiple of {k}, e.g. {sugg}")

    # ------------------------------------------------------------------ placement
    def put_state(self, tree):
        """``tree`` (params, optimizer state or a TrainState) placed as ``state_shardings``."""
        shardings = self.state_shardings(tree)
        return jax.tree_util.tree_map(_put, tree, shardings)

    def replicate(self, tree):
        return replicate(tree, self.mesh)

    def shard_batch(self, batch, *, batch_dim: int = 0):
        """A tree of *global* arrays (the same on every process) split over the batch axes along
        ``batch_dim``; each process transfers only its own devices' slices.  The batch size must
        be divisible by ``num_shards`` (pad first with :func:`pad_batch`)."""
        def one(a):
            if isinstance(a, jax.Array) and not a.is_fully_addressable:
                return jax.device_put(a, self.batch_sharding(a.ndim, batch_dim))
            a = a if isinstance(a, jax.Array) else np.asarray(a)
            self.check_batch_size(a.shape[batch_dim], "shard_batch")
            return _put(a, self.batch_sharding(a.ndim, batch_dim))
        return jax.tree_util.tree_map(one, batch)

    def host_local_batch_to_global(self, local_batch, *, pad: bool = True):
        """``(global_batch, n_real)`` from this process's part of a global batch: the global
        batch is the processes' parts concatenated in process order (in one process, the batch
        itself).  With ``pad`` a part not divisible by ``local_num_shards`` is padded with
        weight-0 rows first (every process must pass the same local size).  Needs a mesh whose
        batch shards are contiguous per process, as ``data_parallel_mesh`` / ``make_mesh`` over
        ``jax.devices()`` in its order give; arrays passed to ``fit`` have no such constraint."""
        leaves = local_batch if isinstance(local_batch, (tuple, list)) else (local_batch,)
        if all(isinstance(a, jax.Array) and not a.is_fully_addressable for a in leaves):
            self.check_batch_size(leaves[0].shape[0], "host_local_batch_to_global")
            return self.shard_batch(tuple(leaves)), leaves[0].shape[0]
        local = tuple(_to_numpy(a) for a in leaves)
        n = local[0].shape[0]
        if pad and isinstance(local_batch, (tuple, list)):
            local, n = pad_batch(local, self.local_num_shards)
        k = self.local_num_shards
        if local[0].shape[0] % k:
            raise ConfigError(f"host_local_batch_to_global: process-local batch size "
                              f"{local[0].shape[0]} is not divisible by the {k} batch shards this "
                              f"process holds\nHint: use a multiple of {k} or pad=True")
        out = tuple(jax.make_array_from_process_local_data(self.batch_sharding(a.ndim), a)
                    for a in local)
        return (out if isinstance(local_batch, (tuple, list)) else out[0]), n * jax.process_count()

    def constrain_batch(self, batch, *, batch_dim: int = 0):
        """Inside ``jit``: annotate the batch as split over the batch axes."""
        return jax.tree_util.tree_map(
            lambda a: jax.lax.with_sharding_constraint(a, self.batch_sharding(a.ndim, batch_dim)),
            batch)

    def constrain_state(self, tree):
        """Inside ``jit``: annotate params / optimizer state / TrainState with state_shardings."""
        return jax.lax.with_sharding_constraint(tree, self.state_shardings(tree))

    # ------------------------------------------------------------------ fit's helpers
    def epoch_batches(self, arrays, order, steps: int, batch_size: int):
        """The epoch as ``(steps, batch_size, ...)`` arrays sharded on axis 1, built from host
        ``arrays`` and the example ``order``; each process gathers only its own slices."""
        idx = np.asarray(order[: steps * batch_size]).reshape(steps, batch_size)

        def one(a):
            shape = (steps, batch_size) + a.shape[1:]
            return jax.make_array_from_callback(shape, self.batch_sharding(len(shape), 1),
                                                lambda i: a[idx[i[0], i[1]]][(slice(None),) * 2 + tuple(i[2:])])
        return tuple(one(a) for a in arrays)

    def global_batch(self, arrays):
        """``(batch, n_real)``: global host arrays (same on every process) padded with weight-0
        rows to a multiple of ``num_shards`` and sharded."""
        batch, n = pad_batch(arrays, self.num_shards)
        return self.shard_batch(batch), n

    def steps(self, train_step) -> "ShardedSteps":
        """The data-parallel versions of a ``make_train_step`` step (see :class:`ShardedSteps`)."""
        return ShardedSteps(self, train_step)


class ShardedSteps:
    """``train_step.raw`` compiled for a DataParallel: the batch constrained to the batch axes,
    the new TrainState constrained to ``state_shardings`` (so donation reuses the buffers).

    ``step(ts, batch)``, ``indexed(ts, xs, i)`` (batch ``i`` of a ``(steps, batch, ...)`` epoch
    sliced inside the jit) and ``multi(ts, xs, i, k)`` (``k`` steps in one ``lax.scan``) mirror
    ``Trainer``'s single-device steps; compiles are counted by ``train_step.compiles``.
    """

    def __init__(self, dist: DataParallel, train_step):
        self.dist, self.compiles = dist, train_step.compiles
        raw = train_step.raw

        def step(ts, batch):
            ts, logs = raw(ts, dist.constrain_batch(tuple(batch)))
            return dist.constrain_state(ts), logs

        def indexed(ts, xs, i):
            return step(ts, tuple(jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False) for a in xs))

        self._conv = getattr(train_step, "convolutions", False)
        self._step = xla.jit(step, convolutions=self._conv, donate_argnums=0)
        self._indexed = xla.jit(indexed, convolutions=self._conv, donate_argnums=0)
        self._indexed_raw = indexed
        self._multi = {}

    def step(self, ts, batch):
        return self._step(ts, batch)

    def indexed(self, ts, xs, i):
        return self._indexed(ts, xs, i)

    def multi(self, ts, xs, i, k):
        if k not in self._multi:
            one = self._indexed_raw
            self._multi[k] = xla.jit(
                lambda ts, xs, i: jax.lax.scan(lambda t, j: one(t, xs, j), ts, i + jnp.arange(k)),
                convolutions=self._conv, donate_argnums=0)
        return self._multi[k](ts, xs, i)


def as_distribution(x, what: str = "distribution") -> DataParallel | None:
    """``None`` -> None; a DataParallel as is; a Mesh -> ``DataParallel(mesh)``; a device count or
    a sequence of devices -> ``DataParallel(devices=...)``.  What ``fit(distribution=...)`` and the
    adapters accept."""
    if x is None or isinstance(x, DataParallel):
        return x
    if isinstance(x, Mesh):
        return DataParallel(x)
    if (isinstance(x, (int, np.integer)) and not isinstance(x, bool)) or \
            (isinstance(x, (list, tuple)) and all(isinstance(d, jax.Device) for d in x)):
        return DataParallel(devices=x)
    raise ConfigError(f"{what}: expected a DataParallel, a jax.sharding.Mesh, a sequence of "
                      f"jax devices or a device count, got {type(x).__name__} {x!r}")


def shard_batch(batch, dist, *, batch_dim: int = 0):
    """``batch`` (global arrays, the same on every process) split over ``dist``'s batch axes
    (``dist``: a DataParallel, Mesh, device count or device list)."""
    return as_distribution(dist, "shard_batch").shard_batch(batch, batch_dim=batch_dim)


def host_local_batch_to_global(local_batch, dist, *, pad: bool = True):
    """``(global_batch, n_real)`` from this process's part of the batch; see
    :meth:`DataParallel.host_local_batch_to_global`."""
    return as_distribution(dist, "host_local_batch_to_global").host_local_batch_to_global(
        local_batch, pad=pad)


# ---------------------------------------------------------------------------- multi-host
def _env_int(env, name):
    v = env.get(name)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"initialize_from_env: {name} expected an integer, got {v!r}") from None


def initialize_from_env(env: Mapping[str, str] | None = None, *, auto_detect: bool = True) -> bool:
    """Join a multi-process JAX job; returns whether this is a multi-process run.

    Reads ``FL_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``FL_NUM_PROCESSES``,
    ``FL_PROCESS_ID`` and optionally ``FL_LOCAL_DEVICE_IDS`` (comma-separated) and
    ``FL_INIT_TIMEOUT`` (seconds, default 300), and calls ``jax.distributed.initialize``.  With
    ``FL_NUM_PROCESSES=1`` nothing is initialised.  Without any ``FL_*`` variable JAX's own
    cluster detection runs (Slurm, Open MPI, Kubernetes, Cloud TPU, ``JAX_COORDINATOR_ADDRESS``);
    when it detects nothing this is a single-process run and ``False`` is returned.  Call it
    before anything else touches JAX's devices.
    """
    env = os.environ if env is None else env
    if jax.distributed.is_initialized():
        return True
    names = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
    given = [n for n in names if env.get(n)]
    if not given:
        if not auto_detect:
            return False
        try:
            jax.distributed.initialize()
        except ValueError:   # JAX found no cluster: it could not determine the coordinator etc.
            return False
        return True
    if len(given) != len(names):
        missing = [n for n in names if n not in given]
        raise ConfigError(f"initialize_from_env: {', '.join(given)} set but {', '.join(missing)} "
                          f"missing\nHint: set all of {', '.join(names)}")
    num, pid = _env_int(env, ENV_NUM_PROCESSES), _env_int(env, ENV_PROCESS_ID)
    if num < 1 or not 0 <= pid < num:
        raise ConfigError(f"initialize_from_env: {ENV_PROCESS_ID} expected in [0, {num}) with "
                          f"{ENV_NUM_PROCESSES}={num}, got {pid}")
    addr = env[ENV_COORDINATOR]
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"initialize_from_env: {ENV_COORDINATOR} expected host:port, got {addr!r}")
    if num == 1:
        return False
    kwargs: dict[str, Any] = {}
    if env.get(ENV_LOCAL_DEVICE_IDS):
        try:
            kwargs["local_device_ids"] = [int(s) for s in env[ENV_LOCAL_DEVICE_IDS].split(",")]
        except ValueError:
            raise ConfigError(f"initialize_from_env: {ENV_LOCAL_DEVICE_IDS} expected "
                              f"comma-separated integers, got {env[ENV_LOCAL_DEVICE_IDS]!r}") from None
    if env.get(ENV_INIT_TIMEOUT):
        kwargs["initialization_timeout"] = _env_int(env, ENV_INIT_TIMEOUT)
    jax.distributed.initialize(addr, num, pid, **kwargs)
    return True
