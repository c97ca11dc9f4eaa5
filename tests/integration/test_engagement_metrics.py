"""Engagement's counters count what committed: a batch that fails and is applied again counts once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.engagement.handlers import Consumed, Engagement, change_decoder
from shared.consumer import Delivered
from shared.contracts.internal import ErasureNotice
from shared.db import create_engine
from shared.erasure import CustomerErased
from shared.settings import Settings
from shared.topics import TIER_CHANGES
from tests import factories
from tests.infra import Infra, fresh_database

pytestmark = pytest.mark.integration


def _counted() -> dict[str, float]:
    totals = {"changes": 0.0, "items": 0.0}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "tierflow_engagement_changes_applied_total":
                totals["changes"] += sample.value
            elif sample.name == "tierflow_outreach_items_total":
                totals["items"] += sample.value
    return totals


def _delivered(decode: Any, event: dict[str, Any], offset: int) -> Delivered[Consumed]:
    key = event["data"]["customer_id"].encode()
    value = json.dumps(event).encode()
    record = ConsumerRecord(TIER_CHANGES, 0, offset, 0, 0, key, value, None, len(key), len(value), ())
    return Delivered(decode(record), TIER_CHANGES, 0, offset)


def test_a_failed_batch_counts_nothing_and_its_good_records_count_once_when_applied_again(
    infra: Infra,
) -> None:
    settings = infra.settings(DATABASE_URL=fresh_database(infra, f"engmetrics{uuid.uuid4().hex[:8]}"))
    asyncio.run(_fail_then_apply_again(settings))


async def _fail_then_apply_again(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        engagement = Engagement(engine, "customer.outreach.v1")
        await engagement.ensure_playbook()
        decode = change_decoder(settings)
        good = _delivered(decode, factories.tier_change("C-M-1", (None, None), ("vip", "new")), 0)
        # The customer erased in the middle of the batch makes its later change fail the batch.
        erased: Delivered[Consumed] = Delivered(
            ErasureNotice("tierflow/scoring", "erasure-1", "C-M-2", datetime.now(UTC)), TIER_CHANGES, 0, 1
        )
        doomed = _delivered(decode, factories.tier_change("C-M-2", (None, None), ("vip", "new")), 2)

        before = _counted()
        with pytest.raises(CustomerErased):
            await engagement.apply_batch([good, erased, doomed])
        assert _counted() == before, "nothing of a rolled-back batch is counted"

        await engagement.apply_batch([good])
        async with engine.connect() as db:
            items = await db.scalar(text("SELECT count(*) FROM engagement.items"))
        after = _counted()
        assert items > 0
        assert after["changes"] - before["changes"] == 1
        assert after["items"] - before["items"] == items
    finally:
        await engine.dispose()
