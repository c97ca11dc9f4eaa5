"""A branch transfer without a tier change reaches engagement and feedback.

Scoring publishes `customer.profile_changed.v1` on `customer.tier-changes.v1`; engagement moves
the customer's items not yet under way to the new branch, assigned there by the playbook's rule
and audited; feedback moves the customer's complaints and surveys. Each service runs on the
same real PostgreSQL, fed the very records scoring's outbox holds.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement.handlers import Engagement, change_decoder
from services.feedback.handlers import Feedback, event_decoder
from services.scoring.handlers import Scoring
from shared.consumer import Delivered
from shared.contracts.outbound import PROFILE_CHANGED, TIER_CHANGED, ComplaintData
from shared.db import create_engine
from shared.settings import Settings
from shared.topics import FEEDBACK_EVENTS, TIER_CHANGES
from tests import factories
from tests.infra import Infra, fetch_rows, fresh_database
from tests.integration.scoring_support import as_delivered

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


async def published(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as db:
        rows = await db.execute(text("SELECT value FROM scoring.outbox ORDER BY id"))
        return [json.loads(row[0]) for row in rows]


def as_records(events: list[dict[str, Any]]) -> list[ConsumerRecord[bytes, bytes]]:
    records = []
    for offset, event in enumerate(events):
        key, value = event["data"]["customer_id"].encode(), json.dumps(event).encode()
        records.append(
            ConsumerRecord(TIER_CHANGES, 0, offset, 0, 0, key, value, None, len(key), len(value), ())
        )
    return records


async def transfer(settings: Settings) -> list[dict[str, Any]]:
    engine = create_engine(settings)
    try:
        scoring = Scoring(engine, settings, TIER_CHANGES)
        await scoring.ensure_policy()
        opened = factories.with_envelope(
            factories.customer("C-MOVE", branch_id="B1", rm_id="RM-7"), time=at(3)
        )
        wealthy = factories.with_envelope(
            factories.balance("C-MOVE", aum="620000.00", as_of=at(40)), time=at(3)
        )
        await scoring.apply_batch(as_delivered(settings, [opened, wealthy]))
        moved = factories.with_envelope(
            factories.customer("C-MOVE", branch_id="B2", rm_id="RM-7"), time=at(1)
        )
        await scoring.apply_batch(as_delivered(settings, [moved]))
        events = await published(engine)

        engagement = Engagement(engine, "customer.outreach.v1")
        await engagement.ensure_playbook()
        await engagement.put_rm("RM-7", "B1", 10, True)
        await engagement.put_rm("RM-21", "B2", 10, True)
        decode_change = change_decoder(settings)
        for record in as_records(events):
            await engagement.apply_batch([Delivered(decode_change(record), TIER_CHANGES, 0, record.offset)])

        feedback = Feedback(engine, FEEDBACK_EVENTS)
        decode_feedback = event_decoder(settings)
        for record in as_records(events):
            if record.offset == len(events) - 1:  # before the transfer, a complaint is filed in B1
                complaint = ComplaintData(
                    customer_id="C-MOVE",
                    complaint_id="K-MOVE-1",
                    severity="high",
                    category="fees",
                    status="open",
                )
                await feedback.record_complaints([complaint], "ops-key")
            await feedback.apply_batch([Delivered(decode_feedback(record), TIER_CHANGES, 0, record.offset)])
        return events
    finally:
        await engine.dispose()


def test_a_branch_transfer_without_a_tier_change_moves_the_customers_work_and_feedback(infra: Infra) -> None:
    database_url = fresh_database(infra, f"transfer_{uuid.uuid4().hex[:6]}")
    events = asyncio.run(transfer(infra.settings(DATABASE_URL=database_url)))

    # Scoring: the upgrade, then the transfer on its own, with the new profile.
    *upgrades, moved = events
    assert upgrades
    assert {event["type"] for event in upgrades} == {TIER_CHANGED}
    assert moved["type"] == PROFILE_CHANGED
    transfer_data = moved["data"]
    assert transfer_data["changed"] == ["branch_id"]
    assert (transfer_data["previous_branch_id"], transfer_data["previous_rm_id"]) == ("B1", "RM-7")
    assert transfer_data["profile"]["branch_id"] == "B2"

    # Engagement: the customer's open items are in B2 now, and each move audited. The profile still
    # names RM-7, who works in B1: an assigned item goes to B2's RM with room, RM-21.
    items = fetch_rows(
        database_url,
        "SELECT branch_id, status, assigned_to FROM engagement.items WHERE customer_id = 'C-MOVE'",
    )
    open_items = [row for row in items if row["status"] in ("queued", "assigned")]
    assert open_items, "the upgrade planned outreach"
    assert {row["branch_id"] for row in open_items} == {"B2"}
    assert {row["assigned_to"] for row in open_items if row["status"] == "assigned"} == {"RM-21"}
    assert "RM-7" not in {row["assigned_to"] for row in open_items}
    audit = fetch_rows(
        database_url,
        "SELECT actor, note FROM engagement.item_audit WHERE customer_id = 'C-MOVE' AND note LIKE '%moved%'",
    )
    assert len(audit) == len(open_items)
    assert {(row["actor"], row["note"]) for row in audit} == {
        ("tierflow", "the customer moved from branch B1 to B2")
    }
    assert fetch_rows(database_url, "SELECT branch_id FROM engagement.customers")[0]["branch_id"] == "B2"

    # Feedback: the customer and their complaint, filed in B1, are B2's now.
    assert fetch_rows(database_url, "SELECT branch_id FROM feedback.customers")[0]["branch_id"] == "B2"
    assert fetch_rows(database_url, "SELECT branch_id FROM feedback.complaints")[0]["branch_id"] == "B2"
