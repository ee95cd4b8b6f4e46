"""Keep freed host memory in the process instead of returning it to the OS.

A CPU decode step allocates and frees megabyte-sized tensors (logits,
probabilities, gathered K/V). glibc serves each one from fresh pages (above
its mmap threshold, or after trimming the heap), and faulting those pages in
cost more than the arithmetic: about 9 ms of a 44 ms step for 16 samples on
this project's CPU. Raising the thresholds lets freed blocks be reused. It is
what jemalloc or tcmalloc under `LD_PRELOAD` do for CPU inference, without
the extra library; it changes only the allocator's tuning, never results.
It is process-wide, so the application (the `hive` CLI, a benchmark) calls
it, not the engine.
"""

from __future__ import annotations

import ctypes
import platform
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 512 * 2**20


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for reuse; False where the C library is not glibc."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
