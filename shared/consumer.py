"""A consumer-group worker: decode, process in micro-batches, commit only after processing.

Delivery semantics: at-least-once. A batch's offsets are committed only after the handler
returned, so a crash replays the batch; handlers make their effects idempotent (the
processed marker commits in the same database transaction as the new state).

Bad input never blocks good input: a record that cannot be decoded, or that fails alone for any
reason but an unreachable database or broker, goes to the dead-letter topic with the reason in
its headers and the partition moves on. A batch that fails is applied in halves until the
records that fail alone are found, so the others are applied once, in their order.

An unreachable database or broker is waited out without leaving the consumer group: the worker
goes back to the first record it has not processed, pauses its partitions and keeps polling
(which is what tells the group it is alive), and tries again after a growing pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from shared.db import is_unreachable, ran_too_long
from shared.errors import TierFlowError
from shared.kafka import BrokerUnavailable, LazyProducer, Record, client_options
from shared.logs import get_logger
from shared.metrics import (
    CONSUMER_ASSIGNMENTS,
    CONSUMER_LAG,
    CONSUMER_SPLIT_POLLS,
    DEAD_LETTERED,
    RECORDS_CONSUMED,
)
from shared.settings import Settings

T = TypeVar("T")
log = get_logger(__name__)
_POLL_MS = 500

# Headers a dead letter carries besides the record's own: why it failed, and where it came from.
ERROR_HEADER = "tierflow-error"
ERROR_CLASS_HEADER = "tierflow-error-class"
SOURCE_TOPIC_HEADER = "tierflow-source-topic"
SOURCE_PARTITION_HEADER = "tierflow-source-partition"
SOURCE_OFFSET_HEADER = "tierflow-source-offset"
FAILED_AT_HEADER = "tierflow-failed-at"
DEAD_LETTER_HEADERS = frozenset(
    {
        ERROR_HEADER,
        ERROR_CLASS_HEADER,
        SOURCE_TOPIC_HEADER,
        SOURCE_PARTITION_HEADER,
        SOURCE_OFFSET_HEADER,
        FAILED_AT_HEADER,
    }
)


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
        reachable: Callable[[], Awaitable[bool]] | None = None,
        across_partitions: bool = False,
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
        self._outage = _Outage(self._backoff)
        # Processed but not yet committed: a failed commit is tried again after the next poll.
        self._processed: dict[TopicPartition, int] = {}
        self._reachable = reachable
        self._timeouts = _RepeatedTimeouts(settings.consumer_timeout_retries)
        # One handler call for everything a poll fetched, whatever its partitions: a handler with
        # a fixed cost per call (a transaction) pays it once per poll, not once per partition.
        self._across_partitions = across_partitions

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self._settings),
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
            max_poll_interval_ms=self._settings.kafka_max_poll_interval_ms,
        )
        consumer.subscribe(self._topics, listener=_AssignmentLog(self._group_id))
        await consumer.start()
        log.info("consumer started", topics=self._topics, group=self._group_id)
        self._outage = _Outage(self._backoff)
        self._processed = {}
        try:
            while not stop.is_set():
                await self._poll_once(consumer)
        finally:
            await consumer.stop()
            log.info("consumer stopped", group=self._group_id)

    async def _poll_once(self, consumer: AIOKafkaConsumer) -> None:
        if self._outage.due():
            self._outage.retrying()
            consumer.resume(*consumer.paused())
        fetched = await consumer.getmany(timeout_ms=self._outage.poll_ms(), max_records=self._max_records)
        if await self._applied_together(fetched):
            for partition, records in fetched.items():
                self._applied(partition, records)
            fetched = {}
        for partition, records in fetched.items():
            if self._outage.waiting:
                # Fetched before the pause, or from a partition assigned since: its turn comes later.
                _rewind(consumer, partition, records[0].offset)
                continue
            try:
                await self._process(records)
            except _Unreachable as exc:
                _rewind(consumer, partition, exc.offset)
                if await self._blames_the_records(partition, exc):
                    continue
                delay = self._outage.began()
                log.warning(
                    "database or broker unreachable; partitions paused, will retry",
                    error=str(exc), attempt=self._outage.failures, retry_in_s=delay,
                    topic=partition.topic, partition=partition.partition, offset=exc.offset,
                )  # fmt: skip
                continue
            self._applied(partition, records)
        if self._outage.waiting:
            # Every poll tells the group this member is alive, paused or not; a rebalance during
            # the pause hands over partitions unpaused, so pause whatever is assigned now.
            consumer.pause(*consumer.assignment())
        await self._commit(consumer)
        await self._report_lag(consumer)

    def _applied(self, partition: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """The partition's fetched records are applied or dead-lettered: commit past them."""
        self._outage.ended()
        self._timeouts.cleared(partition)
        self._processed[partition] = records[-1].offset + 1

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        # A partition given away is its new owner's: it resumes from the last commit and skips
        # what this worker applied (effects are idempotent).
        self._processed = {p: offset for p, offset in self._processed.items() if p in assigned}
        if not self._processed:
            return
        try:
            await consumer.commit(self._processed)
        except KafkaError as exc:
            log.warning("offset commit failed, will retry", group=self._group_id, error=str(exc))
            return
        self._processed = {}

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

    async def _applied_together(
        self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> bool:
        """Applies the records of several partitions in one handler call, each partition's in
        order, if that is allowed, none is waited for, all decode and the call succeeds. Otherwise
        (False) nothing is applied, and partition by partition finds what to dead-letter or wait for.
        """
        if not self._across_partitions or len(fetched) < 2 or self._outage.waiting:
            return False
        batch: list[Delivered[T]] = []
        for records in fetched.values():
            for record in records:
                try:
                    batch.append(self._delivered(record))
                except Exception:  # noqa: BLE001  whatever a decoder trips over, partition by partition handles
                    CONSUMER_SPLIT_POLLS.labels(self._group_id, "undecodable").inc()
                    return False
        try:
            await self._handle(batch)
        except Exception as exc:  # noqa: BLE001  partition by partition tells an outage from a bad record
            log.debug(
                "batch across partitions failed, applying partition by partition",
                size=len(batch),
                error_class=type(exc).__name__,
            )
            CONSUMER_SPLIT_POLLS.labels(self._group_id, "failed").inc()
            return False
        for records in fetched.values():
            RECORDS_CONSUMED.labels(topic=records[0].topic).inc(len(records))
        return True

    async def _process(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Applies one partition's records in order; those that fail alone are dead-lettered.

        Raises `_Unreachable` with the first offset not yet applied or dead-lettered when the
        database or the broker cannot be reached.
        """
        by_offset = {record.offset: record for record in records}
        run: list[Delivered[T]] = []
        consumed = RECORDS_CONSUMED.labels(topic=records[0].topic)  # one partition: one topic
        for record in records:
            consumed.inc()
            try:
                run.append(self._delivered(record))
            except Exception as exc:  # noqa: BLE001  whatever a decoder trips over is the record's fault
                # What came before goes first, so a retry can resume right after what is done.
                await self._apply(run, by_offset)
                run = []
                await self._give_up_on(record, exc, retry_from=record.offset)
        await self._apply(run, by_offset)

    def _delivered(self, record: ConsumerRecord[bytes, bytes]) -> Delivered[T]:
        return Delivered(self._decode(record), record.topic, record.partition, record.offset)

    async def _blames_the_records(self, partition: TopicPartition, failure: _Unreachable) -> bool:
        """After repeated timeouts at one offset while the database answers, the records are at
        fault, not the database: the partition's next attempt dead-letters what still times out."""
        if not ran_too_long(failure.__cause__):
            return False
        if not self._timeouts.again(partition, failure.offset):
            return False
        if self._reachable is None or not await self._reachable():
            return False
        log.warning(
            "statements keep timing out while the database answers; isolating the records",
            topic=partition.topic, partition=partition.partition, offset=failure.offset,
        )  # fmt: skip
        return True

    async def _apply(
        self, batch: Sequence[Delivered[T]], records: Mapping[int, ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Hands the batch to the handler; if it fails for a record's sake, applies it in halves.

        Halves go in order, so a customer's records still apply in the order they came.
        """
        if not batch:
            return
        try:
            await self._handle(batch)
            return
        except Exception as exc:  # noqa: BLE001  an outage is waited out, anything else is a record's
            if len(batch) == 1 or self._waits_out(exc, batch[0]):
                await self._give_up_on(records[batch[0].offset], exc, retry_from=batch[0].offset)
                return
            log.debug("batch failed, applying it in halves", size=len(batch), **_position(batch[0]))
        middle = len(batch) // 2
        await self._apply(batch[:middle], records)
        await self._apply(batch[middle:], records)

    async def _give_up_on(
        self, record: ConsumerRecord[bytes, bytes], exc: Exception, retry_from: int
    ) -> None:
        """Dead-letters the record, unless the failure was an outage: then the partition waits."""
        if self._waits_out(exc, record):
            raise _Unreachable(retry_from, exc) from exc
        try:
            await self._dead_letter(record, exc)
        except BrokerUnavailable as unavailable:
            raise _Unreachable(retry_from, unavailable) from unavailable

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> None:
        headers = [
            *(record.headers or ()),
            (ERROR_HEADER, _reason(exc).encode()),
            (ERROR_CLASS_HEADER, type(exc).__name__.encode()),
            (SOURCE_TOPIC_HEADER, record.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
            (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
        ]
        target = self._dead_letter_topic(record.topic)
        await self._producer.publish([Record(target, record.key, record.value or b"", list(headers))])
        DEAD_LETTERED.labels(topic=record.topic).inc()
        log.warning(
            "dead-lettered a record",
            reason=_reason(exc), error_class=type(exc).__name__, topic=record.topic,
            partition=record.partition, offset=record.offset, dead_letter_topic=target,
        )  # fmt: skip

    def _waits_out(self, exc: Exception, at: Delivered[T] | ConsumerRecord[bytes, bytes]) -> bool:
        """Only a database or broker that cannot be reached now is waited for; anything else is
        final, and so is a timeout at a partition whose records were found to be at fault."""
        if ran_too_long(exc) and self._timeouts.blamed(TopicPartition(at.topic, at.partition)):
            return False
        if isinstance(exc, TierFlowError):
            return exc.retriable
        return is_unreachable(exc)


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:1000]


def _rewind(consumer: AIOKafkaConsumer, partition: TopicPartition, offset: int) -> None:
    """Fetch from `offset` again, if the partition is still this worker's (else its owner will)."""
    if partition in consumer.assignment():
        consumer.seek(partition, offset)


class _Unreachable(Exception):
    """The database or the broker cannot be reached: the partition goes back to `offset`."""

    def __init__(self, offset: int, cause: Exception) -> None:
        super().__init__(_reason(cause))
        self.offset = offset


class _RepeatedTimeouts:
    """Consecutive timeouts at the same offset of a partition, and the partitions whose records are
    blamed for them once there were `limit` of them while the database still answered."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._at: dict[TopicPartition, tuple[int, int]] = {}
        self._blamed: set[TopicPartition] = set()

    def again(self, partition: TopicPartition, offset: int) -> bool:
        previous_offset, count = self._at.get(partition, (offset, 0))
        count = count + 1 if previous_offset == offset else 1
        self._at[partition] = (offset, count)
        if count < self._limit:
            return False
        self._blamed.add(partition)
        return True

    def blamed(self, partition: TopicPartition) -> bool:
        return partition in self._blamed

    def cleared(self, partition: TopicPartition) -> None:
        self._at.pop(partition, None)
        self._blamed.discard(partition)


class _Outage:
    """Consecutive failures to reach the database or broker, and when to try again."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self.failures = 0
        self._retry_at: float | None = None

    @property
    def waiting(self) -> bool:
        return self._retry_at is not None

    def began(self) -> float:
        delay = self._backoff.delay(self.failures)
        self.failures += 1
        self._retry_at = time.monotonic() + delay
        return delay

    def due(self) -> bool:
        return self._retry_at is not None and time.monotonic() >= self._retry_at

    def retrying(self) -> None:
        self._retry_at = None

    def ended(self) -> None:
        self.failures = 0

    def poll_ms(self) -> int:
        """How long a poll may wait: no longer than the pause has left to run."""
        if self._retry_at is None:
            return _POLL_MS
        return max(0, min(_POLL_MS, int((self._retry_at - time.monotonic()) * 1000)))


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
        CONSUMER_ASSIGNMENTS.labels(self._group_id).inc()
        log.info("partitions assigned", group=self._group_id, partitions=_names(assigned))


ConsumerRebalanceListener.register(_AssignmentLog)


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{p.topic}[{p.partition}]" for p in partitions)


def _position(item: Delivered[Any]) -> dict[str, Any]:
    return {"topic": item.topic, "partition": item.partition, "offset": item.offset}


__all__ = [
    "DEAD_LETTER_HEADERS",
    "ERROR_CLASS_HEADER",
    "ERROR_HEADER",
    "FAILED_AT_HEADER",
    "SOURCE_OFFSET_HEADER",
    "SOURCE_PARTITION_HEADER",
    "SOURCE_TOPIC_HEADER",
    "Backoff",
    "ConsumerWorker",
    "Delivered",
    "PoisonMessage",
    "TopicPartition",
]
