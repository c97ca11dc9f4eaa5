"""Giving the pages the C allocator holds free back to the operating system.

glibc's malloc returns freed memory to the system only from the top of its heap. A process
that keeps a bounded cache while its entries turn over (scoring's decoded states: every new
customer evicts one) frees blocks all through the heap while newer live ones sit above them,
so the free pages stay resident and the process grows with the stream, not with what it holds.
`malloc_trim(0)` hands back every whole free page, wherever it lies in the heap.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows opens no unnamed library
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_TRIM = _malloc_trim()


class FreedMemory:
    """Gives free heap pages back at most once every `every_s` seconds: a trim walks the whole
    heap (a few milliseconds for a few hundred MB), too much for every micro-batch."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None

    def release_if_due(self) -> bool:
        """Trim now unless the last trim was less than `every_s` ago; whether it trimmed."""
        now = self._clock()
        if _TRIM is None or (self._last is not None and now - self._last < self._every_s):
            return False
        self._last = now
        _TRIM()
        return True
