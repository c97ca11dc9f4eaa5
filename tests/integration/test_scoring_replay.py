"""Replay rebuilds scoring's state from the topic and keeps the overrides."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import factories
from tests.infra import Infra, wait_until
from tests.integration.scoring_support import ScoringSandbox

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
AUM_LEVELS = ["0.00", "12000.00", "80000.00", "900000.00", "8000000.00"]


def stream(customers: int = 200, seed: int = 11) -> list[dict[str, Any]]:
    """A reproducible stream whose decisions do not depend on the seconds between runs."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(customers):
        customer_id = f"C-F-{n:04d}"
        as_of = (NOW - timedelta(days=40)).isoformat()
        events.append(factories.balance(customer_id, aum=rng.choice(AUM_LEVELS), as_of=as_of))
        for _ in range(rng.randint(3, 20)):
            when = (NOW - timedelta(hours=rng.randint(1, 47))).isoformat()
            amount = f"{rng.randint(1, 900000) / 100:.2f}"
            events.append(factories.with_envelope(factories.transaction(customer_id, amount), time=when))
        if rng.random() < 0.5:
            events.append(factories.balance(customer_id, aum=rng.choice(AUM_LEVELS), as_of=as_of))
    return events


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return stream()


def test_replay_rebuilds_the_same_state_from_the_topic_and_keeps_overrides(
    infra: Infra, events: list[dict[str, Any]]
) -> None:
    import asyncio

    import httpx

    from services.scoring.replay import replay
    from tests.infra import ADMIN_KEY, patched_environ

    box = ScoringSandbox(infra)
    try:
        first = box.start()
        box.produce(events)
        wait_until(lambda: box.applied() == len(events), 180, "the first pass")
        override = {
            "tier": "private",
            "reason": "board-approved exception",
            "expires_at": (NOW + timedelta(days=9)).isoformat(),
        }
        response = httpx.put(
            f"{first.base_url}/v1/customers/C-F-0001/override",
            json=override,
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
        assert response.status_code == 200
        before = box.snapshot()
        box.stop_all()

        with patched_environ(infra.env(**box.env())):
            from shared.settings import Settings

            outcome = asyncio.run(replay(Settings()))
        assert outcome["overrides_kept"] == 1
        assert box.applied() == 0

        box.start()
        wait_until(lambda: box.applied() == len(events), 180, "the replay")
        after = box.snapshot()
        assert after["customers"] == before["customers"]
        assert after["customers"]["C-F-0001"][0] == "private"
        # The overridden customer is decided under the override from the first event on.
        unaffected = [c for c in before["changes"] if c[0] != "C-F-0001"]
        assert [c for c in after["changes"] if c[0] != "C-F-0001"] == unaffected
    finally:
        box.stop_all()


def test_a_replay_keeps_unrelayed_changes_and_is_refused_when_the_topic_lost_history(infra: Infra) -> None:
    import asyncio
    import uuid

    from services.scoring.replay import ReplayRefused, replay
    from tests.infra import fetch_rows, fresh_database

    database_url = fresh_database(infra, f"replay_{uuid.uuid4().hex[:8]}")
    box = Infra(database_url, infra.bootstrap_servers, infra.workdir)
    fetch_rows(database_url, "INSERT INTO scoring.outbox (topic, key, value) VALUES ('t', 'C1', 'unsent')")
    fetch_rows(database_url, "INSERT INTO scoring.customers (customer_id, tier) VALUES ('C1', 'mass')")
    fetch_rows(database_url, "UPDATE scoring.history_span SET earliest_event_at = '2026-01-01T00:00:00Z'")

    expired = box.settings(TIERFLOW_EVENTS_RETAINED_FROM="2026-06-01T00:00:00Z")
    with pytest.raises(ReplayRefused, match="holds events only from 2026-06-01"):
        asyncio.run(replay(expired))
    assert fetch_rows(database_url, "SELECT count(*) FROM scoring.customers")[0][0] == 1

    asyncio.run(replay(box.settings(TIERFLOW_EVENTS_RETAINED_FROM="2025-12-01T00:00:00Z")))
    assert fetch_rows(database_url, "SELECT count(*) FROM scoring.customers")[0][0] == 0
    assert fetch_rows(database_url, "SELECT value FROM scoring.outbox") == [(b"unsent",)]
