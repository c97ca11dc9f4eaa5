"""More clients than ingest will take: they are told 429 + Retry-After, memory stays flat, nothing is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import INGEST_KEY, Infra, wait_until

pytestmark = pytest.mark.faults
IN_FLIGHT = 2
FLOODERS = 24
FLOOD_S = 10
# About 1 MB of events ingest must parse to refuse (an unknown type): costly if admitted.
HEAVY_BODY = json.dumps(
    [
        {"specversion": "1.0", "id": f"flood-{n}", "source": "flood", "type": "bank.flood.v1",
         "time": "2025-06-01T00:00:00Z", "data": {"customer_id": "C-FLOOD", "note": "x" * 800}}
        for n in range(1_000)
    ]
).encode()  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


class Flood:
    """Clients posting heavy bodies as fast as ingest answers, until told to stop."""

    def __init__(self, url: str) -> None:
        self.statuses: Counter[int | str] = Counter()
        self.retry_after_missing = 0
        self._url = url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(FLOODERS)]

    def __enter__(self) -> Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        headers = {"authorization": f"Bearer {INGEST_KEY}", "content-type": "application/json"}
        with httpx.Client(headers=headers, timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self._url}/v1/events", content=HEAVY_BODY)
                    outcome: int | str = response.status_code
                    missing = response.status_code == 429 and not response.headers.get("retry-after")
                except httpx.TransportError as exc:
                    outcome, missing = type(exc).__name__, False
                with self._lock:
                    self.statuses[outcome] += 1
                    self.retry_after_missing += missing


def test_an_overloaded_ingest_sheds_load_with_429_keeps_memory_flat_and_loses_nothing(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    with running_system(infra, TIERFLOW_INGEST_MAX_IN_FLIGHT=str(IN_FLIGHT)) as system:
        ingest = system.running["ingest"][0].process
        assert ingest is not None
        before = peak_rss_mib(ingest.pid)
        floods: list[Flood] = []

        def flood_while_sending(system: System) -> Iterator[None]:
            assert system.accepted < len(stream.bank), "the flood must overlap the stream"
            with Flood(system.url("ingest")) as flood:
                floods.append(flood)
                flood_ends = time.monotonic() + FLOOD_S
                yield  # the rest of the bank's events are sent into the flood
                wait_until(lambda: system.refusals.get(429, 0) > 0, 120, "the stream's clients to be shed")
                time.sleep(max(0.0, flood_ends - time.monotonic()))

        end = system.drive(stream, bank={0.1: flood_while_sending}, senders=8)
        after = peak_rss_mib(ingest.pid)
        assert ingest.poll() is None, "ingest must survive the flood"

    statuses = floods[0].statuses
    assert statuses[429] > 100, statuses
    assert floods[0].retry_after_missing == 0
    assert not [s for s in statuses if isinstance(s, int) and s >= 500], statuses
    assert system.refusals.get(429, 0) > 0, "the stream's own clients were shed too, and resent"
    # At most IN_FLIGHT heavy bodies are parsed at once, whatever the number of clients.
    assert after - before < 150, f"peak RSS grew from {before:.0f} to {after:.0f} MiB"
    assert_same_end_state(end, undisturbed)
