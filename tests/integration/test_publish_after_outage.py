"""A publish that failed sends nothing more: a key's records never overtake their own resend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.kafka import BrokerUnavailable, LazyProducer, Record, ensure_topics
from tests.faults.proxy import TcpProxy
from tests.infra import Infra
from tests.kafka_reader import read_messages
from tierflow.embedded import EmbeddedBroker
from tierflow.processes import free_port

pytestmark = pytest.mark.integration
TOPIC = "publish-after-outage"


@pytest.fixture
def broker_behind_proxy(infra: Infra) -> Iterator[tuple[TcpProxy, Infra]]:
    broker_port, proxy_port = free_port(), free_port()
    broker = EmbeddedBroker(broker_port, infra.workdir / "publish-broker.log", advertised_port=proxy_port)
    broker.start()
    proxy = TcpProxy(proxy_port, broker_port)
    proxy.start()
    yield proxy, Infra(infra.database_url, broker.bootstrap_servers, infra.workdir, broker)
    proxy.close()
    broker.stop()


async def test_records_of_a_failed_publish_do_not_reach_the_topic_once_the_broker_is_back(
    broker_behind_proxy: tuple[TcpProxy, Infra],
) -> None:
    """Were they sent when the broker returns, a batch the producer had dropped as too old could
    be missing in front of them, and the caller's resend would then put a key's earlier records
    behind its later ones (a subscriber saw a customer's second tier change before the first)."""
    proxy, infra = broker_behind_proxy
    settings = infra.settings(TIERFLOW_KAFKA_PUBLISH_TIMEOUT_S="2")
    await ensure_topics(settings, [TOPIC], partitions=1)
    producer = LazyProducer(settings)
    try:
        await producer.publish([Record(TOPIC, b"C1", b"before")])
        proxy.cut()
        # More than one batch of the one partition: 600 records of 1 KB against 256 KB batches.
        failed = [Record(TOPIC, b"C1", f"failed-{i:04d}-".encode() + b"x" * 1024) for i in range(600)]
        with pytest.raises(BrokerUnavailable):
            await producer.publish(failed)
        proxy.restore()
        await producer.publish([Record(TOPIC, b"C1", b"after")])
    finally:
        await producer.close()

    values = [m.value for m in read_messages(infra.bootstrap_servers, TOPIC)]
    assert values == [b"before", b"after"]
