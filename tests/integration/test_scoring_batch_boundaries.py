"""Results do not depend on where the micro-batches start and end.

The same stream, applied through the real store in batches of 1, 100 and 2,000 records
with the fixed clock, must leave the same states, the same tier history and the same
tier-change events in the outbox, intermediate changes included.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.scoring.domain.events import ScoringEvent
from services.scoring.handlers import Scoring
from services.scoring.store import StateCache
from shared.clock import ClockMode
from shared.consumer import Delivered
from shared.contracts.types import Tier
from shared.db import create_engine
from tests import factories
from tests.infra import Infra, fetch_rows, fresh_database
from tests.integration.scoring_support import as_delivered

pytestmark = pytest.mark.integration
AS_OF = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
# Around every gate of the default policy (50,000 / 500,000 / 6,000,000 on the 30-day average).
AUM_LEVELS = ["0.00", "30000.00", "90000.00", "450000.00", "900000.00", "5000000.00", "9000000.00"]
SEGMENTS = ["individual", "corporate", "institution"]


def crossing_stream(customers: int = 30, seed: int = 7) -> list[dict[str, Any]]:
    """Balances that cross the gates back and forth, transactions and profile changes, interleaved."""
    rng = random.Random(seed)
    per_customer: list[list[dict[str, Any]]] = []
    for n in range(customers):
        customer_id = f"C-B-{n:04d}"
        opened = (AS_OF - timedelta(days=60)).isoformat()
        events = [
            factories.with_envelope(
                factories.customer(customer_id, segment=rng.choice(SEGMENTS)), time=opened
            )
        ]
        for step in range(12):
            when = (AS_OF - timedelta(days=48 - 4 * step, hours=rng.randint(0, 20))).isoformat()
            events.append(
                factories.with_envelope(
                    factories.balance(customer_id, aum=rng.choice(AUM_LEVELS), as_of=when), time=when
                )
            )
            for _ in range(rng.randint(0, 2)):
                amount = f"{rng.randint(100, 5_000_000) / 100:.2f}"
                events.append(factories.with_envelope(factories.transaction(customer_id, amount), time=when))
            if rng.random() < 0.2:
                events.append(
                    factories.with_envelope(
                        factories.customer(customer_id, segment=rng.choice(SEGMENTS)), time=when
                    )
                )
        per_customer.append(events)
    # Round robin over customers, so every batch mixes many of them.
    stream: list[dict[str, Any]] = []
    while any(per_customer):
        for events in per_customer:
            if events:
                stream.append(events.pop(0))
    return stream


def delivered(stream: list[dict[str, Any]], infra: Infra) -> list[Delivered[ScoringEvent]]:
    return as_delivered(infra.settings(), stream)


def outcome(database_url: str) -> dict[str, Any]:
    customers = [
        tuple(row)
        for row in fetch_rows(
            database_url,
            "SELECT customer_id, tier, stage, score, policy_version, tier_since, next_review_at, "
            "state FROM scoring.customers ORDER BY customer_id",
        )
    ]
    history = [
        tuple(row)
        for row in fetch_rows(
            database_url,
            "SELECT change_id, customer_id, at, previous_tier, tier, previous_stage, stage, direction, "
            "score, policy_version, reasons::text, caused_by, trigger FROM scoring.tier_history "
            "ORDER BY change_id",
        )
    ]
    outbox: dict[bytes, list[Any]] = {}
    for row in fetch_rows(database_url, "SELECT key, value FROM scoring.outbox ORDER BY id"):
        outbox.setdefault(bytes(row["key"]), []).append(json.loads(row["value"]))
    return {"customers": customers, "history": history, "outbox": outbox}


async def run(database_url: str, infra: Infra, items: list[Delivered[ScoringEvent]], size: int) -> None:
    settings = infra.settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        scoring = Scoring(
            engine, settings, "customer.tier-changes.v1", ClockMode.FIXED, AS_OF, StateCache(10_000)
        )
        await scoring.ensure_policy()
        for first in range(0, len(items), size):
            await scoring.apply_batch(items[first : first + size])
    finally:
        await engine.dispose()


def test_states_and_tier_changes_do_not_depend_on_batch_boundaries(infra: Infra) -> None:
    stream = crossing_stream()
    items = delivered(stream, infra)
    outcomes = {}
    for size in (1, 100, 2_000):
        database_url = fresh_database(infra, f"batches_{size}_{uuid.uuid4().hex[:6]}")
        asyncio.run(run(database_url, infra, items, size))
        outcomes[size] = outcome(database_url)

    reference = outcomes[2_000]
    changes_per_customer = Counter(row[1] for row in reference["history"])
    assert len(reference["customers"]) == 30
    # The stream is meant to cross gates back and forth inside one batch of 2,000.
    assert max(changes_per_customer.values()) >= 4
    assert sum(1 for row in reference["history"] if row[7] == "downgrade") >= 10
    for size in (1, 100):
        assert outcomes[size]["customers"] == reference["customers"], f"states differ with batches of {size}"
        assert outcomes[size]["history"] == reference["history"], f"history differs with batches of {size}"
        assert outcomes[size]["outbox"] == reference["outbox"], f"outbox differs with batches of {size}"


def test_a_state_changed_elsewhere_is_read_again_not_taken_from_the_cache(infra: Infra) -> None:
    """An override written by another instance between two batches is in the next decision."""
    database_url = fresh_database(infra, f"cache_{uuid.uuid4().hex[:6]}")
    settings = infra.settings(DATABASE_URL=database_url)
    customer_id = "C-B-0000"
    items = [item for item in delivered(crossing_stream(), infra) if item.value.customer_id == customer_id]

    async def scenario() -> int:
        engine = create_engine(settings)
        try:
            topic = "customer.tier-changes.v1"
            consuming = Scoring(engine, settings, topic, ClockMode.FIXED, AS_OF, StateCache(100))
            operator = Scoring(engine, settings, topic, ClockMode.FIXED, AS_OF)
            await consuming.ensure_policy()
            await consuming.apply_batch(items[:5])
            cached = len(consuming.cache)
            expires = AS_OF + timedelta(days=3)
            await operator.set_override(customer_id, Tier.PRIVATE, "board decision", expires, "ops")
            await consuming.apply_batch(items[5:])
        finally:
            await engine.dispose()
        return cached

    cached = asyncio.run(scenario())
    query = "SELECT tier, state FROM scoring.customers WHERE customer_id = $1"
    row = fetch_rows(database_url, query, customer_id)[0]
    assert cached == 1
    assert row["tier"] == "private"
    assert json.loads(row["state"])["override"]["reason"] == "board decision"
