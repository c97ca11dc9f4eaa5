"""Bounded storage on a real database: marker partitions dropped whole, records past retention deleted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.scoring.store import ScoringStore
from shared.consumer import PoisonMessage
from shared.db import create_engine
from shared.event_rules import refuse_beyond_horizon
from shared.inbox import claim_event
from shared.retention import maintain_markers, maintain_once, marker_partitions
from shared.settings import Settings
from tests.infra import Infra, fetch_rows, fresh_database

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=3)


def test_markers_are_dropped_a_partition_at_a_time_and_an_older_resend_is_refused(infra: Infra) -> None:
    database_url = fresh_database(infra, f"markers_{uuid.uuid4().hex[:8]}")
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings()
    long_ago = NOW - timedelta(days=3000)

    legacy = "INSERT INTO feedback.applied_events_legacy (source, event_id, applied_at) VALUES ($1, $2, $3)"
    fetch_rows(database_url, legacy, "", "from-before-sources", long_ago)
    fetch_rows(database_url, legacy, "src", "from-before-partitions", NOW)

    async def scenario() -> None:
        engine = create_engine(settings)
        try:
            async with engine.begin() as db:
                # Markers from before partitioning still stop a resend, whatever its time.
                assert not await claim_event(db, "feedback", "other", "from-before-sources", NOW)
                assert not await claim_event(db, "feedback", "src", "from-before-partitions", long_ago)
                await maintain_markers(db, "feedback", NOW, settings)
                assert await db.scalar(text("SELECT count(*) FROM feedback.applied_events_legacy")) == 2
                partitions = await marker_partitions(db, "feedback")
                first = [
                    await claim_event(db, "feedback", "src", n, t) for n, t in (("a", long_ago), ("b", NOW))
                ]
                again = [
                    await claim_event(db, "feedback", "src", n, t) for n, t in (("a", long_ago), ("b", NOW))
                ]
                assert (first, again) == ([True, True], [False, False])
                # The same id from another source is another event, in the same partition.
                assert await claim_event(db, "feedback", "other", "a", long_ago)
            old_span = next(span for span in partitions if span.start <= long_ago < span.end)
            later = (
                old_span.end
                + settings.applied_events_horizon
                + timedelta(seconds=settings.consumer_clock_tolerance_s)
            )
            async with engine.begin() as db:
                plan = await maintain_markers(db, "feedback", later, settings)
                assert plan.drop == [span for span in partitions if span.end <= old_span.end]
                left = await marker_partitions(db, "feedback")
                assert old_span not in left
                assert left[0].start <= later - settings.applied_events_horizon < left[0].end
                # The recent marker is still there; the old one went with its partition.
                assert not await claim_event(db, "feedback", "src", "b", NOW)
                assert await db.scalar(text("SELECT count(*) FROM feedback.applied_events")) == 1
                # One legacy marker is still inside the horizon: all are kept.
                assert await db.scalar(text("SELECT count(*) FROM feedback.applied_events_legacy")) == 2
            # Once even the latest was applied before the horizon (and the future skew), all go.
            legacy_gone = NOW + settings.applied_events_horizon + settings.consumer_max_future_skew
            async with engine.begin() as db:
                await maintain_markers(db, "feedback", legacy_gone - timedelta(seconds=1), settings)
                assert await db.scalar(text("SELECT count(*) FROM feedback.applied_events_legacy")) == 2
                await maintain_markers(db, "feedback", legacy_gone + timedelta(seconds=1), settings)
                assert await db.scalar(text("SELECT count(*) FROM feedback.applied_events_legacy")) == 0
            # ...and a resend of the old event is refused before it could be claimed again.
            with pytest.raises(PoisonMessage, match="before the duplicate horizon"):
                refuse_beyond_horizon(long_ago, settings, later)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_each_service_deletes_what_is_past_its_retention_and_keeps_what_is_open(infra: Infra) -> None:
    database_url = fresh_database(infra, f"retention_{uuid.uuid4().hex[:8]}")
    for statement in (
        "INSERT INTO scoring.tier_history (change_id, customer_id, at, tier, stage, direction, score, "
        "policy_version, reasons, caused_by, trigger) SELECT gen_random_uuid(), 'C1', t, 'mass', 'new', "
        "'upgrade', 1, 'p', '[]', '\"review\"', 'review' FROM unnest($1::timestamptz[]) AS t",
        "INSERT INTO scoring.override_audit (customer_id, action, actor, at) "
        "SELECT 'C1', 'clear', 'ops', t FROM unnest($1::timestamptz[]) AS t",
        "INSERT INTO engagement.items (id, customer_id, rule, kind, category, priority, status, due_at, "
        "sla_due_at, expires_at, template, reason, needs_rm, trigger_event_id, context_tier, context_stage, "
        "closed_at, created_at, updated_at) SELECT gen_random_uuid(), 'C1', 'r', 'k', 'service', 'high', "
        "CASE WHEN n = 1 THEN 'queued' ELSE 'completed' END, t, t, t, 'tpl', 'why', false, 'e', 'mass', "
        "'new', CASE WHEN n = 1 THEN NULL ELSE t END, t, t "
        "FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n)",
        "INSERT INTO engagement.item_audit (item_id, to_status, actor, at) "
        "SELECT gen_random_uuid(), 'queued', 'system', t FROM unnest($1::timestamptz[]) AS t",
        "INSERT INTO feedback.tier_history (source, event_id, customer_id, at, tier, stage) "
        "SELECT 's', gen_random_uuid()::text, 'C1', t, 'mass', 'new' FROM unnest($1::timestamptz[]) AS t",
        "INSERT INTO feedback.surveys (survey_id, customer_id, kind, score, answered_at) "
        "SELECT gen_random_uuid()::text, 'C1', 'nps', 9, t FROM unnest($1::timestamptz[]) AS t",
        "INSERT INTO feedback.complaints (complaint_id, customer_id, severity, category, status, opened_at, "
        "resolved_at, updated_at) SELECT gen_random_uuid()::text, 'C1', 'high', 'fees', "
        "CASE WHEN n = 1 THEN 'open' ELSE 'resolved' END, t, CASE WHEN n = 1 THEN NULL ELSE t END, t "
        "FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n)",
    ):
        # Three old rows (the first open where a kind has open ones) and one recent row.
        fetch_rows(database_url, statement, [OLD, OLD, OLD, NOW])
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings(
        **{
            f"TIERFLOW_{kind}_RETENTION": "P1D"
            for kind in ("TIER_HISTORY", "AUDIT", "CLOSED_OUTREACH", "SURVEY", "COMPLAINT")
        },
        TIERFLOW_RETENTION_BATCH_SIZE="1",
    )
    deleted = asyncio.run(run_maintenance(settings))
    assert deleted == {
        "scoring.tier_history": 3,
        "scoring.override_audit": 3,
        "engagement.items": 2,
        "engagement.item_audit": 3,
        "feedback.tier_history": 3,
        "feedback.surveys": 3,
        "feedback.invitations": 0,
        "feedback.complaints": 2,
        "feedback.complaint_audit": 0,
        "feedback.experiment_members": 0,
    }
    assert fetch_rows(database_url, "SELECT status FROM engagement.items ORDER BY created_at") == [
        ("queued",),
        ("completed",),
    ]
    assert fetch_rows(database_url, "SELECT status FROM feedback.complaints ORDER BY opened_at") == [
        ("open",),
        ("resolved",),
    ]
    assert fetch_rows(database_url, "SELECT count(*) FROM scoring.tier_history")[0][0] == 1


async def run_maintenance(settings: Settings) -> dict[str, int]:
    from services.engagement.store import expire as engagement
    from services.feedback.store import expire as feedback
    from services.scoring.store import expire as scoring

    engine = create_engine(settings)
    try:
        deleted: dict[str, int] = {}
        for schema, expire in (("scoring", scoring), ("engagement", engagement), ("feedback", feedback)):
            deleted |= await maintain_once(engine, schema, expire, settings)
        return deleted
    finally:
        await engine.dispose()


def test_a_resend_is_a_duplicate_whatever_time_it_states(infra: Infra) -> None:
    """Markers lie in the partition of the event's time, but an event is known by source and id:
    a producer that stamps `time` when it sends, and resends after a timeout, is not counted twice."""
    database_url = fresh_database(infra, f"resend_{uuid.uuid4().hex[:8]}")
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings()
    later = NOW + timedelta(seconds=1)
    months_on = NOW - timedelta(days=45)  # another partition of the markers

    async def scenario() -> None:
        engine = create_engine(settings)
        try:
            async with engine.begin() as db:
                assert await claim_event(db, "engagement", "src", "x", NOW)
                assert not await claim_event(db, "engagement", "src", "x", later)
                assert not await claim_event(db, "engagement", "src", "x", months_on)
                store = ScoringStore(db)
                assert await store.claim_events([("src", "y", NOW, "C1")]) == {("src", "y")}
                assert await store.claim_events([("src", "y", later, "C1"), ("src", "z", later, "C1")]) == {
                    ("src", "z")
                }
                assert await store.claim_events([("src", "y", months_on, "C1")]) == set()
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_an_erasure_finds_the_rms_notes_of_items_retention_has_deleted(infra: Infra) -> None:
    """Closed items go after two years, their audit rows (with the RMs' notes) after seven: the
    notes must still be found, by customer, when the customer is erased in between."""
    from services.engagement.domain.lifecycle import ItemStatus
    from services.engagement.store import EngagementStore
    from shared.contracts.internal import ErasureNotice

    database_url = fresh_database(infra, f"auditerase_{uuid.uuid4().hex[:8]}")
    fetch_rows(
        database_url,
        "INSERT INTO engagement.items (id, customer_id, rule, kind, category, priority, status, due_at, "
        "sla_due_at, expires_at, template, reason, needs_rm, trigger_event_id, context_tier, context_stage, "
        "closed_at, created_at, updated_at) VALUES ($1, 'C-NOTES', 'r', 'rm_call', 'service', 'high', "
        "'completed', $2, $2, $2, 'tpl', 'why', true, 'e', 'vip', 'core', $2, $2, $2)",
        uuid.uuid4(),
        OLD,
    )
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings(
        TIERFLOW_CLOSED_OUTREACH_RETENTION="P1D"
    )

    async def scenario() -> None:
        engine = create_engine(settings)
        try:
            async with engine.begin() as db:
                (item_id,) = (await db.execute(text("SELECT id::text FROM engagement.items"))).one()
                store = EngagementStore(db, "customer.outreach.v1")
                await store.audit(item_id, None, ItemStatus.COMPLETED, "RM-7", "spoke about her divorce")
        finally:
            await engine.dispose()
        assert (await run_maintenance(settings))["engagement.items"] == 1
        engine = create_engine(settings)
        try:
            async with engine.begin() as db:
                notice = ErasureNotice("tierflow/scoring", "erasure-1", "C-NOTES", NOW)
                await EngagementStore(db, "customer.outreach.v1").erase(notice)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert fetch_rows(database_url, "SELECT count(*) FROM engagement.item_audit")[0][0] == 0
