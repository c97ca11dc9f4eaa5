"""Each service owns a schema; placeholder services report their real dependencies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from services.scoring.schemas import EventCausePublic, TierChangePublic
from services.scoring.store import ScoringStore
from services.scoring.views import tier_history
from shared.db import create_engine
from shared.inbox import claim_event
from shared.migrations import SERVICES_WITH_SCHEMA, alembic_config, upgrade_all
from tests.infra import Infra, fetch_rows, fresh_database, start_service

pytestmark = pytest.mark.integration


async def test_migrations_create_one_schema_per_service_and_are_repeatable(infra: Infra) -> None:
    settings = infra.settings()
    await upgrade_all(settings)
    await upgrade_all(settings)
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            for schema in SERVICES_WITH_SCHEMA:
                query = text(f'SELECT version_num FROM "{schema}".alembic_version')  # noqa: S608
                version = await connection.scalar(query)
                assert (
                    version
                    == ScriptDirectory.from_config(alembic_config(schema, settings)).get_current_head()
                )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", ["scoring", "engagement", "feedback"])
def test_a_service_is_ready_only_while_its_database_and_broker_answer(infra: Infra, service: str) -> None:
    running = start_service(infra, service)
    try:
        ready = httpx.get(f"{running.base_url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "broker": True}
        assert "tierflow_http_requests_total" in httpx.get(f"{running.base_url}/metrics").text
    finally:
        running.stop()
    broken = start_service(infra, service, DATABASE_URL="postgresql+asyncpg://nobody:wrong@127.0.0.1:1/none")
    try:
        not_ready = httpx.get(f"{broken.base_url}/readyz", timeout=10)
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["database"] is False
    finally:
        broken.stop()


def test_markers_written_before_sources_were_kept_still_stop_a_resend_of_their_id(infra: Infra) -> None:
    database_url = fresh_database(infra, f"legacy_{uuid.uuid4().hex[:8]}")
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings()
    before = {"scoring": "scoring_0004", "engagement": "engagement_0003", "feedback": "feedback_0003"}
    for service, revision in before.items():
        command.downgrade(alembic_config(service, settings), revision)
    for statement in (
        "INSERT INTO scoring.applied_events (event_id, customer_id) VALUES ('evt-1', 'C1')",
        "INSERT INTO engagement.applied_events (event_id) VALUES ('chg-1')",
        "INSERT INTO feedback.tier_history (event_id, customer_id, at, tier, stage) "
        "VALUES ('chg-1', 'C1', now(), 'vip', 'new')",
        "INSERT INTO scoring.customers (customer_id, tier) VALUES ('C1', 'vip')",
        "INSERT INTO scoring.tier_history (change_id, customer_id, at, tier, stage, direction, score, "
        "policy_version, reasons, caused_by, trigger) VALUES "
        "(gen_random_uuid(), 'C1', now() - interval '1 day', 'mass', 'new', 'upgrade', 1, 'p', '[]', "
        "'evt-1', 'event'), "
        "(gen_random_uuid(), 'C1', now(), 'vip', 'new', 'upgrade', 2, 'p', '[]', 'review', 'review')",
    ):
        fetch_rows(database_url, statement)
    asyncio.run(upgrade_all(settings))

    async def after_upgrade() -> tuple[set[tuple[str, str]], list[bool], list[TierChangePublic]]:
        now = datetime.now(UTC)
        engine = create_engine(settings)
        try:
            async with engine.begin() as db:
                scoring = await ScoringStore(db).claim_events(
                    [("core-banking", "evt-1", now, "C1"), ("core-banking", "evt-2", now, "C1")]
                )
                engagement = [
                    await claim_event(db, "engagement", "tierflow/scoring", "chg-1", now),
                    await claim_event(db, "engagement", "tierflow/scoring", "chg-2", now),
                ]
                history = [TierChangePublic.model_validate(row) for row in await tier_history(db, "C1", 10)]
            return scoring, engagement, history
        finally:
            await engine.dispose()

    scoring, engagement, history = asyncio.run(after_upgrade())
    assert scoring == {("core-banking", "evt-2")}
    assert engagement == [False, True]
    assert [change.caused_by for change in history] == ["review", EventCausePublic(source="", id="evt-1")]
    assert fetch_rows(database_url, "SELECT source, event_id FROM feedback.tier_history")[0][:] == (
        "",
        "chg-1",
    )
