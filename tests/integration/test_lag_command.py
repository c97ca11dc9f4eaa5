"""`tierflow lag`: each worker group's unprocessed records, from the broker, replays included."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from services.scoring.replay import replay
from shared.kafka import LazyProducer, Record
from shared.settings import Settings
from shared.topics import (
    BANK_EVENTS,
    FEEDBACK_EVENTS,
    HOUSEHOLD_CONTRIBUTIONS,
    OUTREACH,
    TIER_CHANGES,
    Topics,
)
from tests.infra import Infra, create_topics, fresh_database
from tierflow.lag import worker_lag

pytestmark = pytest.mark.integration


def test_lag_counts_what_each_group_has_not_processed_and_follows_scoring_replays(infra: Infra) -> None:
    name = f"lag{uuid.uuid4().hex[:8]}"
    env = infra.env(
        DATABASE_URL=fresh_database(infra, name),
        TIERFLOW_TOPIC_PREFIX=f"{name}.",
        TIERFLOW_SCORING_GROUP=f"{name}-scoring",
        TIERFLOW_ENGAGEMENT_GROUP=f"{name}-engagement",
        TIERFLOW_FEEDBACK_GROUP=f"{name}-feedback",
        TIERFLOW_HOUSEHOLD_GROUP=f"{name}-households",
    )
    settings = infra.settings(**env)
    create_topics(settings)
    topics = Topics.from_settings(settings)
    asyncio.run(_publish(settings, {topics.name(BANK_EVENTS): 7, topics.name(TIER_CHANGES): 3}))

    lag = _lag(settings)
    assert lag == {
        ("scoring", f"{name}-scoring", topics.name(BANK_EVENTS)): 7,
        ("scoring", f"{name}-scoring", topics.name(FEEDBACK_EVENTS)): 0,
        ("engagement", f"{name}-engagement", topics.name(TIER_CHANGES)): 3,
        ("feedback", f"{name}-feedback", topics.name(TIER_CHANGES)): 3,
        ("feedback", f"{name}-feedback", topics.name(OUTREACH)): 0,
        ("households", f"{name}-households", topics.name(HOUSEHOLD_CONTRIBUTIONS)): 0,
    }

    # A replay gives scoring a fresh group: everything is to be processed again, under its name.
    asyncio.run(replay(settings))
    assert _lag(settings)[("scoring", f"{name}-scoring-replay1", topics.name(BANK_EVENTS))] == 7

    printed = subprocess.run(
        [sys.executable, "-m", "tierflow.cli", "lag"],
        env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    replayed = f"{name}-scoring-replay1"
    row = next(line for line in printed.splitlines() if replayed in line and BANK_EVENTS in line)
    assert row.split("│")[-2].strip() == "7"


def _lag(settings: Settings) -> dict[tuple[str, str, str], int]:
    return {(r.service, r.group, r.topic): r.records for r in asyncio.run(worker_lag(settings))}


async def _publish(settings: Settings, counts: dict[str, int]) -> None:
    producer = LazyProducer(settings)
    try:
        await producer.publish(
            [Record(topic, f"C{n}".encode(), b"{}") for topic, count in counts.items() for n in range(count)]
        )
    finally:
        await producer.close()
