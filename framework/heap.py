"""Keep freed memory in the process instead of giving it back to the kernel at every free.

glibc serves each allocation above its mmap threshold (128 KiB, adapting up to 32 MiB) with
a fresh ``mmap`` and unmaps it when freed. A training or inference step of a convolutional
network on the CPU allocates and frees activations of tens of MiB each, so every step faults
in and zeroes the same pages again. Measured on the 2-core machine with
``benchmarks/heap.py`` (EfficientNet-Lite0 at its native size, batch 32, 2 threads, 3 training
steps and 3 forward passes): 13-18.5 s of kernel CPU time in 23-28 s of wall time (3.2-4.3 M
page faults). With large allocations served from the heap and freed memory kept (up to
``TRIM_THRESHOLD`` at its top), the same work took 14.6-14.9 s with 0.3-0.5 s in the kernel,
for 13-14% more peak resident memory (docs/performance.md).

Hand-written because no library sets this. It is two ``mallopt`` calls through ctypes. glibc's
environment variables for the same options (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``)
take effect only when set before the process starts, which a command cannot do for itself.
Only glibc has these options; elsewhere (macOS, Windows, musl) nothing changes.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free memory at the top of the heap
OPT_OUT = "TLF_MALLOC"  # TLF_MALLOC=default leaves the C library's behaviour as it is


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc); True if applied.

    ``tlf`` commands call it at start; a program that uses tlf as a library may call it once
    (it changes the whole process's allocator)."""
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT) == "default":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl's mallopt accepts and ignores these
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
