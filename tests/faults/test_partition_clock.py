"""The event clock under a backlog consumed partition by partition.

With `TIERFLOW_SCORING_CLOCK=event` (replays, backfills, the demo) scoring's "now" is the time
of the events applied. A backlog consumed unevenly leaves partition 0 a month ahead of the
others; the review loop runs at that point. The states, the tier history and the tier-change
events must be those of the same events consumed in time order with reviews at the same
points: a customer is judged by its own partition's clock, never by another partition's.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.engagement.handlers import Engagement, change_decoder
from services.scoring.api import customer_view
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.policy import default_policy
from services.scoring.domain.simulation import Simulation
from services.scoring.handlers import Scoring
from services.scoring.store import StateCache
from shared.clock import Clock, ClockMode
from shared.consumer import Delivered
from shared.db import create_engine
from shared.settings import Settings
from shared.topics import TIER_CHANGES
from tests import factories
from tests.infra import Infra, fetch_rows, fresh_database
from tests.integration.scoring_support import as_delivered

pytestmark = pytest.mark.faults
PARTITIONS = 3
CUSTOMERS_PER_PARTITION = 3
END = datetime(2026, 9, 30, 12, tzinfo=UTC)
# Partition 0 is consumed to END while the others are a month behind, at CUT.
CUT = END - timedelta(days=30)
# Active every 15 days, then a 45-day pause: judged 65 days after the last activity (a month
# early, by partition 0's clock) that pause looks like 60 days of inactivity, an at-risk customer.
ACTIVE_DAYS_BEFORE_END = [150, 135, 120, 105, 90, 75, 65, 20, 10, 0]


def partition_events(partition: int) -> list[dict[str, Any]]:
    """The partition's records in partition order: its customers' events in time order."""
    events: list[tuple[datetime, dict[str, Any]]] = []
    for n in range(CUSTOMERS_PER_PARTITION):
        customer_id = f"C-P{partition}-{n}"
        opened = END - timedelta(days=160, hours=n)
        events.append(
            (opened, factories.with_envelope(factories.customer(customer_id), time=opened.isoformat()))
        )
        deposit = factories.balance(customer_id, aum="600000.00", as_of=opened.isoformat())
        events.append((opened, factories.with_envelope(deposit, time=opened.isoformat())))
        for days in ACTIVE_DAYS_BEFORE_END:
            when = END - timedelta(days=days, hours=n + 1)
            payment = factories.transaction(customer_id, "2500.00")
            events.append((when, factories.with_envelope(payment, time=when.isoformat())))
    events.sort(key=lambda timed: timed[0])
    return [event for _, event in events]


def delivered(infra: Infra) -> list[list[Delivered[ScoringEvent]]]:
    return [as_delivered(infra.settings(), partition_events(p), p) for p in range(PARTITIONS)]


def until(items: list[Delivered[ScoringEvent]], moment: datetime) -> list[Delivered[ScoringEvent]]:
    return [item for item in items if item.value.time <= moment]


def after(items: list[Delivered[ScoringEvent]], moment: datetime) -> list[Delivered[ScoringEvent]]:
    return [item for item in items if item.value.time > moment]


async def consume(
    database_url: str, infra: Infra, rounds: Sequence[Sequence[list[Delivered[ScoringEvent]]]]
) -> None:
    """Each round applies the given partitions' records in batches of 4 per partition, round
    robin as a consumer fetches them, then runs the review loop until nothing is due."""
    settings = infra.settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        scoring = Scoring(
            engine, settings, "customer.tier-changes.v1", ClockMode.EVENT, None, StateCache(100)
        )
        await scoring.ensure_policy()
        for fetched in rounds:
            pending = [list(items) for items in fetched]
            while any(pending):
                for items in pending:
                    batch, items[:] = items[:4], items[4:]
                    if batch:
                        await scoring.apply_batch(batch)
            while await scoring.review_due(100):
                pass
    finally:
        await engine.dispose()


def outcome(database_url: str) -> dict[str, Any]:
    customers = fetch_rows(
        database_url,
        "SELECT customer_id, tier, stage, score, policy_version, tier_since, next_review_at "
        "FROM scoring.customers ORDER BY customer_id",
    )
    history = fetch_rows(
        database_url,
        "SELECT change_id, customer_id, at, tier, stage, direction, trigger FROM scoring.tier_history "
        "ORDER BY customer_id, at, change_id",
    )
    outbox = fetch_rows(database_url, "SELECT key, value FROM scoring.outbox ORDER BY key, id")
    return {
        "customers": [tuple(row) for row in customers],
        "history": [tuple(row) for row in history],
        "outbox": [(bytes(row["key"]), json.loads(row["value"])) for row in outbox],
    }


def run(infra: Infra, name: str, rounds: Sequence[Sequence[list[Delivered[ScoringEvent]]]]) -> dict[str, Any]:
    database_url = fresh_database(infra, f"{name}_{uuid.uuid4().hex[:6]}")
    asyncio.run(consume(database_url, infra, rounds))
    return outcome(database_url)


def test_a_partition_a_month_ahead_changes_no_one_elses_decisions(infra: Infra) -> None:
    ahead, *behind = delivered(infra)
    in_time_order = run(
        infra,
        "clock_ordered",
        [
            [until(ahead, CUT), *(until(items, CUT) for items in behind)],
            [after(ahead, CUT), *(after(items, CUT) for items in behind)],
        ],
    )
    skewed = run(
        infra,
        "clock_skewed",
        [[ahead, *(until(items, CUT) for items in behind)], [*(after(items, CUT) for items in behind)]],
    )

    assert len(in_time_order["customers"]) == PARTITIONS * CUSTOMERS_PER_PARTITION
    # The pause is long enough for a false judgement: nobody is at risk when judged in time.
    assert not [row for row in in_time_order["history"] if row[4] == "at_risk"]
    assert skewed["history"] == in_time_order["history"]
    assert skewed["customers"] == in_time_order["customers"]
    assert skewed["outbox"] == in_time_order["outbox"]


async def read_while_skewed(
    database_url: str, infra: Infra
) -> tuple[Simulation, dict[str, datetime], dict[str, int]]:
    """After partition 0 ran a month ahead: the active policy simulated, and each customer's
    view with the moment it was shown at and the inactivity it showed."""
    ahead, *behind = delivered(infra)
    await consume(database_url, infra, [[ahead, *(until(items, CUT) for items in behind)]])
    settings = infra.settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        scoring = Scoring(engine, settings, "customer.tier-changes.v1", ClockMode.EVENT)
        simulation, _, _ = await scoring.simulate(default_policy())
        moments: dict[str, datetime] = {}
        inactive_days: dict[str, int] = {}
        for p in range(PARTITIONS):
            customer_id = f"C-P{p}-0"
            found = await scoring.customer(customer_id, None)
            assert found is not None
            moments[customer_id] = found[2]
            days = customer_view(*found).features.days_since_last_activity
            assert days is not None
            inactive_days[customer_id] = days
        return simulation, moments, inactive_days
    finally:
        await engine.dispose()


def test_views_and_simulations_judge_each_customer_by_its_own_partitions_clock(infra: Infra) -> None:
    database_url = fresh_database(infra, f"clock_reads_{uuid.uuid4().hex[:6]}")
    simulation, moments, inactive_days = asyncio.run(read_while_skewed(database_url, infra))

    # Partition 0's latest event is its first customer's last payment, an hour before END.
    assert moments["C-P0-0"] == END - timedelta(hours=1)
    assert moments["C-P1-0"] <= CUT
    assert moments["C-P2-0"] <= CUT
    # Judged at its own clock a lagging customer was active within days, not a month ago.
    assert inactive_days["C-P1-0"] < 30
    # The active policy, simulated, moves no one: each customer was decided at its own clock.
    assert simulation.customers == PARTITIONS * CUSTOMERS_PER_PARTITION
    assert all(before == after for before, after in simulation.stage_moves)
    assert all(before == after for before, after in simulation.tier_moves)


# Engagement: a partition of the tier-change topic a month ahead expires only its own customers' items.
CHANGES_START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)


def timed_change(
    customer_id: str, days: int, partition: int, offset: int, settings: Settings
) -> Delivered[Any]:
    at = (CHANGES_START + timedelta(days=days)).isoformat()
    event = factories.with_envelope(
        factories.tier_change(customer_id, ("mass", "regular"), ("wealth", "core")), time=at
    )
    key, value = customer_id.encode(), json.dumps(event).encode()
    record = ConsumerRecord(TIER_CHANGES, partition, offset, 0, 0, key, value, None, len(key), len(value), ())
    return Delivered(change_decoder(settings)(record), TIER_CHANGES, partition, offset)


async def expire_with_one_partition_ahead(database_url: str, infra: Infra) -> None:
    settings = infra.settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        engagement = Engagement(engine, "customer.outreach.v1", Clock(ClockMode.EVENT))
        await engagement.ensure_playbook()
        # Partition 0 is consumed a month on; partition 1 only five days.
        await engagement.apply_batch(
            [timed_change("C-E-A", 0, 0, 0, settings), timed_change("C-E-B", 30, 0, 1, settings)]
        )
        await engagement.apply_batch(
            [timed_change("C-E-C", 0, 1, 0, settings), timed_change("C-E-D", 5, 1, 1, settings)]
        )
        while await engagement.expire_due(100):
            pass
    finally:
        await engine.dispose()


def test_a_tier_change_partition_a_month_ahead_expires_only_its_own_customers_items(infra: Infra) -> None:
    database_url = fresh_database(infra, f"engagement_clock_{uuid.uuid4().hex[:6]}")
    asyncio.run(expire_with_one_partition_ahead(database_url, infra))
    rows = fetch_rows(database_url, "SELECT customer_id, status, closed_at FROM engagement.items")
    items: dict[str, list[tuple[str, Any]]] = {}
    for row in rows:
        items.setdefault(row["customer_id"], []).append((row["status"], row["closed_at"]))

    assert items["C-E-A"], "the upgrade planned outreach"
    assert items["C-E-C"], "the upgrade planned outreach"
    # By its own partition's clock, 30 days on, C-E-A's items are past their 14 days.
    assert {status for status, _ in items["C-E-A"]} == {"expired"}
    assert {closed for _, closed in items["C-E-A"]} == {CHANGES_START + timedelta(days=30)}
    # C-E-C's partition is five days on: its items are still to be worked.
    assert "expired" not in {status for status, _ in items["C-E-C"]}
    assert "expired" not in {status for status, _ in items["C-E-B"] + items["C-E-D"]}
