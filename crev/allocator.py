"""The C allocator's thresholds, set once the process has answered its first request.

Relaying a body, each read allocates and frees a few buffers of up to a few hundred KiB (the
socket's read, h11's buffer and event, httpx's chunk). glibc's malloc serves buffers over its
mmap threshold from fresh mappings, and gives the free top of a heap back to the kernel as
soon as a little lies free (both thresholds start at 128 KiB and move with what was freed), so
the next read faults the same pages in again and the kernel zeroes them: a fifth of crev's CPU
per relayed MiB (bench/README.md). Fixed thresholds keep buffers up to MMAP_THRESHOLD_BYTES in
the heap and the top of each heap until TRIM_THRESHOLD_BYTES lie free.

Each thread may get an arena (a heap) of its own, up to eight per core, and each keeps its free
top: with the thresholds alone, 16 concurrent pulls held 69 MiB at their peak instead of 47.
CPython allocates holding the GIL, so threads gain little from arenas of their own; one arena
bounds what stays free to TRIM_THRESHOLD_BYTES.

Set after the first answer, as `logging` is imported then: `ctypes` is a visible part of a cold
start. An allocator other than glibc's (musl's `mallopt` does nothing, macOS has none) and
thresholds set through the environment are left as they are.
"""

from __future__ import annotations

import os

# mallopt(3)'s parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1024 * 1024
TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024
ARENAS = 1
# Where the person running crev chose glibc's malloc settings themselves.
ALLOCATOR_ENVIRONMENT = (
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_ARENA_MAX",
)

_settled = False


def settle_thresholds() -> None:
    """Fix the allocator's mmap and trim thresholds and its number of arenas, once per
    process."""
    global _settled
    if _settled:
        return
    _settled = True
    if any(name in os.environ for name in ALLOCATOR_ENVIRONMENT):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    mallopt(M_ARENA_MAX, ARENAS)
