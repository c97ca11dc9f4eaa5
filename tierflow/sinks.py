"""Where a simulated bank goes: a JSON-lines file, the topic directly, or ingest over HTTP.

Core-banking events go to ingest or `bank.events.v1`; surveys and complaints go to the
feedback service's API (when its URL is given), the way a survey tool would send them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import httpx

from shared.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE
from shared.contracts.outbound import COMPLAINT, SURVEY
from shared.kafka import CONTENT_TYPE_HEADER, LazyProducer, Record
from shared.settings import Settings
from shared.topics import Topics
from tierflow.simulate import Event, is_bank_event, is_invalid

Progress = Callable[[int, datetime], None]
"""Told how many records were just delivered and the simulated time reached."""
FEEDBACK_PATHS = {SURVEY: "/v1/surveys", COMPLAINT: "/v1/complaints"}


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0
    feedback: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate(self) -> float:
        return (self.sent + self.feedback) / max(time.perf_counter() - self.started, 1e-9)

    def summary(self) -> str:
        line = f"sent {self.sent:,} events ({self.refused:,} refused) at {self.rate():,.0f} records/s"
        if self.feedback:
            line += f"; {self.feedback:,} surveys and complaints to feedback"
        if self.skipped:
            line += f"; {self.skipped:,} surveys and complaints not sent (no --feedback URL)"
        return line


def chunks(records: Iterable[Event], size: int) -> Iterator[list[Event]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def record_time(record: Event) -> datetime:
    moment = datetime.fromisoformat(record["time"])
    # Only a deliberately invalid record has a naive time; read as UTC it still paces well.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Pacer:
    """Holds a stream to at most `rate` records per second (0: as fast as possible) and, when
    `compression` is given, to simulated time running that many times faster than real time."""

    def __init__(
        self, rate: float = 0, compression: float = 0, simulated_start: datetime | None = None
    ) -> None:
        self._rate = rate
        self._compression = compression
        self._simulated_start = simulated_start
        self._started = time.perf_counter()
        self._count = 0

    def wait(self, count: int, reached: datetime | None = None) -> float:
        self._count += count
        elapsed = time.perf_counter() - self._started
        ahead = self._count / self._rate - elapsed if self._rate > 0 else 0.0
        if self._compression > 0 and reached is not None and self._simulated_start is not None:
            simulated = (reached - self._simulated_start).total_seconds()
            ahead = max(ahead, simulated / self._compression - elapsed)
        return max(0.0, ahead)


def to_file(records: Iterable[Event], out: TextIO) -> Tally:
    tally = Tally()
    for record in records:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
        if is_bank_event(record):
            tally.sent += 1
        else:
            tally.feedback += 1
    return tally


class FeedbackClient:
    """Posts surveys and complaints to the feedback API in arrays, waiting out 503/429."""

    def __init__(self, url: str | None, key: str) -> None:
        self._client = (
            httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60)
            if url
            else None
        )

    def send(self, records: Sequence[Event], tally: Tally) -> None:
        feedback = [r for r in records if r["type"] in FEEDBACK_PATHS]
        if self._client is None:
            tally.skipped += len(feedback)
            return
        for record_type, path in FEEDBACK_PATHS.items():
            bodies = [r["data"] for r in feedback if r["type"] == record_type]
            if bodies:
                _post(self._client, path, bodies).raise_for_status()
                tally.feedback += len(bodies)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


async def to_topic(
    records: Iterable[Event], settings: Settings, pacer: Pacer, batch: int, feedback: FeedbackClient
) -> Tally:
    producer = LazyProducer(settings)
    topic = Topics.from_settings(settings).bank_events
    headers = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]
    tally = Tally()
    try:
        for chunk in chunks(records, batch):
            events = [r for r in chunk if is_bank_event(r) or is_invalid(r)]
            await producer.publish(
                [
                    Record(topic, _key(e), json.dumps(e, separators=(",", ":")).encode(), headers)
                    for e in events
                ]
            )
            tally.sent += len(events)
            feedback.send(chunk, tally)
            await asyncio.sleep(pacer.wait(len(chunk), record_time(chunk[-1])))
    finally:
        await producer.close()
        feedback.close()
    return tally


def to_ingest(
    records: Iterable[Event],
    client: httpx.Client,
    pacer: Pacer,
    batch: int,
    feedback: FeedbackClient,
    progress: Progress | None = None,
) -> Tally:
    """Valid events in batches; an invalid one alone, so its 422 does not refuse good data."""
    tally = Tally()
    try:
        for chunk in chunks(records, batch):
            for bad in (r for r in chunk if is_invalid(r)):
                if client.post("/v1/events", json=bad).status_code == 422:
                    tally.refused += 1
            good = [r for r in chunk if is_bank_event(r) and not is_invalid(r)]
            if good:
                _post(client, "/v1/events", good).raise_for_status()
                tally.sent += len(good)
            feedback.send(chunk, tally)
            reached = record_time(chunk[-1])
            if progress is not None:
                progress(len(chunk), reached)
            time.sleep(pacer.wait(len(chunk), reached))
    finally:
        feedback.close()
    return tally


def api_client(url: str, key: str) -> httpx.Client:
    """A client for one TierFlow service, sending the key on every request."""
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60)


def _post(client: httpx.Client, path: str, body: list[dict[str, Any]]) -> httpx.Response:
    response = client.post(path, json=body)
    while response.status_code in (429, 503):
        time.sleep(float(response.headers.get("retry-after", "1")))
        response = client.post(path, json=body)
    return response


def _key(event: Event) -> bytes | None:
    customer_id = event.get("data", {}).get("customer_id")
    return customer_id.encode() if isinstance(customer_id, str) else None


def open_output(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8")
