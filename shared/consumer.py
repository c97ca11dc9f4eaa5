"""A consumer-group worker: decode, process in micro-batches, commit only after processing.

Delivery semantics: at-least-once. A batch's offsets are committed only after the handler
returned, so a crash replays the batch; handlers make their effects idempotent (the
processed marker commits in the same database transaction as the new state).
A record that cannot be decoded, or that fails alone with a non-retriable error, goes to
the dead-letter topic with the reason in its headers and the partition moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from shared.errors import TierFlowError
from shared.kafka import LazyProducer, Record, client_options
from shared.logs import get_logger
from shared.metrics import CONSUMER_LAG, DEAD_LETTERED, RECORDS_CONSUMED
from shared.settings import Settings

T = TypeVar("T")
log = get_logger(__name__)


class PoisonMessage(TierFlowError):
    """The record itself is unusable; retrying cannot help."""


@dataclass(frozen=True)
class Delivered(Generic[T]):
    """A decoded record with where it came from."""

    value: T
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.2
    maximum_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum_s, self.initial_s * 2**attempt))


Decoder = Callable[[ConsumerRecord[bytes, bytes]], T]
Handler = Callable[[Sequence[Delivered[T]]], Awaitable[None]]


class ConsumerWorker(Generic[T]):
    def __init__(
        self,
        settings: Settings,
        *,
        topics: Sequence[str],
        group_id: str,
        decode: Decoder[T],
        handle: Handler[T],
        dead_letter_topic: Callable[[str], str],
        producer: LazyProducer,
        max_records: int = 2_000,
        backoff: Backoff | None = None,
    ) -> None:
        self._settings = settings
        self._topics = list(topics)
        self._group_id = group_id
        self._decode = decode
        self._handle = handle
        self._dead_letter_topic = dead_letter_topic
        self._producer = producer
        self._max_records = max_records
        self._backoff = backoff or Backoff()
        self._reported: set[TopicPartition] = set()

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self._settings),
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Short broker-side waits keep end-to-end latency low at modest load.
            fetch_max_wait_ms=100,
        )
        consumer.subscribe(self._topics, listener=_AssignmentLog(self._group_id))
        await consumer.start()
        log.info("consumer started", topics=self._topics, group=self._group_id)
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                for partition, records in fetched.items():
                    await self._process_partition_batch(records, stop)
                    await consumer.commit({partition: records[-1].offset + 1})
                await self._report_lag(consumer)
        finally:
            await consumer.stop()
            log.info("consumer stopped", group=self._group_id)

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Everything fetched is processed by now, so position is the next record to process."""
        assigned = consumer.assignment()
        for gone in self._reported - assigned:
            CONSUMER_LAG.remove(self._group_id, gone.topic, str(gone.partition))
        self._reported = set()
        for partition in assigned:
            highwater = consumer.highwater(partition)
            if highwater is None:  # nothing fetched from it yet
                continue
            lag = max(highwater - await consumer.position(partition), 0)
            CONSUMER_LAG.labels(self._group_id, partition.topic, str(partition.partition)).set(lag)
            self._reported.add(partition)

    async def _process_partition_batch(
        self, records: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> None:
        decoded: list[Delivered[T]] = []
        for record in records:
            RECORDS_CONSUMED.labels(topic=record.topic).inc()
            try:
                decoded.append(Delivered(self._decode(record), record.topic, record.partition, record.offset))
            except PoisonMessage as exc:
                await self._dead_letter(record, exc)
        if decoded:
            await self._handle_with_retries(decoded, records, stop)

    async def _handle_with_retries(
        self,
        batch: Sequence[Delivered[T]],
        records: Sequence[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._handle(batch)
                return
            except TierFlowError as exc:
                if not exc.retriable:
                    await self._isolate_failure(batch, records, exc, stop)
                    return
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning(
                    "retriable failure, will retry",
                    error=str(exc), attempt=attempt, delay_s=delay, **_position(batch[0]),
                )  # fmt: skip
                if stop.is_set():
                    raise
                await asyncio.sleep(delay)

    async def _isolate_failure(
        self,
        batch: Sequence[Delivered[T]],
        records: Sequence[ConsumerRecord[bytes, bytes]],
        exc: TierFlowError,
        stop: asyncio.Event,
    ) -> None:
        if len(batch) == 1:
            record = next(r for r in records if r.offset == batch[0].offset)
            await self._dead_letter(record, exc)
            return
        # A batch failed for one bad record: replay one at a time so the rest still applies.
        for item in batch:
            await self._handle_with_retries([item], records, stop)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> None:
        headers = [
            *(record.headers or ()),
            ("tierflow-error", str(exc)[:1000].encode()),
            ("tierflow-error-class", type(exc).__name__.encode()),
            ("tierflow-source-topic", record.topic.encode()),
            ("tierflow-source-partition", str(record.partition).encode()),
            ("tierflow-source-offset", str(record.offset).encode()),
            ("tierflow-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        target = self._dead_letter_topic(record.topic)
        await self._producer.publish([Record(target, record.key, record.value or b"", list(headers))])
        DEAD_LETTERED.labels(topic=record.topic).inc()
        log.warning(
            "dead-lettered a record",
            reason=str(exc), topic=record.topic, partition=record.partition,
            offset=record.offset, dead_letter_topic=target,
        )  # fmt: skip


class _AssignmentLog:
    """Which partitions this instance holds, so operators can follow a rebalance in the logs.

    Registered as a virtual subclass of aiokafka's listener below: aiokafka ships no types, so
    a real subclass would derive from an unchecked base.
    """

    def __init__(self, group_id: str) -> None:
        self._group_id = group_id

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:  # aiokafka also calls this, empty, before the first assignment
            log.info("partitions revoked", group=self._group_id, partitions=_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", group=self._group_id, partitions=_names(assigned))


ConsumerRebalanceListener.register(_AssignmentLog)


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{p.topic}[{p.partition}]" for p in partitions)


def _position(item: Delivered[Any]) -> dict[str, Any]:
    return {"topic": item.topic, "partition": item.partition, "offset": item.offset}


__all__ = ["Backoff", "ConsumerWorker", "Delivered", "PoisonMessage", "TopicPartition"]
