"""``torch.distributed``'s process-group entry points over ``jax.distributed``.

    import functorch_lite.torch as torch
    torch.distributed.init_process_group()      # MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK
    model = torch.nn.parallel.DistributedDataParallel(Net())

``init_process_group`` joins the multi-process JAX job (``jax.distributed.initialize``, via
``functorch_lite.distributed.initialize_from_env``) with PyTorch's ``env://`` variables or
``init_method='tcp://host:port'`` plus ``world_size`` / ``rank``.  There is no ``backend`` to
choose: XLA's collectives (gloo between CPU processes) run inside the compiled step.  The
collective functions (``all_reduce``, ``broadcast``, ...) are not provided: gradients are
averaged by ``DistributedDataParallel``'s compiled step, not by calls in the loop.
"""
from __future__ import annotations

import os

import jax

from .. import distributed as _fld
from ..core.errors import ConfigError

__all__ = ["barrier", "destroy_process_group", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized"]


def is_available() -> bool:
    return True


def is_initialized() -> bool:
    return bool(jax.distributed.is_initialized())


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       **kwargs):
    """Join the job: the coordinator is ``init_method='tcp://host:port'`` or
    ``MASTER_ADDR``:``MASTER_PORT``; ``world_size`` / ``rank`` default to ``WORLD_SIZE`` /
    ``RANK``.  ``backend`` ('gloo', 'nccl', ...) is accepted and ignored."""
    env = os.environ
    if init_method in (None, "env://"):
        addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
        coordinator = f"{addr}:{port}" if addr and port else None
    elif isinstance(init_method, str) and init_method.startswith("tcp://"):
        coordinator = init_method[len("tcp://"):]
    else:
        raise ConfigError(f"init_process_group: init_method expected 'env://' or "
                          f"'tcp://host:port', got {init_method!r}")
    world = world_size if world_size != -1 else env.get("WORLD_SIZE")
    rk = rank if rank != -1 else env.get("RANK")
    missing = [name for name, v in (("MASTER_ADDR/MASTER_PORT (or init_method)", coordinator),
                                    ("WORLD_SIZE (or world_size)", world),
                                    ("RANK (or rank)", rk)) if v in (None, "")]
    if missing:
        raise ConfigError(f"init_process_group: {', '.join(missing)} not set")
    cfg = {_fld.ENV_COORDINATOR: coordinator, _fld.ENV_NUM_PROCESSES: str(world),
           _fld.ENV_PROCESS_ID: str(rk)}
    if timeout is not None:
        cfg[_fld.ENV_INIT_TIMEOUT] = str(int(getattr(timeout, "total_seconds", lambda: timeout)()))
    _fld.initialize_from_env(cfg)


def get_rank() -> int:
    return jax.process_index()


def get_world_size() -> int:
    return jax.process_count()


def barrier():
    """Wait until every process reaches this point."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("functorch_lite.torch.distributed.barrier")


def destroy_process_group():
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
