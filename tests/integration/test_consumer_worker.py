"""The shared consumer: retries what is retriable, dead-letters poison, commits after processing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

from shared.consumer import Backoff, ConsumerWorker, Delivered, PoisonMessage
from shared.errors import TierFlowError
from shared.kafka import LazyProducer, Record, group_lag
from shared.settings import Settings
from shared.topics import BANK_EVENTS, Topics
from tests.infra import Infra, create_topics
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration


class Flaky(TierFlowError):
    retriable = True


class Rejected(TierFlowError):
    retriable = False


def decode(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    try:
        value: dict[str, str] = json.loads(record.value or b"")
    except ValueError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    return value


class Recorder:
    def __init__(self) -> None:
        self.applied: list[str] = []
        # The partitions of each batch applied, in the order applied.
        self.batches: list[set[int]] = []
        self.failures_left = 1
        self._done: tuple[int, asyncio.Event] | None = None

    def applying(self, count: int) -> asyncio.Event:
        """Set once `count` records have been applied."""
        self._done = (count, asyncio.Event())
        return self._done[1]

    async def handle(self, batch: Sequence[Delivered[dict[str, str]]]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise Flaky("database briefly unavailable")
        if any(item.value["id"] == "bad" for item in batch):
            raise Rejected("amount exceeds the configured limit")
        self.applied.extend(item.value["id"] for item in batch)
        self.batches.append({item.partition for item in batch})
        if self._done is not None and len(self.applied) >= self._done[0]:
            self._done[1].set()


async def run_until(worker: ConsumerWorker[dict[str, str]], done: asyncio.Event, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(done.wait(), seconds)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def make_worker(
    settings: Settings,
    group: str,
    recorder: Recorder,
    producer: LazyProducer,
    *,
    across_partitions: bool = False,
) -> ConsumerWorker[dict[str, str]]:
    topics = Topics.from_settings(settings)
    return ConsumerWorker(
        settings,
        topics=[topics.bank_events],
        group_id=group,
        decode=decode,
        handle=recorder.handle,
        dead_letter_topic=lambda _topic: topics.dlq(BANK_EVENTS),
        producer=producer,
        backoff=Backoff(initial_s=0.05),
        across_partitions=across_partitions,
    )


async def topics_of_their_own(infra: Infra) -> tuple[Settings, str, LazyProducer]:
    """Settings for topics with a prefix of their own, the events topic, and a producer."""
    settings = infra.settings(TIERFLOW_TOPIC_PREFIX=f"w{uuid.uuid4().hex[:8]}.")
    await asyncio.to_thread(create_topics, settings)
    return settings, Topics.from_settings(settings).bank_events, LazyProducer(settings)


async def test_poison_is_dead_lettered_with_the_reason_and_the_rest_is_applied_once(infra: Infra) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}."
    settings = infra.settings(TIERFLOW_TOPIC_PREFIX=prefix)
    await asyncio.to_thread(create_topics, settings)
    topics = Topics.from_settings(settings)
    producer = LazyProducer(settings)
    values = [b'{"id": "a"}', b"{not json", b'{"id": "bad"}', b'{"id": "b"}', b'{"id": "c"}']
    # One key: one partition, so the order is defined.
    await producer.publish([Record(topics.bank_events, b"C1", v) for v in values])

    recorder = Recorder()
    group = f"g-{uuid.uuid4().hex[:8]}"
    await run_until(make_worker(settings, group, recorder, producer), recorder.applying(3), 60)

    assert recorder.applied == ["a", "b", "c"]
    dead = await asyncio.to_thread(read_messages, infra.bootstrap_servers, topics.dlq(BANK_EVENTS), 2)
    assert sorted(m.value for m in dead) == [b'{"id": "bad"}', b"{not json"]
    reasons = {m.value: m.headers["tierflow-error"].decode() for m in dead}
    assert "not JSON" in reasons[b"{not json"]
    assert "limit" in reasons[b'{"id": "bad"}']
    assert all(m.headers["tierflow-source-topic"] == topics.bank_events.encode() for m in dead)

    # Offsets were committed after processing, the dead-lettered records' included: the same
    # group would start past everything.
    assert set((await group_lag(settings, group, [topics.bank_events])).values()) == {0}
    await producer.close()


async def test_group_lag_counts_every_partition_whether_or_not_a_member_holds_it(infra: Infra) -> None:
    settings, topic, producer = await topics_of_their_own(infra)
    ids = [f"e{n}" for n in range(40)]
    # Two customers: many records per batch on some partitions, none on others.
    await producer.publish(
        [Record(topic, f"C{n % 2 + 2}".encode(), json.dumps({"id": i}).encode()) for n, i in enumerate(ids)]
    )
    group = f"g-{uuid.uuid4().hex[:8]}"

    # No member has joined yet: the whole topic is owed, spread over the partitions.
    before = await group_lag(settings, group, [topic])
    assert sorted(p.partition for p in before) == list(range(len(before)))
    assert sum(before.values()) == len(ids)
    assert sorted(before.values())[0] == 0
    assert sorted(before.values())[-2:] == [len(ids) // 2] * 2

    recorder = Recorder()
    recorder.failures_left = 0
    await run_until(make_worker(settings, group, recorder, producer), recorder.applying(len(ids)), 60)

    assert sorted(recorder.applied) == sorted(ids)
    assert await group_lag(settings, group, [topic]) == dict.fromkeys(before, 0)
    await producer.close()


def split_polls(group: str) -> float:
    """Polls of this group the worker applied partition by partition after one call failed."""
    labels = {"group": group, "cause": "failed"}
    return REGISTRY.get_sample_value("tierflow_consumer_split_polls_total", labels) or 0.0


async def test_records_of_several_partitions_are_applied_together_each_partition_in_order(
    infra: Infra,
) -> None:
    settings, topic, producer = await topics_of_their_own(infra)
    keys = [f"C{n}" for n in range(16)]

    def records(ids: list[str]) -> list[Record]:
        return [Record(topic, i.split("-")[0].encode(), json.dumps({"id": i}).encode()) for i in ids]

    first = [f"{key}-{n}" for n in range(5) for key in keys]
    await producer.publish(records(first))
    recorder = Recorder()
    recorder.failures_left = 0
    group = f"g-{uuid.uuid4().hex[:8]}"
    worker = make_worker(settings, group, recorder, producer, across_partitions=True)
    await run_until(worker, recorder.applying(len(first)), 60)
    assert any(len(partitions) > 1 for partitions in recorder.batches)

    # A record the handler refuses among the others, and a first call that fails (an outage,
    # briefly): the batch fetched fails as a whole and is applied partition by partition.
    second = [f"{key}-{n}" for n in range(5, 8) for key in keys]
    await producer.publish(
        [*records(second[:20]), Record(topic, b"C3", b'{"id": "bad"}'), *records(second[20:])]
    )
    recorder.failures_left = 1
    split_before = split_polls(group)
    worker = make_worker(settings, group, recorder, producer, across_partitions=True)
    await run_until(worker, recorder.applying(len(first) + len(second)), 60)
    assert split_polls(group) > split_before

    assert sorted(recorder.applied) == sorted(first + second)
    for key in keys:
        mine = [i for i in recorder.applied if i.split("-")[0] == key]
        assert mine == sorted(mine, key=lambda i: int(i.split("-")[1]))
    dead = await asyncio.to_thread(
        read_messages, infra.bootstrap_servers, Topics.from_settings(settings).dlq(BANK_EVENTS), 1
    )
    assert [m.value for m in dead] == [b'{"id": "bad"}']
    assert set((await group_lag(settings, group, [topic])).values()) == {0}
    await producer.close()
