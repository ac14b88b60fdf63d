"""Process-wide settings for the processes that separate or train: CPU threads, and glibc's allocator.

Threads: torch and numpy's BLAS each keep a pool; two pools fighting over two cores run many times slower than one.

The allocator, set for big tensors: separation and training allocate and free the same large tensors over and over
(per segment, per step).

With glibc's defaults, blocks above a floating threshold (128 KB to 32 MB) are fresh mappings, handed back to the
kernel when freed, so each segment or step faults their pages in again and the kernel zeroes them; the floating
threshold also lets the heap fragment over a long file. Here every block comes from the heap (no mappings), the heap
keeps up to 512 MB free instead of trimming it and grows 256 MB at a time, so freed tensors are reused in place.
What each choice measured: docs/architecture.md, "Measured choices".

Called once by the processes that separate or train (the CLI, the batch workers, the trainer), never at import.
STEMDESK_ALLOCATOR=system in the environment leaves glibc's defaults (the benchmark's baseline).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import pathlib
import signal
import sys
from collections.abc import Callable

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
SETTINGS = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 512 << 20, M_TOP_PAD: 256 << 20}
# With parts of a network in bfloat16, blocks come in many more sizes, and a heap that serves every block fragments
# and grows with the song's length; blocks of 16 MB and more are mapped afresh again (docs/architecture.md).
REDUCED_PRECISION_SETTINGS = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 16 << 20}
PR_SET_PDEATHSIG = 1


def limit_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch and in numpy's BLAS alike."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _glibc(function: str) -> Callable[..., int] | None:
    """glibc's allocator ``function`` (mallopt, malloc_trim), or None where it does not apply (macOS, Windows, musl)
    or is not wanted (STEMDESK_ALLOCATOR=system)."""
    if not sys.platform.startswith("linux") or os.environ.get("STEMDESK_ALLOCATOR") == "system":
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def tune_allocator(settings: dict[int, int] | None = None) -> bool:
    """Apply SETTINGS (or ``settings``) with mallopt; returns False where that does not apply (macOS, Windows,
    musl) or is not wanted."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return all([bool(mallopt(option, value)) for option, value in (settings or SETTINGS).items()])


def tune_allocator_for_reduced_precision() -> bool:
    """Called when a model runs partly in bfloat16 on the CPU: REDUCED_PRECISION_SETTINGS over SETTINGS."""
    return tune_allocator(REDUCED_PRECISION_SETTINGS)


def trim_heap() -> bool:
    """Hand the heap's free memory back to the kernel (glibc's malloc_trim), between one model's work and the
    next's: the heap keeps up to 512 MB free for the tensors the same model allocates again (SETTINGS), but a split
    model after the separation allocates others, and grew the heap past 1 GB over a 3-minute song (1039 MB peak with
    the drum kit split, 954 MB trimmed first). False where that does not apply."""
    malloc_trim = _glibc("malloc_trim")
    return malloc_trim is not None and malloc_trim(0) >= 0


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(cpu_threads: int | None = None) -> int:
    """CPU threads for a separation nobody chose a number for: all but one (the interface, or whatever else runs,
    keeps a core), at most 8. Not torch's default of all of them: each of torch's parallel sections waits for the
    thread that shares a core with another job (docs/architecture.md, "Measured choices")."""
    if cpu_threads is None:
        cpu_threads = usable_cpus()
    return max(1, min(8, cpu_threads - 1))


def process_threads(cpu_threads: int | None = None, processes: int | None = None) -> int:
    """CPU threads for one of ``processes`` processes on this machine (torchrun's LOCAL_WORLD_SIZE by default):
    alone, `default_threads`; beside others, an equal share of the cores, so they do not oversubscribe them."""
    if processes is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if processes <= 1:
        return default_threads(cpu_threads)
    if cpu_threads is None:
        cpu_threads = usable_cpus()
    return max(1, cpu_threads // processes)


def interrupt(signum, frame) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C (raises KeyboardInterrupt), so writers remove their temporary
    files and a parent can stop its children on the way out: ``signal.signal(signal.SIGTERM, interrupt)``."""
    raise KeyboardInterrupt


def die_with_parent(parent: int) -> None:
    """In a child process, before its work: get SIGTERM when ``parent`` dies outright (kill -9), as if from a
    closed terminal, instead of working on for nobody (Linux's PR_SET_PDEATHSIG; elsewhere nothing). Exits at once
    if ``parent`` is already gone: it may have died before the child could watch it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


# /proc/cpuinfo flags of x86 CPUs that compute bfloat16 dot products in hardware.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """This CPU's bfloat16 dot-product instructions among BF16_CPU_FLAGS (empty where it has none or the platform
    does not say: only Linux's /proc/cpuinfo is read)."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)
