"""``keras.distribution``: Keras 3's data-parallel API over :mod:`functorch_lite.distributed`.

    import functorch_lite.keras as keras

    keras.distribution.set_distribution(keras.distribution.DataParallel())   # all devices
    model.fit(x, y, batch_size=128)      # the batch split over the devices, weights replicated

The names follow ``keras.distribution`` of Keras 3 (``list_devices``, ``DeviceMesh``,
``DataParallel``, ``set_distribution``, ``distribution``, ``initialize``, ``Distribution.scope``).
A ``DataParallel`` here is a ``functorch_lite.distributed.DataParallel`` over the mesh's first
axis (Keras' ``batch_dim_name``); nothing of its own communicates: ``fit`` / ``evaluate`` /
``predict`` / ``train_on_batch`` / ``test_on_batch`` read the current distribution and run the
same compiled step with the batch sharded over that axis and the weights and optimizer state
replicated, and XLA inserts the gradient all-reduce.  ``batch_size`` is the global batch size
and must be a multiple of the device count; a last partial batch is padded with zero-weight
rows (see ``docs/distributed.md``).  Not provided: ``ModelParallel``, ``LayoutMap``,
``TensorLayout`` (FSDP-style sharding: ``functorch_lite.distributed.DataParallel(param_axis=)``,
which ``set_distribution`` also accepts).
"""
from __future__ import annotations

import contextlib
import os

import jax
import numpy as np

from ..core.errors import ConfigError
from .. import distributed as _fld

__all__ = ["DEFAULT_BATCH_DIM_NAME", "DataParallel", "DeviceMesh", "Distribution", "distribution",
           "initialize", "list_devices", "set_distribution"]

DEFAULT_BATCH_DIM_NAME = "batch"
_GLOBAL = {"distribution": None}


def _device_name(d) -> str:
    return f"{d.platform}:{d.id}"


def list_devices(device_type=None):
    """The devices of the job (every process's) as ``'cpu:0'``-style strings, as Keras 3 on JAX.
    ``device_type`` ``'cpu'``, ``'gpu'`` or ``'tpu'``; default: JAX's default backend."""
    if device_type is not None and str(device_type).lower() not in ("cpu", "gpu", "tpu"):
        raise ConfigError(f"list_devices: device_type expected 'cpu', 'gpu' or 'tpu', got "
                          f"{device_type!r}")
    devices = jax.devices(str(device_type).lower()) if device_type else jax.devices()
    return [_device_name(d) for d in devices]


def _to_jax_device(d):
    if isinstance(d, jax.Device):
        return d
    if isinstance(d, str):
        by_name = {_device_name(x): x for x in jax.devices()}
        key = d.lower()
        if ":" not in key:
            key += ":0"
        if key in by_name:
            return by_name[key]
        raise ConfigError(f"DeviceMesh: device {d!r} expected one of {sorted(by_name)}")
    raise ConfigError(f"DeviceMesh: devices expected jax devices or names from list_devices(), "
                      f"got {type(d).__name__} {d!r}")


class DeviceMesh:
    """``DeviceMesh(shape, axis_names, devices=None)``: a named grid of devices (a
    ``jax.sharding.Mesh``, ``.backend_mesh``).  ``devices`` are names from ``list_devices()`` or
    jax devices; default: all of them."""

    def __init__(self, shape, axis_names, devices=None):
        if not shape or not axis_names:
            raise ConfigError(f"DeviceMesh: shape and axis_names expected non-empty, got "
                              f"shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ConfigError(f"DeviceMesh: shape and axis_names expected the same length, got "
                              f"shape={shape}, axis_names={axis_names}")
        devices = list_devices() if devices is None else devices
        flat = [_to_jax_device(d) for d in np.asarray(devices, dtype=object).ravel()]
        if int(np.prod(shape)) != len(flat):
            raise ConfigError(f"DeviceMesh: shape {tuple(shape)} expected {int(np.prod(shape))} "
                              f"devices, got {len(flat)}")
        self._shape, self._axis_names = tuple(shape), tuple(axis_names)
        self._devices = np.array(flat, dtype=object).reshape(self._shape)
        self.backend_mesh = jax.sharding.Mesh(self._devices, self._axis_names)

    @property
    def shape(self):
        return self._shape

    @property
    def axis_names(self):
        return self._axis_names

    @property
    def devices(self):
        return self._devices

    def __repr__(self):
        return f"<DeviceMesh shape={self.shape}, axis_names={list(self.axis_names)}>"


class Distribution:
    """Base class: a device mesh and ``scope()``, a context in which it is the current one."""

    def __init__(self, device_mesh):
        self._device_mesh = device_mesh

    @property
    def device_mesh(self):
        return self._device_mesh

    @contextlib.contextmanager
    def scope(self):
        """Make this the current distribution inside the ``with`` block."""
        old = distribution()
        set_distribution(self)
        try:
            yield
        finally:
            set_distribution(old)

    def __repr__(self):
        return f"<{type(self).__name__} device_mesh={self.device_mesh}>"


class DataParallel(Distribution):
    """``DataParallel(device_mesh=None, devices=None)``: the batch split over the first axis of
    ``device_mesh`` (or a 1-D mesh over ``devices``, default every device), the weights and the
    optimizer state replicated.  ``auto_shard_dataset`` is accepted: arrays given to ``fit`` are
    the global dataset in every process, and iterables of batches yield process-local parts
    (``functorch_lite.distributed.process_slice``)."""

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None and devices is not None:
            raise ConfigError("DataParallel: expected device_mesh or devices, not both")
        if device_mesh is not None:
            if not isinstance(device_mesh, DeviceMesh):
                raise ConfigError(f"DataParallel: device_mesh expected a keras.distribution."
                                  f"DeviceMesh, got {type(device_mesh).__name__}")
        else:
            devs = list_devices() if devices is None else list(np.asarray(devices, dtype=object).ravel())
            device_mesh = DeviceMesh((len(devs),), [DEFAULT_BATCH_DIM_NAME], devs)
        super().__init__(device_mesh)
        self._batch_dim_name = device_mesh.axis_names[0]
        self._auto_shard_dataset = auto_shard_dataset
        self._fl = _fld.DataParallel(device_mesh.backend_mesh, axis=self._batch_dim_name)

    @property
    def batch_dim_name(self) -> str:
        return self._batch_dim_name

    @property
    def functorch_distribution(self) -> _fld.DataParallel:
        """The ``functorch_lite.distributed.DataParallel`` the trainer runs with."""
        return self._fl

    def get_data_layout(self, data_shape):
        """The ``NamedSharding`` of a batch of shape ``data_shape`` (split on axis 0)."""
        return self._fl.batch_sharding(len(data_shape))

    def get_variable_layout(self, variable):
        """Weights are replicated: ``NamedSharding(mesh, P())``."""
        return self._fl.replicated


def set_distribution(value):
    """Make ``value`` (a ``DataParallel``, a ``functorch_lite.distributed.DataParallel``, or
    ``None`` for single-device) the distribution ``fit`` / ``evaluate`` / ``predict`` use."""
    if value is not None and not isinstance(value, (Distribution, _fld.DataParallel)):
        raise ConfigError(f"set_distribution: expected a keras.distribution.DataParallel, a "
                          f"functorch_lite.distributed.DataParallel or None, got "
                          f"{type(value).__name__} {value!r}")
    _GLOBAL["distribution"] = value


def distribution():
    """The current distribution (``None``: single device)."""
    return _GLOBAL["distribution"]


def _current():
    """The current distribution as a ``functorch_lite.distributed.DataParallel`` (or None)."""
    d = _GLOBAL["distribution"]
    if d is None or isinstance(d, _fld.DataParallel):
        return d
    fl = getattr(d, "functorch_distribution", None)
    if fl is None:
        raise ConfigError(f"fit: distribution {d!r} is not supported; expected a "
                          f"keras.distribution.DataParallel")
    return fl


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Join a multi-process job (Keras 3's ``keras.distribution.initialize``), before anything
    touches the devices: ``jax.distributed.initialize`` with the coordinator (the first of the
    comma-separated ``job_addresses``), ``num_processes`` and ``process_id``; each defaults to
    ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID``, and with none
    of them JAX's own cluster detection runs (Slurm, Open MPI, Cloud TPU, ...)."""
    env = os.environ
    if job_addresses is None:
        job_addresses = env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    if num_processes is None and env.get("KERAS_DISTRIBUTION_NUM_PROCESSES"):
        num_processes = env["KERAS_DISTRIBUTION_NUM_PROCESSES"]
    if process_id is None and env.get("KERAS_DISTRIBUTION_PROCESS_ID"):
        process_id = env["KERAS_DISTRIBUTION_PROCESS_ID"]
    if job_addresses is None and num_processes is None and process_id is None:
        return _fld.initialize_from_env({})
    given = {"job_addresses": job_addresses, "num_processes": num_processes,
             "process_id": process_id}
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ConfigError(f"initialize: {', '.join(missing)} missing (set "
                          f"{', '.join('KERAS_DISTRIBUTION_' + k.upper() for k in missing)} or "
                          f"pass them)\nHint: pass job_addresses, num_processes and process_id "
                          f"together")
    coordinator = job_addresses.split(",")[0].strip()
    return _fld.initialize_from_env({
        _fld.ENV_COORDINATOR: coordinator,
        _fld.ENV_NUM_PROCESSES: str(num_processes), _fld.ENV_PROCESS_ID: str(process_id)})
