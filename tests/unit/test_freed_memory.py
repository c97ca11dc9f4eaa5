"""Freed heap pages go back to the operating system, at most once per interval."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from shared import memory
from shared.memory import FreedMemory

MIB = 2**20


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    not Path("/proc/self/statm").exists() or memory._TRIM is None,
    reason="resident size is read from /proc; the trim is glibc's",
)
def test_pages_freed_under_a_live_block_stay_resident_until_released() -> None:
    # 80 MiB of 4 KiB blocks, below the size malloc maps apart, so they share its heap, written
    # so their pages are resident; the last one stays alive above them, as a cached state does.
    blocks = [bytes([n % 251]) * 4096 for n in range(20_000)]
    live = blocks[-1]
    with_blocks = resident_bytes()
    del blocks
    # The heap cannot shrink under the live block: freeing alone gives almost nothing back.
    assert with_blocks - resident_bytes() < 20 * MIB
    before = resident_bytes()
    assert FreedMemory(every_s=60).release_if_due()
    assert before - resident_bytes() > 40 * MIB
    assert live[0] == 19_999 % 251


def test_a_release_is_skipped_until_the_interval_has_passed() -> None:
    now = [100.0]
    freed = FreedMemory(every_s=1.0, clock=lambda: now[0])
    assert freed.release_if_due()
    now[0] = 100.5
    assert not freed.release_if_due()
    now[0] = 101.0
    assert freed.release_if_due()


def test_a_c_library_that_cannot_be_opened_without_a_name_leaves_the_trim_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On Windows `ctypes.CDLL(None)` raises TypeError: scoring must still import and run there.
    def no_unnamed_library(name: object, *args: object, **kwargs: object) -> ctypes.CDLL:
        raise TypeError("LoadLibrary() argument 1 must be str, not None")

    monkeypatch.setattr(ctypes, "CDLL", no_unnamed_library)
    assert memory._malloc_trim() is None


def test_trimming_a_large_heap_takes_a_bounded_share_of_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A trim walks the whole heap, whether or not anything is free: about 90 ms for 1.6 GB here.
    # Once a second, a large state cache would spend a tenth of the event loop trimming.
    now = [0.0]
    trim_s = 0.09

    def trim_a_large_heap() -> None:
        now[0] += trim_s

    monkeypatch.setattr(memory, "_TRIM", trim_a_large_heap)
    freed = FreedMemory(every_s=1.0, clock=lambda: now[0])
    trims = 0
    while now[0] < 600:
        trims += freed.release_if_due()
        now[0] += 0.05  # a micro-batch that evicted
    assert trims * trim_s / now[0] <= 0.02
