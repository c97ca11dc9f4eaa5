"""What keeps time-driven decisions honest: lagging partitions wait, and a policy activation
reaches every decision taken under the old policy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring.bootstrap import lagging_partitions
from services.scoring.domain.policy import Policy, default_policy
from services.scoring.handlers import Scoring
from services.scoring.store import ScoringStore
from shared.clock import ClockMode
from shared.db import create_engine
from shared.topics import BANK_EVENTS, Topics
from tests import factories
from tests.infra import Infra, create_topics, fetch_rows, fresh_database
from tests.integration.scoring_support import as_delivered

pytestmark = pytest.mark.integration
TIER_CHANGES = "customer.tier-changes.v1"


def active_customer(customer_id: str, last_active: datetime) -> list[dict[str, object]]:
    when = last_active.isoformat()
    return [
        factories.with_envelope(factories.customer(customer_id), time=when),
        factories.with_envelope(factories.balance(customer_id, aum="600000.00", as_of=when), time=when),
        factories.with_envelope(factories.transaction(customer_id, "2500.00"), time=when),
    ]


def test_with_the_wall_clock_customers_of_a_lagging_partition_wait_for_their_review(infra: Infra) -> None:
    database_url = fresh_database(infra, f"lagging_{uuid.uuid4().hex[:6]}")
    settings = infra.settings(DATABASE_URL=database_url)
    decided_at = datetime.now(UTC) - timedelta(days=100)

    async def reviewed(engine: AsyncEngine) -> dict[str, str]:
        """Each reviewed customer's stage now."""
        async with engine.connect() as db:
            rows = await db.execute(
                text(
                    "SELECT customer_id, stage FROM scoring.customers WHERE customer_id IN "
                    "(SELECT customer_id FROM scoring.tier_history WHERE trigger = 'review')"
                )
            )
            return {row[0]: row[1] for row in rows}

    async def scenario() -> list[tuple[int, dict[str, str]]]:
        engine = create_engine(settings)
        try:
            # Decided 100 days ago; by the wall clock both have been inactive long enough to be at risk.
            then = Scoring(engine, settings, TIER_CHANGES, ClockMode.FIXED, decided_at)
            await then.ensure_policy()
            await then.apply_batch(as_delivered(settings, active_customer("C-ON-TIME", decided_at), 0))
            await then.apply_batch(as_delivered(settings, active_customer("C-LAGGING", decided_at), 1))
            live = Scoring(engine, settings, TIER_CHANGES, ClockMode.WALL)
            while_lagging = await live.review_due(100, lagging=frozenset({1}))
            after_lagging = await reviewed(engine)
            caught_up = await live.review_due(100)
            return [(while_lagging, after_lagging), (caught_up, await reviewed(engine))]
        finally:
            await engine.dispose()

    while_lagging, caught_up = asyncio.run(scenario())
    assert while_lagging == (1, {"C-ON-TIME": "at_risk"})
    # Partition 1's customer is judged once its partition no longer lags.
    assert caught_up == (1, {"C-ON-TIME": "at_risk", "C-LAGGING": "at_risk"})


def test_the_lagging_partitions_are_read_from_the_brokers(infra: Infra) -> None:
    settings = infra.settings(TIERFLOW_TOPIC_PREFIX=f"lag{uuid.uuid4().hex[:8]}.")
    create_topics(settings)
    topic = Topics.from_settings(settings).name(BANK_EVENTS)
    producer = Producer({"bootstrap.servers": infra.bootstrap_servers, "acks": "all"})
    for n in range(3):
        producer.produce(topic, key=f"C-{n}".encode(), value=b"{}", partition=1)
    assert producer.flush(30) == 0
    group = f"scoring-{uuid.uuid4().hex[:8]}"

    async def measure(max_lag: int) -> frozenset[int] | None:
        return await lagging_partitions(settings.model_copy(update={"review_max_lag": max_lag}), group, topic)

    assert asyncio.run(measure(2)) == frozenset({1})
    assert asyncio.run(measure(3)) == frozenset()


async def _wait_for_lock_waits(engine: AsyncEngine, count: int) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as db:
        for _ in range(200):
            waiting = await db.scalar(query)
            await db.rollback()  # the activity view is read once per transaction
            if waiting >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} transactions waited for a lock within 10 s")


def test_a_policy_activated_while_a_batch_is_decided_reaches_that_batch(infra: Infra) -> None:
    """The activation commits while the batch, having read the old policy, waits to lock a customer."""
    database_url = fresh_database(infra, f"activation_{uuid.uuid4().hex[:6]}")
    settings = infra.settings(DATABASE_URL=database_url)
    moment = datetime.now(UTC) - timedelta(days=1)
    successor = Policy.model_validate({**default_policy().model_dump(mode="json"), "version": "successor-1"})

    async def scenario() -> None:
        engine = create_engine(settings)
        scoring = Scoring(engine, settings, TIER_CHANGES, ClockMode.FIXED, moment)
        try:
            await scoring.ensure_policy()
            async with engine.begin() as db:
                await ScoringStore(db).install_policy(successor, actor="test", activate=False)
            await scoring.apply_batch(as_delivered(settings, active_customer("C-KNOWN", moment)))
            both = active_customer("C-KNOWN", moment) + active_customer("C-NEW", moment)
            batch = as_delivered(settings, both)
            async with engine.connect() as other:
                # Another transaction creating C-NEW holds the batch at its lock.
                await other.execute(text("INSERT INTO scoring.customers (customer_id) VALUES ('C-NEW')"))
                deciding = asyncio.create_task(scoring.apply_batch(batch))
                await _wait_for_lock_waits(engine, 1)
                activating = asyncio.create_task(activate(engine, successor.version))
                await asyncio.wait({activating}, timeout=1.0)
                await other.rollback()
            await deciding
            await activating
            while await scoring.review_due(100):
                pass
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    query = "SELECT customer_id, policy_version FROM scoring.customers ORDER BY customer_id"
    versions = fetch_rows(database_url, query)
    assert [tuple(row) for row in versions] == [("C-KNOWN", "successor-1"), ("C-NEW", "successor-1")]


async def activate(engine: AsyncEngine, version: str) -> None:
    async with engine.begin() as db:
        await ScoringStore(db).activate_policy(version)


def test_a_review_does_not_bring_back_a_customer_erased_after_being_found_due(infra: Infra) -> None:
    """The review loop finds customers due, then locks them: one erased in between has no row
    left, and the lock must not create one (a row with the erased id, forever)."""
    database_url = fresh_database(infra, f"reviewerased_{uuid.uuid4().hex[:6]}")

    async def scenario() -> dict[str, object]:
        engine = create_engine(infra.settings(DATABASE_URL=database_url))
        try:
            async with engine.begin() as db:
                return dict(await ScoringStore(db).lock_customers(["C-ERASED"], create_missing=False))
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == {}
    assert fetch_rows(database_url, "SELECT count(*) FROM scoring.customers")[0][0] == 0
