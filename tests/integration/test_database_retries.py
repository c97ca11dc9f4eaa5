"""Database failures that mean "try later" or "try elsewhere" are waited out, never dead-lettered."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db as shared_db
from shared.db import DatabaseUnavailable, consumer_transaction, create_engine
from tests.infra import Infra
from tests.integration.worker_support import WorkerBox, admin_execute, eventually

pytestmark = pytest.mark.integration
RECORDS = [{"id": "a", "tier": "gold"}, {"id": "b", "tier": "silver"}, {"id": "c", "tier": "gold"}]


async def test_a_database_turned_read_only_by_a_failover_is_retried_until_it_takes_writes(
    infra: Infra,
) -> None:
    box = await WorkerBox.create(infra)
    ledger = await box.ledger()
    # Every session from now on lands on a "standby"; the pool holds none from before.
    await box.read_only(True)
    await ledger.engine.dispose()

    with pytest.raises(DatabaseUnavailable, match="read-only"):
        async with consumer_transaction(ledger.engine) as db:
            await db.execute(text(f"INSERT INTO {ledger.table} (id) VALUES ('x')"))  # noqa: S608

    async with box.running(ledger) as worker:
        await box.publish(RECORDS)
        await eventually(lambda: ledger.calls >= 3, 30, "several refused attempts", worker)
        assert await ledger.applied() == []
        # The failover completes: writes are taken again; the pool's read-only sessions must go.
        await box.read_only(False)
        await eventually(lambda: ledger.holds(3), 30, "the records applied", worker)

    assert await ledger.applied() == ["a", "b", "c"]
    assert await box.dead_letters() == []
    await ledger.engine.dispose()


async def test_a_pool_with_no_free_connection_within_its_timeout_is_waited_out(infra: Infra) -> None:
    box = await WorkerBox.create(
        infra, TIERFLOW_DATABASE_POOL_SIZE="1", TIERFLOW_DATABASE_POOL_TIMEOUT_S="0.2"
    )
    ledger = await box.ledger()

    async with AsyncExitStack() as held:
        # One pooled connection and one overflow: both taken by someone else.
        for _ in range(2):
            await held.enter_async_context(ledger.engine.connect())
        with pytest.raises(DatabaseUnavailable, match="TimeoutError"):
            async with consumer_transaction(ledger.engine):
                pass

        async with box.running(ledger) as worker:
            await box.publish(RECORDS)
            await eventually(lambda: ledger.calls >= 3, 30, "several timed-out attempts", worker)
            await held.aclose()
            await eventually(lambda: ledger.holds(3), 30, "the records applied", worker)

    assert await ledger.applied() == ["a", "b", "c"]
    assert await box.dead_letters() == []
    await ledger.engine.dispose()


async def dropped_in_the_pool(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, ping_after_idle_s: float
) -> tuple[AsyncEngine, int]:
    """An engine whose one pooled connection's session the server has ended (a restart, an idle
    timeout), and that session's backend pid."""
    monkeypatch.setattr(shared_db, "PING_AFTER_IDLE_S", ping_after_idle_s)
    box = await WorkerBox.create(infra, TIERFLOW_DATABASE_POOL_SIZE="1")
    engine = create_engine(box.settings)
    async with engine.connect() as db:
        backend = int(await db.scalar(text("SELECT pg_backend_pid()")) or 0)
    await admin_execute(infra, f"SELECT pg_terminate_backend({backend})")
    return engine, backend


async def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_before_use(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, backend = await dropped_in_the_pool(infra, monkeypatch, ping_after_idle_s=0.2)
    await asyncio.sleep(0.3)

    async with engine.connect() as db:
        assert await db.scalar(text("SELECT pg_backend_pid()")) != backend
    await engine.dispose()


async def test_a_connection_back_in_the_pool_a_moment_ago_is_used_without_a_ping(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, backend = await dropped_in_the_pool(infra, monkeypatch, ping_after_idle_s=60.0)

    # Not pinged, so the lost session shows at the first statement, as an unreachable database
    # (waited out and tried again), and the pool connects afresh for the next attempt.
    with pytest.raises(DatabaseUnavailable):
        async with consumer_transaction(engine) as db:
            await db.execute(text("SELECT 1"))
    async with consumer_transaction(engine) as db:
        assert await db.scalar(text("SELECT pg_backend_pid()")) != backend
    await engine.dispose()


async def test_a_connection_just_made_is_not_pinged_only_one_back_from_the_pool(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new connection whose ping failed too would make the pool give up with an error that no
    caller takes for an unreachable database: records dead-lettered, API answers 500."""
    monkeypatch.setattr(shared_db, "PING_AFTER_IDLE_S", 0.0)
    box = await WorkerBox.create(infra, TIERFLOW_DATABASE_POOL_SIZE="1")
    engine = create_engine(box.settings)
    dialect = engine.sync_engine.dialect
    pings: list[object] = []
    ping = dialect.do_ping

    def counted_ping(connection: DBAPIConnection) -> bool:
        pings.append(connection)
        return bool(ping(connection))

    monkeypatch.setattr(dialect, "do_ping", counted_ping)

    async with engine.connect() as db:
        await db.execute(text("SELECT 1"))
    assert pings == []
    async with engine.connect() as db:
        await db.execute(text("SELECT 1"))
    assert len(pings) == 1
    await engine.dispose()
