"""A record the broker refuses for good is set aside with its reason; the relay goes on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from shared.db import create_engine
from shared.kafka import LazyProducer
from shared.outbox import OutboxRelay
from shared.topics import TIER_CHANGES, Topics
from tests.infra import Infra, create_topics, fetch_rows, fresh_database
from tests.integration.worker_support import eventually
from tests.kafka_reader import read_messages
from tierflow.lag import outbox_set_aside

pytestmark = pytest.mark.integration
# Over the producer's request limit (1 MiB, Kafka's default message.max.bytes too). The embedded
# broker takes records of any size; this limit is what refuses it, for good, with or without it.
TOO_LARGE = 2 * 1024 * 1024


async def test_a_record_too_large_for_the_broker_is_set_aside_after_its_tries_and_the_rest_flows(
    infra: Infra,
) -> None:
    name = f"ob{uuid.uuid4().hex[:8]}"
    env = infra.env(
        DATABASE_URL=await asyncio.to_thread(fresh_database, infra, name),
        TIERFLOW_TOPIC_PREFIX=f"{name}.",
        TIERFLOW_SCORING_GROUP=f"{name}-scoring",
        TIERFLOW_ENGAGEMENT_GROUP=f"{name}-engagement",
        TIERFLOW_FEEDBACK_GROUP=f"{name}-feedback",
    )
    settings = infra.settings(**env)
    await asyncio.to_thread(create_topics, settings)
    topic = Topics.from_settings(settings).name(TIER_CHANGES)
    engine = create_engine(settings)
    values = [b'{"n": 1}', b"x" * TOO_LARGE, b'{"n": 3}']
    async with engine.begin() as db:
        for value in values:
            await db.execute(
                text("INSERT INTO scoring.outbox (topic, key, value) VALUES (:topic, 'C1', :value)"),
                {"topic": topic, "value": value},
            )

    producer = LazyProducer(settings)
    relay = OutboxRelay(engine, producer, "scoring", max_attempts=3)
    # As if the broker had been away for two hours: the alert metric says how stale the backlog is.
    async with engine.begin() as db:
        await db.execute(text("UPDATE scoring.outbox SET created_at = now() - interval '2 hours'"))
    assert await relay.measure_backlog() == 3
    stale_s = REGISTRY.get_sample_value("tierflow_outbox_oldest_age_seconds", {"schema": "scoring"})
    assert stale_s is not None
    assert 7200 <= stale_s < 7300
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _empty(settings.database_url.get_secret_value()), 60, "the outbox drained")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)

    published = await asyncio.to_thread(read_messages, infra.bootstrap_servers, topic)
    # Records ahead of the refused one in its batch may go out twice, with the same id, as the
    # outbound contract allows (at least once); the refused one never.
    assert list(dict.fromkeys(m.value for m in published)) == [values[0], values[2]]
    [rejected] = await asyncio.to_thread(
        fetch_rows,
        settings.database_url.get_secret_value(),
        "SELECT key, value, attempts, reason FROM scoring.outbox_rejected",
    )
    assert (bytes(rejected["key"]), bytes(rejected["value"])) == (b"C1", values[1])
    assert rejected["attempts"] == 3
    assert rejected["reason"].startswith("MessageSizeTooLargeError: ")

    await relay.measure_backlog()
    assert REGISTRY.get_sample_value("tierflow_outbox_set_aside", {"schema": "scoring"}) == 1
    assert REGISTRY.get_sample_value("tierflow_outbox_oldest_age_seconds", {"schema": "scoring"}) == 0
    assert await outbox_set_aside(settings) == {"scoring": 1, "engagement": 0, "feedback": 0}
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tierflow.cli", "lag"],
        env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    two_column_rows = [cells for line in printed.stdout.splitlines() if len(cells := line.split("│")) == 4]
    assert [cell.strip() for cell in two_column_rows[0][1:3]] == ["scoring", "1"]
    await producer.close()
    await engine.dispose()


async def _empty(database_url: str) -> bool:
    rows = await asyncio.to_thread(fetch_rows, database_url, "SELECT count(*) FROM scoring.outbox")
    return bool(rows[0][0] == 0)


async def test_a_nudged_relay_publishes_rows_at_once_not_after_its_idle_pause(infra: Infra) -> None:
    name = f"on{uuid.uuid4().hex[:8]}"
    settings = infra.settings(
        **infra.env(
            DATABASE_URL=await asyncio.to_thread(fresh_database, infra, name),
            TIERFLOW_TOPIC_PREFIX=f"{name}.",
        )
    )
    await asyncio.to_thread(create_topics, settings)
    topic = Topics.from_settings(settings).name(TIER_CHANGES)
    engine = create_engine(settings)
    producer = LazyProducer(settings)
    relay = OutboxRelay(engine, producer, "scoring")
    stop = asyncio.Event()
    # An idle pause far longer than the test waits: only the nudge can get the row out in time.
    running = asyncio.create_task(relay.run(stop, idle_s=600))
    try:
        await asyncio.sleep(1)  # the relay found nothing and is pausing
        async with engine.begin() as db:
            await db.execute(
                text("INSERT INTO scoring.outbox (topic, key, value) VALUES (:topic, 'C1', '{}')"),
                {"topic": topic},
            )
        relay.nudge()
        await eventually(lambda: _empty(settings.database_url.get_secret_value()), 10, "the row relayed")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await producer.close()
        await engine.dispose()
    published = await asyncio.to_thread(read_messages, infra.bootstrap_servers, topic)
    assert [(m.key, m.value) for m in published] == [(b"C1", b"{}")]
