"""The broker freezes, then disappears for longer than every client timeout; nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.faults.proxy import TcpProxy
from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra, wait_until
from tierflow.embedded import EmbeddedBroker
from tierflow.processes import free_port

pytestmark = pytest.mark.faults
# Longer than the request (15 s), publish (5 s) and consumer session timeouts together.
OUTAGE_S = 25


@pytest.fixture
def broker_behind_proxy(infra: Infra) -> Iterator[tuple[EmbeddedBroker, TcpProxy, Infra]]:
    """A broker of its own, reached only through a proxy the test can cut."""
    broker_port, proxy_port = free_port(), free_port()
    broker = EmbeddedBroker(broker_port, infra.workdir / "faults-broker.log", advertised_port=proxy_port)
    broker.start()
    proxy = TcpProxy(proxy_port, broker_port)
    proxy.start()
    yield broker, proxy, Infra(infra.database_url, broker.bootstrap_servers, infra.workdir, broker)
    proxy.close()
    broker.stop()


def test_a_paused_broker_delays_but_changes_nothing(
    broker_behind_proxy: tuple[EmbeddedBroker, TcpProxy, Infra], stream: Stream, undisturbed: EndState
) -> None:
    broker, _, infra = broker_behind_proxy

    def pause(system: System) -> Iterator[None]:
        system.wait_for_rows("scoring.applied_events", len(stream.bank) // 3)
        broker.pause()
        yield  # the rest of the bank's events arrive while the broker is frozen
        time.sleep(5)
        broker.resume()

    with running_system(infra) as system:
        end = system.drive(stream, bank={0.5: pause})
    assert_same_end_state(end, undisturbed)


def test_a_broker_outage_longer_than_the_client_timeouts_is_ridden_out(
    broker_behind_proxy: tuple[EmbeddedBroker, TcpProxy, Infra], stream: Stream, undisturbed: EndState
) -> None:
    _, proxy, infra = broker_behind_proxy
    refused_during_outage: list[int] = []

    def outage(system: System) -> Iterator[None]:
        refused_before = system.refusals.get(503, 0)

        def refused() -> int:
            return system.refusals.get(503, 0) - refused_before

        proxy.cut()
        back_at = time.monotonic() + OUTAGE_S
        yield  # the rest of the bank's events are sent into the outage
        wait_until(lambda: refused() > 0, OUTAGE_S * 4, "the senders to be answered 503")
        time.sleep(max(0.0, back_at - time.monotonic()))
        refused_during_outage.append(refused())
        proxy.restore()

    with running_system(infra) as system:
        end = system.drive(stream, bank={1 / 3: outage})
    # Clients were told 503 + Retry-After while the broker was away, and resent.
    assert refused_during_outage[0] > 0
    assert_same_end_state(end, undisturbed)
