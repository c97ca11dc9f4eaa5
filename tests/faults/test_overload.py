"""More clients than ingest will take, sending the largest bodies it accepts: they are told
429 + Retry-After, ingest's memory stays within its stated budget, and nothing is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.bodies import MAX_JSON_DEPTH
from shared.settings import Settings
from tests.faults.system import EndState, Stream, assert_same_end_state, running_system
from tests.infra import INGEST_KEY, Infra, wait_until

pytestmark = pytest.mark.faults
MIB = 1024 * 1024
MAX_BODY = MIB
# Room for two of the largest bodies at once: a third waits, and so do the stream's own batches
# while two are in.
BUDGET = 2 * MAX_BODY * Settings.DECODED_BYTES_PER_BODY_BYTE
FLOODERS = 24
FLOOD_S = 10
FLOOD_CUSTOMERS = "C-FLOOD-"


def padded(body: bytes) -> bytes:
    assert len(body) <= MAX_BODY
    return body + b" " * (MAX_BODY - len(body))


# The largest batch, valid: ingest holds it decoded, validated and encoded while the broker
# acknowledges it. The ids repeat, so scoring applies these events once however often they come.
VALID_BODY = padded(
    json.dumps(
        [
            {"specversion": "1.0", "id": f"flood-{n}", "source": "flood", "type": "bank.interaction.v1",
             "time": "2025-06-01T00:00:00Z", "data": {"customer_id": f"C-FLOOD-{n % 10}", "kind": "login"}}
            for n in range(5_000)
        ],
        separators=(",", ":"),
    ).encode()
)  # fmt: skip
# The JSON that costs most once decoded (a list and a Decimal for every six bytes); refused
# after decoding as a batch of far more than 5,000 items.
DECODE_BOMB = padded(b"[" + b",".join([b"[0.1]"] * (MAX_BODY // 6 - 1)) + b"]")
# The JSON that costs most per byte within the nesting limit: arrays nested as deep as allowed,
# a list for every two bytes, and one character outside the BMP making the decoded text four
# bytes a character.
_NESTED = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
NESTED_BOMB = padded(
    b"[" + b",".join([_NESTED] * (MAX_BODY // (len(_NESTED) + 1) - 1)) + ',"\U0001f600"]'.encode()
)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


class Flood:
    """Clients posting the largest bodies as fast as ingest answers, until told to stop."""

    def __init__(self, url: str) -> None:
        self.statuses: Counter[int | str] = Counter()
        self.retry_after_missing = 0
        self._url = url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        bodies = [VALID_BODY, DECODE_BOMB, NESTED_BOMB] * (FLOODERS // 3)
        self._threads = [threading.Thread(target=self._run, args=(body,), daemon=True) for body in bodies]

    def __enter__(self) -> Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def answered(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def _run(self, body: bytes) -> None:
        headers = {"authorization": f"Bearer {INGEST_KEY}", "content-type": "application/json"}
        with httpx.Client(headers=headers, timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self._url}/v1/events", content=body)
                    outcome: int | str = response.status_code
                    missing = response.status_code == 429 and not response.headers.get("retry-after")
                except httpx.TransportError as exc:
                    outcome, missing = type(exc).__name__, False
                with self._lock:
                    self.statuses[outcome] += 1
                    self.retry_after_missing += missing


def without_flood_customers(end: EndState) -> EndState:
    """The end state of the stream's own customers: the flood's are the flood's business."""

    def theirs(row: tuple[Any, ...]) -> bool:
        customer = row[1].decode() if isinstance(row[1], bytes) else str(row[1])
        return customer.startswith(FLOOD_CUSTOMERS)

    return replace(
        end,
        customers={c: state for c, state in end.customers.items() if not c.startswith(FLOOD_CUSTOMERS)},
        tier_changes=[row for row in end.tier_changes if not theirs(row)],
        outreach=[row for row in end.outreach if not theirs(row)],
        surveys=[row for row in end.surveys if not theirs(row)],
        complaints=[row for row in end.complaints if not theirs(row)],
        dead_letters=[row for row in end.dead_letters if not theirs(row)],
    )


def test_an_ingest_flooded_with_the_largest_bodies_stays_within_its_memory_budget_and_loses_nothing(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    with running_system(
        infra,
        TIERFLOW_MAX_BODY_BYTES=str(MAX_BODY),
        TIERFLOW_INGEST_MEMORY_BUDGET_BYTES=str(BUDGET),
        # Not the bound: this many decoded bodies at once would not fit in the budget.
        TIERFLOW_INGEST_MAX_IN_FLIGHT="1000",
        # Nor the key's request rate: the flood and the stream share one key, and what is under
        # test is the memory budget.
        TIERFLOW_INGEST_KEY_RATE_PER_S="1000000",
        TIERFLOW_INGEST_KEY_BURST="1000000",
    ) as system:
        ingest = system.running["ingest"][0].process
        assert ingest is not None
        half = len(stream.bank) // 2
        system.send(stream.bank[:half], senders=8).join()
        before = peak_rss_mib(ingest.pid)
        with Flood(system.url("ingest")) as flood:
            started = time.monotonic()
            wait_until(lambda: flood.answered() >= FLOODERS, 60, "every flooder to be answered", 0.05)
            system.send(stream.bank[half:], senders=8).join()
            time.sleep(max(0.0, FLOOD_S - (time.monotonic() - started)))
        after = peak_rss_mib(ingest.pid)
        assert ingest.poll() is None, "ingest must survive the flood"
        system.settle()
        system.send(stream.feedback, batch=5).join()
        system.settle()
        end = system.end_state()

    statuses = flood.statuses
    assert statuses[429] > 100, statuses
    assert statuses[202] > 0, f"the flood's valid bodies were admitted too: {statuses}"
    assert flood.retry_after_missing == 0
    assert not [s for s in statuses if isinstance(s, int) and s >= 500], statuses
    # Whether the stream's own clients were shed too (and resent) depends on how their posts fall
    # against the flood on a loaded machine; either way nothing of theirs may be lost, which the
    # end state below proves.
    assert after - before < BUDGET / MIB, f"peak RSS grew from {before:.0f} to {after:.0f} MiB"
    assert_same_end_state(without_flood_customers(end), undisturbed)
