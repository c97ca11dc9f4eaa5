"""Kafka delivers at least once and in order only per key: resends, reorderings and poison."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import Producer

from shared.topics import BANK_EVENTS, FEEDBACK_EVENTS, OUTREACH, TIER_CHANGES
from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra
from tests.kafka_reader import Message, read_messages
from tierflow.simulate import with_faults

pytestmark = pytest.mark.faults


def produce_raw(system: System, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Records straight onto a topic, as a misbehaving producer or a replaying tool would.

    librdkafka's default partitioner hashes keys differently from the Java client and aiokafka:
    a direct producer must use murmur2, or one customer's events land in two partitions.
    """
    settings = {
        "bootstrap.servers": system.infra.bootstrap_servers,
        "acks": "all",
        "partitioner": "murmur2_random",
    }
    producer = Producer(settings)
    for key, value in records:
        producer.produce(system.topic(topic), key=key, value=value)
    assert producer.flush(30) == 0


def encoded(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["data"]["customer_id"].encode(), json.dumps(event).encode()


def test_resent_and_reordered_delivery_changes_nothing(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    rng = random.Random(17)
    with running_system(infra) as system:
        # Four clients at once interleave customers differently from the undisturbed run (each
        # customer's events stay in order, as keyed partitions keep them); one record in ten is
        # sent twice in a row.
        system.send(list(with_faults(iter(stream.bank), 0, 0.1, seed=3)), senders=4).join()
        # Late resends straight onto the topic, behind newer events of the same customers.
        late = [encoded(e) for e in stream.bank if rng.random() < 0.2]
        produce_raw(system, BANK_EVENTS, late)
        system.settle()
        # Tier changes delivered again, newest first, as a relay restarted after a crash may.
        changes = read_messages(infra.bootstrap_servers, system.topic(TIER_CHANGES))
        again = [(m.key, m.value) for m in reversed(changes) if rng.random() < 0.3]
        produce_raw(system, TIER_CHANGES, again)
        system.send(list(with_faults(iter(stream.feedback), 0, 0.2, seed=4)), batch=5).join()
        system.settle()
        end = system.end_state()
    assert len(late) > 400
    assert len(again) > 100
    assert_same_end_state(end, undisturbed)


POISON: dict[str, list[tuple[bytes, bytes | None]]] = {
    BANK_EVENTS: [
        (b"C00000001", b"not json at all"),
        (b"C00000002", b'{"hello": "world"}'),
        (b"C00000003", b"\xff\xfe\x00 binary"),
        (b"C-SOMEONE-ELSE", None),  # a valid event under another customer's key: filled in below
        (b"C00000004", None),  # an event type nobody knows: filled in below
    ],
    TIER_CHANGES: [(b"C00000005", b"{"), (b"C00000006", b'{"type": "customer.unknown.v1", "id": "x"}')],
    FEEDBACK_EVENTS: [(b"C00000007", b"[1, 2, 3]")],
    OUTREACH: [(b"C00000008", b"\x00\x01")],
}
# Engagement and feedback both consume tier changes, and each dead-letters what it cannot read.
READERS = {BANK_EVENTS: 1, TIER_CHANGES: 2, FEEDBACK_EVENTS: 1, OUTREACH: 1}


def poison_records(stream: Stream) -> dict[str, list[tuple[bytes, bytes]]]:
    valid = next(e for e in stream.bank if e["data"]["customer_id"] != "C00000004")
    unknown = {**valid, "id": "poison-unknown-type", "type": "bank.unknown.v1"}
    unknown["data"] = {**valid["data"], "customer_id": "C00000004"}
    fill = {b"C-SOMEONE-ELSE": json.dumps({**valid, "id": "poison-wrong-key"}).encode(),
            b"C00000004": json.dumps(unknown).encode()}  # fmt: skip
    return {
        topic: [(key, value if value is not None else fill[key]) for key, value in records]
        for topic, records in POISON.items()
    }


def test_poison_messages_are_dead_lettered_with_their_reason_and_the_rest_flows(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    poison = poison_records(stream)

    def inject(system: System) -> None:
        # Behind a third of the bank's events and ahead of the rest, on every topic.
        system.wait_for_rows("scoring.applied_events", len(stream.bank) // 6)
        for topic, records in poison.items():
            produce_raw(system, topic, records)

    with running_system(infra) as system:
        end = system.drive(stream, bank={1 / 3: inject})
        dead = {
            topic: read_messages(infra.bootstrap_servers, system.topic(topic) + ".dlq") for topic in POISON
        }
    expected = sorted(
        (t, key) for t, records in poison.items() for key, _ in records for _ in range(READERS[t])
    )
    assert sorted((dead_topic, key) for dead_topic, key, _ in end.dead_letters) == expected
    assert all(reason for _, _, reason in end.dead_letters)
    for topic, messages in dead.items():
        assert all(_names_its_source(m, system.topic(topic)) for m in messages)
    assert_same_end_state(EndState(**{**vars(end), "dead_letters": []}), undisturbed)


def _names_its_source(message: Message, topic: str) -> bool:
    return message.headers.get("tierflow-source-topic") == topic.encode() and (
        "tierflow-source-offset" in message.headers
    )
