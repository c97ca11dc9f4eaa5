"""Reading topics with confluent-kafka (librdkafka): a client TierFlow did not write."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # A fetch at the end of a partition is answered when this runs out (500 ms by
            # default, twice over per read): the reader only learns it is at the end then.
            "fetch.wait.max.ms": 10,
        }
    )


def read_messages(
    bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 30
) -> list[Message]:
    """Every message on `topic` from the beginning.

    With `expected`, waits until that many have arrived; without, reads to the end of every
    partition. Partitions are assigned, not subscribed: a reader needs no group coordinator.
    """
    consumer = _consumer(bootstrap)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if expected is None and at_end == set(partitions):
                break
            if expected is not None and len(messages) >= expected:
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            partition = message.partition() or 0
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                continue
            at_end.discard(partition)
            raw_headers = message.headers() or []
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {name: value for name, value in pairs if isinstance(value, bytes)}
            value = message.value()
            key = message.key()
            messages.append(
                Message(
                    key=key if isinstance(key, bytes) else None,
                    value=value if isinstance(value, bytes) else b"",
                    headers=headers,
                    partition=partition,
                    offset=message.offset() or 0,
                )
            )
    finally:
        consumer.close()
    return messages


def total_messages(bootstrap: str, topic: str) -> int:
    return len(read_messages(bootstrap, topic))
