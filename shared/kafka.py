"""Thin aiokafka plumbing: clients from settings, batched publishing, topic creation.

Delivery semantics: `publish` returns only when the broker acknowledged every record
(acks=all). When it raises `BrokerUnavailable`, some records may still have been
written; senders resend with the same event ids and consumers drop the duplicates.
A failed publish is final: its producer stops sending the moment a delivery fails and is
abandoned with whatever it had not sent, so no later batch of a partition goes out behind
a failed one. A request already on the wire may still land, as a duplicate, even after the
resend; subscribers drop it by its id.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from shared.errors import TierFlowError
from shared.logs import get_logger
from shared.settings import KafkaSecurityProtocol, Settings
from shared.topics import Topics

CONTENT_TYPE_HEADER = "content-type"
Headers = list[tuple[str, bytes]]
log = get_logger(__name__)


class BrokerUnavailable(TierFlowError):
    retriable = True


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol.value,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
    }
    if settings.kafka_security_protocol in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL):
        options["ssl_context"] = _ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return context


def create_producer(settings: Settings) -> AIOKafkaProducer:
    # aiokafka drops a batch unsent once it is older than the request timeout, yet sends the
    # batches queued behind it for the same partition: a key's later records would overtake its
    # earlier ones. Outliving the publish wait leaves no batch to expire: the publish fails
    # first and the whole producer is abandoned.
    publish_wait_ms = int(settings.kafka_publish_timeout_s * 1000)
    options = client_options(settings) | {
        "request_timeout_ms": max(settings.kafka_request_timeout_ms, 2 * publish_wait_ms)
    }
    return AIOKafkaProducer(
        **options,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


class LazyProducer:
    """A producer started on first use and restarted after a failed start.

    Lets a service come up (and report not-ready) while the broker is still down.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._abandoned: dict[AIOKafkaProducer, asyncio.Task[None]] = {}

    async def get(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                self._producer = await self._start()
            return self._producer

    async def _start(self) -> AIOKafkaProducer:
        producer = create_producer(self._settings)
        try:
            async with asyncio.timeout(self._settings.kafka_publish_timeout_s):
                await producer.start()
        except (KafkaError, TimeoutError, OSError) as exc:
            await producer.stop()
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self._settings.kafka_bootstrap_servers}"
            ) from exc
        return producer

    async def is_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            producer = await self.get()
            async with asyncio.timeout(timeout_s):
                await producer.client.fetch_all_metadata()
        except (BrokerUnavailable, KafkaError, TimeoutError, OSError):
            return False
        return True

    async def publish(self, records: Sequence[Record]) -> None:
        producer = await self.get()
        try:
            await publish(producer, records, self._settings.kafka_publish_timeout_s)
        except BrokerUnavailable:
            self._abandon(producer)
            raise

    def _abandon(self, producer: AIOKafkaProducer) -> None:
        """The next publish starts a new producer; this one is closed beside the caller (closing
        waits for the requests already on the wire), once however many publishes failed on it."""
        if self._producer is producer:
            self._producer = None
        if producer in self._abandoned:
            return
        closing = asyncio.create_task(abandon(producer))
        self._abandoned[producer] = closing
        closing.add_done_callback(lambda _: self._abandoned.pop(producer, None))

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        # Bounded: a hung broker must not hold a stopping service past its grace period.
        closing = list(self._abandoned.values())
        if closing:
            _, hung = await asyncio.wait(closing, timeout=self._settings.kafka_publish_timeout_s)
            for task in hung:
                task.cancel()


def halt(producer: AIOKafkaProducer) -> None:
    """Stops the producer's sender before it sends another batch.

    Called the moment a delivery fails or is given up: aiokafka drops a batch that failed for
    good or expired, then sends the batches queued behind it for the same partition, so a key's
    later records would overtake the resend of its earlier ones. Cancelled once only: a second
    cancel would break the sender's wait for the requests already on the wire."""
    sender = producer._sender.sender_task  # aiokafka offers no public abort
    if sender is not None and not sender.done() and not sender.cancelling():
        sender.cancel()


def _halt_on_failure(producer: AIOKafkaProducer, delivery: asyncio.Future[Any]) -> None:
    # A delivery cancelled by its caller is no failure of the producer; `publish` halts it
    # itself when it gives up.
    if not delivery.cancelled() and delivery.exception() is not None:
        halt(producer)


async def abandon(producer: AIOKafkaProducer) -> None:
    """Closes a halted producer without sending what it still holds (aiokafka's `stop` would
    flush it). A request already on the wire may still land, as a duplicate of the resend."""
    try:
        halt(producer)
        sender = producer._sender.sender_task
        if sender is not None:
            await asyncio.wait([sender])
        unsent = producer._message_accumulator
        unsent._batches.clear()
        unsent._pending_batches.clear()
        await producer.stop()
    except Exception:  # a leaked producer must not go unnoticed, nor break the caller
        log.exception("an abandoned Kafka producer did not close cleanly")


async def publish(producer: AIOKafkaProducer, records: Sequence[Record], timeout_s: float) -> None:
    """Hand every record to the producer's batching, then wait for all acknowledgements.

    The first delivery that fails halts the producer: nothing of this publish is sent after it."""
    deliveries: list[asyncio.Future[Any]] = []
    on_delivery = partial(_halt_on_failure, producer)
    try:
        async with asyncio.timeout(timeout_s):
            for record in records:
                delivery = await producer.send(
                    record.topic, value=record.value, key=record.key, headers=record.headers
                )
                delivery.add_done_callback(on_delivery)
                deliveries.append(delivery)
            await asyncio.gather(*deliveries)
    except (KafkaError, TimeoutError) as exc:
        halt(producer)
        for delivery in deliveries:
            delivery.cancel()
        raise BrokerUnavailable(f"the broker did not acknowledge {len(records)} records") from exc


async def ensure_topics(settings: Settings, names: Iterable[str], partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            new_topics = [
                NewTopic(
                    name=name,
                    num_partitions=partitions or settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                    topic_configs=Topics.from_settings(settings).config_of(name),
                )
                for name in missing
            ]
            try:
                await admin.create_topics(new_topics)
            except TopicAlreadyExistsError:
                log.info("topics created concurrently", topics=missing)
        return missing
    finally:
        await admin.close()


async def group_lag(settings: Settings, group_id: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """Records of each partition of `topics` that `group_id` has not committed past, whoever owns it.

    The brokers' view, so it also counts partitions that no member of the group holds at
    the moment (during a rebalance, or when a departed member has not yet been expired),
    which the members' own lag gauges cannot see.
    """
    reader = AIOKafkaConsumer(**client_options(settings), group_id=group_id, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(reader.partitions_for_topic(topic) or ())
        ]
        ends = await _log_ends(reader, partitions)
        beginnings = await reader.beginning_offsets(partitions)
        return {
            partition: max(ends[partition] - (await reader.committed(partition) or beginnings[partition]), 0)
            for partition in partitions
        }
    finally:
        await reader.stop()


async def _log_ends(
    reader: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_s: float = 10
) -> dict[TopicPartition, int]:
    """Each partition's high watermark as a fetch reports it.

    Kafka answers ListOffsets with the same number, but some Kafka-protocol brokers answer
    it with one past the start of the last record batch; a fetch from there is exact on both.
    """
    listed = await reader.end_offsets(partitions)
    unknown = [p for p in partitions if listed[p] > 0]
    reader.assign(unknown)
    for partition in unknown:
        reader.seek(partition, listed[partition] - 1)
    async with asyncio.timeout(timeout_s):
        while any(reader.highwater(p) is None for p in unknown):
            await reader.getmany(*unknown, timeout_ms=200)
    fetched = {p: reader.highwater(p) or 0 for p in unknown}
    return {p: max(listed[p], fetched.get(p, 0)) for p in partitions}
