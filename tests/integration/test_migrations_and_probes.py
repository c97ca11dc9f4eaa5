"""Each service owns a schema; placeholder services report their real dependencies."""

from __future__ import annotations

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from shared.db import create_engine
from shared.migrations import SERVICES_WITH_SCHEMA, alembic_config, upgrade_all
from tests.infra import Infra, start_service

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
