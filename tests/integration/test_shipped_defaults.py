"""Upgrading TierFlow offers its newer default policy and playbook; it never activates them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from services.engagement.domain.playbook import default_playbook
from services.engagement.handlers import Engagement
from services.scoring.domain.policy import default_policy
from services.scoring.handlers import Scoring
from shared.clock import ClockMode
from shared.db import create_engine
from tests.infra import Infra, fetch_rows, fresh_database

pytestmark = pytest.mark.integration


def test_an_installation_running_an_older_default_gets_the_new_one_inactive(infra: Infra) -> None:
    database_url = fresh_database(infra, f"defaults_{uuid.uuid4().hex[:8]}")
    settings = infra.settings(DATABASE_URL=database_url)
    policy = default_policy()
    playbook = default_playbook()
    older_policy = policy.model_copy(update={"version": "default-0"})
    older_playbook = playbook.model_copy(update={"version": "default-0"})

    async def scenario() -> None:
        engine = create_engine(settings)
        try:
            scoring = Scoring(engine, settings, "customer.tier-changes.v1", ClockMode.WALL)
            engagement = Engagement(engine, "customer.outreach.v1")
            async with engine.begin() as db:
                await db.execute(
                    text(
                        "INSERT INTO scoring.policies (version, document, created_by, active) "
                        "VALUES ('default-0', CAST(:d AS jsonb), 'tierflow', true)"
                    ),
                    {"d": older_policy.model_dump_json()},
                )
                await db.execute(
                    text(
                        "INSERT INTO engagement.playbooks (version, document, created_by, active) "
                        "VALUES ('default-0', CAST(:d AS jsonb), 'tierflow', true)"
                    ),
                    {"d": older_playbook.model_dump_json()},
                )
            # Two instances starting at once, then a restart: offered once, never activated.
            await asyncio.gather(scoring.ensure_policy(), scoring.ensure_policy())
            await asyncio.gather(engagement.ensure_playbook(), engagement.ensure_playbook())
            await scoring.ensure_policy()
            await engagement.ensure_playbook()
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    policies = fetch_rows(database_url, "SELECT version, active FROM scoring.policies ORDER BY version")
    playbooks = fetch_rows(database_url, "SELECT version, active FROM engagement.playbooks ORDER BY version")
    assert [tuple(row) for row in policies] == sorted([("default-0", True), (policy.version, False)])
    assert [tuple(row) for row in playbooks] == sorted([("default-0", True), (playbook.version, False)])
