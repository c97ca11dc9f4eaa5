"""Database failures that mean "try later" or "try elsewhere" are waited out, never dead-lettered."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from sqlalchemy import text

from shared.db import DatabaseUnavailable, consumer_transaction
from tests.infra import Infra
from tests.integration.worker_support import WorkerBox, eventually

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
