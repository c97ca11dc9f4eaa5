"""Where a simulated bank goes: a JSON-lines file, the topic directly, or ingest over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import httpx

from shared.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE
from shared.kafka import CONTENT_TYPE_HEADER, LazyProducer, Record
from shared.settings import Settings
from shared.topics import Topics


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate(self) -> float:
        return self.sent / max(time.perf_counter() - self.started, 1e-9)


def chunks(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(events)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Pacer:
    """Holds a stream to at most `rate` events per second (0: as fast as possible)."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._started = time.perf_counter()
        self._count = 0

    def wait(self, count: int) -> float:
        self._count += count
        if self._rate <= 0:
            return 0.0
        ahead = self._count / self._rate - (time.perf_counter() - self._started)
        return max(0.0, ahead)


def to_file(events: Iterable[dict[str, Any]], out: TextIO) -> Tally:
    tally = Tally()
    for event in events:
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        tally.sent += 1
    return tally


async def to_topic(events: Iterable[dict[str, Any]], settings: Settings, rate: float, batch: int) -> Tally:
    producer = LazyProducer(settings)
    topic = Topics.from_settings(settings).bank_events
    headers = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]
    tally, pacer = Tally(), Pacer(rate)
    try:
        for chunk in chunks(events, batch):
            records = [
                Record(topic, _key(e), json.dumps(e, separators=(",", ":")).encode(), headers) for e in chunk
            ]
            await producer.publish(records)
            tally.sent += len(chunk)
            await asyncio.sleep(pacer.wait(len(chunk)))
    finally:
        await producer.close()
    return tally


def to_ingest(events: Iterable[dict[str, Any]], url: str, key: str, rate: float, batch: int) -> Tally:
    """Valid events in batches; an invalid one alone, so its 422 does not refuse good data."""
    tally, pacer = Tally(), Pacer(rate)
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for chunk in chunks(events, batch):
            good = [e for e in chunk if not e["id"].endswith("-invalid")]
            for bad in (e for e in chunk if e["id"].endswith("-invalid")):
                if client.post("/v1/events", json=bad).status_code == 422:
                    tally.refused += 1
            response = client.post("/v1/events", json=good)
            while response.status_code == 503:
                time.sleep(float(response.headers.get("retry-after", "1")))
                response = client.post("/v1/events", json=good)
            response.raise_for_status()
            tally.sent += len(good)
            time.sleep(pacer.wait(len(chunk)))
    return tally


def _key(event: dict[str, Any]) -> bytes | None:
    customer_id = event.get("data", {}).get("customer_id")
    return customer_id.encode() if isinstance(customer_id, str) else None


def open_output(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8")
