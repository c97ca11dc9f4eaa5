"""A long database outage is waited out inside the consumer group: no rebalance, no double apply."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from tests.faults.proxy import TcpProxy
from tests.infra import Infra
from tests.integration.worker_support import WorkerBox, eventually
from tierflow.processes import free_port

pytestmark = pytest.mark.integration
MAX_POLL_INTERVAL_S = 2
OUTAGE_S = 4 * MAX_POLL_INTERVAL_S


@pytest.fixture
def database_proxy(infra: Infra) -> Iterator[TcpProxy]:
    """The database behind a connection the test can cut, as a network partition would."""
    target = make_url(infra.database_url).port
    assert target is not None
    proxy = TcpProxy(free_port(), target)
    proxy.start()
    yield proxy
    proxy.close()


async def test_a_database_outage_longer_than_the_poll_interval_keeps_the_member_and_applies_once(
    infra: Infra, database_proxy: TcpProxy
) -> None:
    box = await WorkerBox.create(infra, TIERFLOW_KAFKA_MAX_POLL_INTERVAL_MS=str(MAX_POLL_INTERVAL_S * 1000))
    box = box.reached_at(database_proxy.listen_port)
    ledger = await box.ledger()

    async with box.running(ledger) as worker:
        await box.publish([{"id": "before", "tier": "gold"}])
        await eventually(lambda: ledger.holds(1), 30, "the first record applied", worker)
        assert _assignments(box.group) == 1

        await asyncio.to_thread(database_proxy.cut)
        await box.publish([{"id": f"during-{n}", "tier": "gold"} for n in range(3)])
        calls = ledger.calls
        await asyncio.sleep(OUTAGE_S)
        assert ledger.calls > calls + 2, "the worker kept trying through the outage"
        assert not worker.done()
        await asyncio.to_thread(database_proxy.restore)

        await eventually(lambda: ledger.holds(4), 30, "the records of the outage applied", worker)
        await box.publish([{"id": "after", "tier": "gold"}])
        await eventually(lambda: ledger.holds(5), 30, "a record after the outage applied", worker)
        # The group never rebalanced: the member polled (paused) all along.
        assert _assignments(box.group) == 1

    assert await ledger.applied() == ["before", "during-0", "during-1", "during-2", "after"]
    assert await box.dead_letters() == []
    await ledger.engine.dispose()


def _assignments(group: str) -> float:
    return REGISTRY.get_sample_value("tierflow_consumer_assignments_total", {"group": group}) or 0.0
