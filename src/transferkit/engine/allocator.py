"""The CPU memory allocator: which one runs, and glibc's settings for training.

Training on a CPU frees and re-allocates the same large activation buffers at every step. With glibc's
defaults, every buffer above the mmap threshold (at most 32 MiB: EfficientNet-Lite0's first activations at
224 px and batch 32 are 50 MiB) is a fresh ``mmap`` that is unmapped on ``free``, so each step faults its
activations back in page by page: a third to a half of the CPU time goes to the kernel. tcmalloc keeps freed
memory instead and removes that time, but it has to be preloaded before the process starts
(``torch.backends.xeon.run_cpu`` re-launches the program for that). glibc can keep freed memory too, from
inside the running process: :func:`keep_freed_memory` serves large blocks from the heap (``M_MMAP_MAX = 0``)
and stops returning the heap's free top to the OS after each ``free`` (a high ``M_TRIM_THRESHOLD``). It runs
when ``transferkit.engine`` is imported, so the command line and the Python API both get it, with nothing to
install; ``TRANSFERKIT_MALLOC=default`` leaves glibc as it is. The measurements are in BENCHMARKS.md
("Fine-tuning on real photos").
"""
from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Free heap memory above this is returned to the OS by free() itself (glibc's default is 128 KiB, raised
# dynamically to 64 MiB at most): large enough that training's per-step churn stays in the process.
TRIM_THRESHOLD_BYTES = 1 << 30

_STATE = {"configured": None}


def allocator_name() -> str:
    """'tcmalloc', 'jemalloc', 'mimalloc' when one is loaded into this process (preloaded), else 'glibc' or
    'system'; with ', kept' appended when :func:`keep_freed_memory` configured glibc."""
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:
        maps = ""
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return name
    if _glibc() is None:
        return "system"
    return "glibc, kept" if _STATE["configured"] else "glibc"


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (present on glibc only, not on musl)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Configure glibc so that a training loop's freed activations stay in the process (see the module text).

    A no-op (returns False) when another allocator is preloaded, off glibc, or with
    ``TRANSFERKIT_MALLOC=default``. Idempotent."""
    if _STATE["configured"] is not None:
        return _STATE["configured"]
    ok = False
    libc = _glibc()
    if (libc is not None and os.environ.get("TRANSFERKIT_MALLOC", "keep") != "default"
            and allocator_name() == "glibc"):
        ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    _STATE["configured"] = ok
    return ok


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``), unless glibc keeps them.

    With glibc's defaults the resident memory seen between epochs creeps up to the in-epoch peak and wanders
    (EfficientNet-Lite0, batch 32: 2.2-2.6 GiB at epoch ends) while the live tensors stay flat (1.1 GiB):
    allocator caching, not a leak (benchmarks/sections/reliability.md), and trimming made it visible as such.
    Once :func:`keep_freed_memory` has configured glibc (the default), a trim would only hand back pages that
    the next epoch faults in again (0.87x against 1.00x the bare loop's speed), so it is skipped."""
    libc = _glibc()
    if libc is not None and not _STATE["configured"]:
        libc.malloc_trim(0)
