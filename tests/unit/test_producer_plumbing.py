"""The producer settings and the aiokafka internals that abandoning a producer relies on."""

from __future__ import annotations

from shared.kafka import create_producer
from shared.settings import Settings


async def test_abandoning_a_producer_finds_the_aiokafka_parts_it_stops() -> None:
    """aiokafka has no public abort: an upgrade that renames these would let an abandoned
    producer flush its queued batches again, after the resend of the earlier ones."""
    producer = create_producer(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    assert hasattr(producer._sender, "sender_task")
    assert isinstance(producer._message_accumulator._batches, dict)
    assert hasattr(producer._message_accumulator, "_pending_batches")


async def test_a_producer_batch_outlives_the_publish_wait() -> None:
    """Else aiokafka could drop a batch as too old while the publish still waits and send the
    batches behind it: a key's later records before its earlier ones."""
    short_requests = Settings(kafka_publish_timeout_s=30, kafka_request_timeout_ms=5000)
    assert create_producer(short_requests)._request_timeout_ms >= 2 * 30_000
    long_requests = Settings(kafka_publish_timeout_s=5, kafka_request_timeout_ms=60_000)
    assert create_producer(long_requests)._request_timeout_ms == 60_000
