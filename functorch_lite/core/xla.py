"""XLA compiler options for the hot paths, chosen per backend and per model.

On XLA:CPU the installed jaxlib can hand dots and convolutions to its YNNPACK library
(``xla_cpu_experimental_ynn_fusion_type``).  Measured on the 2-core CI machine (jaxlib 0.10.2,
batch 128, ``benchmarks/results/conv_lowering.md``): the MNIST CNN's whole Adam train step runs
69.7 ms -> 34.4 ms (the 3x3 conv with 32 -> 64 channels: forward 6.0 -> 3.2 ms, kernel gradient
26.4 -> 6.0 ms, input gradient 6.3 -> 3.6 ms; the one-channel conv1's forward 0.9 -> 2.2 ms is
the one part that loses), while the dense-only MLP step runs 2.5 -> 2.9 ms (XLA's own Eigen
matmul is faster there).  So the option is given only to computations that
contain a convolution, and only on the CPU backend; GPU/TPU keep ``lax.conv`` as XLA lowers it.
``REDUCE`` stays in the list (it is in XLA's default): without it the bias gradients fall onto a
slow ``reduce-window`` rewrite.

Computations that run once (a model's init) are compiled with XLA's backend optimisations off
(``xla_backend_optimization_level=0``): the CNN's init compiles in 0.7 s instead of 3.2 s and
runs in 47 ms instead of 18 ms, with bit-identical parameters (the random bits are the same
integer arithmetic).  They also use XLA:CPU's older elemental loop emitters instead of its
MLIR fusion emitters (``xla_cpu_use_fusion_emitters=False``): the CNN's init (with Adam's
state) compiles in 0.34-0.41 s instead of 0.68-0.97 s, the same bits again.  The train steps
keep the fusion emitters: without them the CNN step compiles 0.4 s faster but runs 37.6 instead
of 36.0 ms (median of 60 alternating 10-step blocks), the MLP step 5.7 instead of 4.3 ms.
The options are probed once per process with a tiny computation (both sets together, ~10 ms).

Set ``FUNCTORCH_LITE_CPU_CONV_LIBRARY=0`` to compile everything with XLA's defaults.

On CPU, XLA allocates a computation's large buffers (the CNN step's temporaries, ~44 MB) with
``malloc`` on its worker threads, and glibc hands allocations that big back to the kernel when
they are freed, so every step faulted them in again: 10,700 page faults per MNIST CNN step
(batch 128), 37-42 ms.  :func:`tune_host_allocator` raises glibc's mmap and trim thresholds to
256 MB (``mallopt``), so freed buffers stay in the process and the next step reuses them:
~50 faults and 27.5-28.8 ms per step (the MLP, whose buffers are small, has no faults either
way).  The compiled hot paths (:func:`jit` on the CPU backend) apply it once per process.  It
is a process-wide allocator setting: up to 256 MB of freed memory per malloc arena stays
reserved instead of going back to the OS.  Set ``FUNCTORCH_LITE_CPU_MALLOC=0`` to leave the
allocator alone; it is also left alone where it is not glibc, or where you chose one already
(``MALLOC_*`` variables, ``GLIBC_TUNABLES`` with ``glibc.malloc``, or jemalloc / tcmalloc /
mimalloc in ``LD_PRELOAD``).

The thresholds cannot help a buffer over 64 MB that a worker thread allocates: glibc's thread
arenas grow in heaps of at most 64 MB, so it is mapped from the kernel and unmapped again on every
call whatever the thresholds.  XLA:CPU allocates a computation's results on its worker threads,
and the MNIST CNN's per-example gradients (batch 128) hold one of 205 MB (fc1's kernel, one per
example): ~50,000-65,000 page faults and 74-93 ms per call (2026-12-03, Intel Xeon, 2 cores).
``FUNCTORCH_LITE_CPU_MALLOC=one_arena`` also limits glibc to one arena (``M_ARENA_MAX=1``), so
every thread allocates from the main heap, where the thresholds keep freed memory: 0-4,500
faults and 48-50 ms per call.  It is not the default because the train steps pay for it: the
CNN's Adam step ran 26.2-28.0 instead of 22.9-23.7 ms (perf: threads waiting on the one arena's
lock in ``malloc``), ``fit`` 4267-4522 instead of 4869-4962 samples/s.  A thread picks its arena
at its first ``malloc``, so ``import functorch_lite`` applies this mode, before JAX starts
XLA:CPU's threads; imported after the first JAX computation, it warns that it came too late.
glibc's own ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (read at process start) puts such mappings
on transparent huge pages instead: the per-example call 50 ms with ~1,300 faults instead of
66-77 ms, the CNN's Adam step 20.0-21.0 instead of 19.4-19.9 ms (2026-12-04); it is left to you
(and, as any ``glibc.malloc`` tunable, it turns the thresholds above off).  So is JAX's
``jax_cpu_enable_async_dispatch=False``: computations then run on the calling thread, whose
allocations come from the main arena (the per-example call 42-43 ms with ~30 faults), but a
torch-style MLP loop no longer overlaps its Python with the computation (0.88-0.94x the
samples/s; README, Performance).

:func:`train_chunks` says into how many pieces a train step runs its batch (per-example
convolutional models on CPU: pieces of at least 32 examples, at most 4; measurements there).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import sys
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp

from .errors import ConfigError

__all__ = ["conv_compiler_options", "once_compiler_options", "uses_convolution",
           "compiler_options_for", "jit", "tune_host_allocator", "tune_host_allocator_at_import",
           "malloc_mode", "train_chunks", "splittable"]

_YNN = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
_ONCE = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": False}


def _compiles_with(options: dict) -> bool:
    """Whether this jaxlib's compiler accepts ``options``: one tiny computation, lowered from
    nothing (no eager op to dispatch first) and compiled with them."""
    try:
        jax.jit(lambda: jnp.ones((2, 2), jnp.float32) @ jnp.ones((2, 2), jnp.float32)
                ).lower().compile(options)
    except Exception:   # a jaxlib without the option: XLA's defaults
        return False
    return True


@functools.lru_cache(maxsize=None)
def _accepted(backend: str, which: str) -> bool:
    """Whether the CPU compiler accepts the options (probed once per process: both sets
    together first, ~10 ms, each set on its own only when that fails)."""
    if backend != "cpu" or (which == "conv" and
                            os.environ.get("FUNCTORCH_LITE_CPU_CONV_LIBRARY", "1") == "0"):
        return False
    if _both_accepted():
        return True
    return _compiles_with(_YNN if which == "conv" else _ONCE)


@functools.lru_cache(maxsize=None)
def _both_accepted() -> bool:
    return _compiles_with({**_YNN, **_ONCE})


def conv_compiler_options() -> dict[str, str] | None:
    """The compiler options of a computation with convolutions on the default backend, or
    ``None`` (XLA's defaults) where no better choice was measured."""
    return dict(_YNN) if _accepted(jax.default_backend(), "conv") else None


def once_compiler_options() -> dict[str, str] | None:
    """The compiler options of a computation that runs once (an init): fast to compile."""
    return dict(_ONCE) if _accepted(jax.default_backend(), "once") else None


def uses_convolution(module: Any) -> bool:
    """Whether a module tree (dataclass fields, sequences and dicts, walked recursively) holds a
    layer that says ``uses_convolution = True`` (Conv, ConvTranspose; a property for modules
    that wrap other code, as the Keras adapter's subclassed models)."""
    return _walk_any(module, lambda m: getattr(m, "uses_convolution", False) is True)


def _walk_any(module: Any, pred: Callable[[Any], bool]) -> bool:
    """Whether ``pred`` holds for a module of the tree (walked as :func:`uses_convolution`)."""
    seen: set[int] = set()

    def walk(m) -> bool:
        if id(m) in seen:
            return False
        seen.add(id(m))
        if pred(m):
            return True
        if isinstance(m, (list, tuple)):
            return any(walk(v) for v in m)
        if isinstance(m, dict):
            return any(walk(v) for v in m.values())
        if dataclasses.is_dataclass(m) and not isinstance(m, type):
            return any(walk(getattr(m, f.name)) for f in dataclasses.fields(m))
        return False
    return walk(module)


def splittable(module: Any) -> bool:
    """Whether a train step may run ``module``'s batch in pieces without changing the result:
    every layer says ``per_example`` and none draws randomness (see :func:`train_chunks`)."""
    return getattr(module, "per_example", False) is True and not _walk_any(
        module, lambda m: getattr(m, "needs_key", False) is True)


#: the examples per piece of a train step's batch on XLA:CPU (see :func:`train_chunks`)
CHUNK_EXAMPLES = 32
#: at most this many pieces: each one is its own copy of the forward and backward graph, and
#: compile time grows with them (MNIST CNN, compiling the step and two calls: whole 0.87-1.03 s,
#: 2 pieces 1.07-1.27 s, 4 pieces 1.31-1.45 s, 8 pieces 2.0 s, 2026-12-04), against the 2 s
#: asked of a first step.  4 pieces against 2 (MNIST CNN, batch 128, 3 epochs of 60,000
#: images, alternating processes, 2026-12-04): ``fit`` 7,271-7,326 against 6,285-6,852
#: samples/s (3 pairs), the Keras adapter 7,464-7,883 against 6,891-6,933 and the torch
#: adapter 6,325-6,832 against 5,980-6,667 (2 pairs each); the first step 1.40-1.44 s against
#: 1.08-1.12 s, the peak RSS 70-150 MB more.  (An earlier run of 8,192-image epochs had shown no
#: gain: 6,585-6,667 against 6,310-6,883; the step alone: ``benchmarks/step_variants.py``.)
MAX_CHUNKS = 4


def train_chunks(module: Any, batch_size: int) -> int:
    """Into how many equal pieces a train step runs a batch of ``batch_size`` examples of
    ``module`` (1: the whole batch at once).

    On XLA:CPU a convolutional network trains faster when its batch goes through the network
    in pieces, each piece its own forward and backward in the one compiled step (the loss is
    still the whole batch's, so the update is the same up to float rounding): each piece's
    activations stay in cache, and the two cores run the pieces' independent fusions side by
    side (not their convolutions: XLA:CPU runs those one after the other, each with the whole
    thread pool).
    Measured on the 2-core CI machine, MNIST CNN, Adam, one process, alternating 10-step
    blocks: batch 128 in 2 pieces 0.91x the step time, in 4 pieces 0.87x, in 8 1.30x (the
    step's buffers no longer fit the allocator's reuse); batch 64 in 2 pieces 0.92x; batch 256
    in 4 pieces 0.88x; a whole epoch in ``fit`` (6,400 examples, batch 128): 1.135x the
    samples/s in 2 pieces, 1.19x in 4.  The step as of 2026-12-04 (the pool's first-maximum
    index, XLA:CPU's library dots) gains less: the whole batch took 0.99-1.05x the time of 2
    pieces and 4 pieces 0.92-1.00x (six runs of ``benchmarks/step_variants.py``), while whole
    epochs of ``fit`` in 4 pieces ran at 1.06-1.17x the samples/s of 2 (:data:`MAX_CHUNKS`).
    Pieces of at least 32 examples, at most :data:`MAX_CHUNKS` of them (compile time).
    Convolution-free models are not split (the dense MLP's matmuls run best whole), nor is
    anything on other backends.

    Only where every example is computed on its own does splitting leave the result unchanged:
    the module must say ``per_example`` (no BatchNorm: its statistics are the whole batch's) and
    draw no randomness (a Dropout mask drawn per piece would differ from the whole batch's).
    ``FUNCTORCH_LITE_TRAIN_CHUNKS=n`` forces ``n`` pieces where the batch divides (``1``: never
    split); other backends and models are never split.
    """
    forced = os.environ.get("FUNCTORCH_LITE_TRAIN_CHUNKS")
    if forced is not None:
        try:
            n = int(forced)
            if n < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"FUNCTORCH_LITE_TRAIN_CHUNKS expected a positive int, got "
                             f"{forced!r}") from None
    elif (jax.default_backend() != "cpu" or not uses_convolution(module)
          or os.environ.get("FUNCTORCH_LITE_CPU_CONV_LIBRARY", "1") == "0"):
        return 1
    else:
        n = min(MAX_CHUNKS, batch_size // CHUNK_EXAMPLES)
    if n <= 1 or not splittable(module):
        return 1
    while n > 1 and batch_size % n:
        n -= 1
    return n


def compiler_options_for(module: Any) -> dict[str, str] | None:
    """The compiler options for computations over ``module``: the convolution library options
    when it has convolutions, else ``None``."""
    return conv_compiler_options() if uses_convolution(module) else None


#: glibc ``mallopt`` parameters (malloc.h) and the values measured above
_MALLOPT = {"M_TRIM_THRESHOLD": (-1, 256 << 20), "M_MMAP_THRESHOLD": (-3, 256 << 20)}
#: ``FUNCTORCH_LITE_CPU_MALLOC=one_arena`` adds this: every thread allocates from glibc's main
#: arena (see the module docstring)
_ONE_ARENA = {"M_ARENA_MAX": (-8, 1)}
_MALLOC_MODES = ("1", "0", "one_arena")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def malloc_mode(env=None) -> str:
    """``FUNCTORCH_LITE_CPU_MALLOC``: ``'1'`` (the default: the thresholds), ``'0'`` (leave
    glibc alone) or ``'one_arena'`` (the thresholds and one malloc arena)."""
    mode = (os.environ if env is None else env).get("FUNCTORCH_LITE_CPU_MALLOC", "1")
    if mode not in _MALLOC_MODES:
        raise ConfigError(f"FUNCTORCH_LITE_CPU_MALLOC expected one of {list(_MALLOC_MODES)}, "
                          f"got {mode!r}")
    return mode


def _user_chose_allocator(env) -> str | None:
    """Why the allocator is the user's to configure (None when it is not)."""
    if malloc_mode(env) == "0":
        return "FUNCTORCH_LITE_CPU_MALLOC=0"
    mine = sorted(k for k in env if k.startswith("MALLOC_"))
    if mine:
        return f"{mine[0]} is set"
    if "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets glibc.malloc"
    preload = env.get("LD_PRELOAD", "")
    for name in _OTHER_ALLOCATORS:
        if name in preload:
            return f"LD_PRELOAD has {name}"
    return None


def _glibc():
    """The process's C library when it is glibc (``mallopt`` and ``gnu_get_libc_version``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=None)
def tune_host_allocator() -> tuple[bool, str]:
    """Keep XLA:CPU's large freed buffers in the process (see the module docstring); once per
    process.  Returns ``(applied, why)``."""
    why = _user_chose_allocator(os.environ)
    if why is not None:
        return False, why
    libc = _glibc()
    if libc is None:
        return False, "not glibc"
    params = {**_MALLOPT, **(_ONE_ARENA if malloc_mode() == "one_arena" else {})}
    done = [name for name, (param, value) in params.items() if libc.mallopt(param, value) == 1]
    if len(done) != len(params):
        return False, f"mallopt accepted only {done}"
    return True, ", ".join(f"{k}={v >> 20} MB" if k in _MALLOPT else f"{k}={v}"
                           for k, (_, v) in params.items())


def tune_host_allocator_at_import() -> None:
    """``FUNCTORCH_LITE_CPU_MALLOC=one_arena`` has to reach glibc before JAX starts XLA:CPU's
    threads (a thread picks its arena at its first ``malloc``), so ``import functorch_lite``
    applies it; the default thresholds wait for the first compiled CPU call."""
    if malloc_mode() != "one_arena":
        return
    if _jax_backends_started():
        warnings.warn("FUNCTORCH_LITE_CPU_MALLOC=one_arena: JAX had already started its "
                      "backends when functorch_lite was imported, so the threads it started "
                      "keep their own malloc arenas; import functorch_lite before the first "
                      "JAX computation", RuntimeWarning, stacklevel=3)
    tune_host_allocator()


def _jax_backends_started() -> bool:
    from jax._src import xla_bridge
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started and started())


def jit(fn: Callable, *, convolutions: bool = False, once: bool = False, **kwargs):
    """``jax.jit(fn, **kwargs)``, with :func:`conv_compiler_options` when ``convolutions``, or
    :func:`once_compiler_options` when ``once`` (run once: compile fast); on the CPU backend it
    first applies :func:`tune_host_allocator` (once)."""
    if jax.default_backend() == "cpu":
        tune_host_allocator()
    opts = once_compiler_options() if once else conv_compiler_options() if convolutions else None
    return jax.jit(fn, compiler_options=opts, **kwargs) if opts else jax.jit(fn, **kwargs)
