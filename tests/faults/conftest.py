from __future__ import annotations

import pytest

from tests.faults.system import BANK, EndState, Stream, running_system
from tests.infra import Infra


@pytest.fixture(scope="session")
def stream() -> Stream:
    return Stream.of(BANK)


@pytest.fixture(scope="session")
def undisturbed(infra: Infra, stream: Stream) -> EndState:
    """The end state of a run nothing happens to: what every faulted run must end with."""
    with running_system(infra) as system:
        end = system.drive(stream)
    counts = end.counts()
    assert counts.pop("dead_letters") == 0, end.dead_letters[:3]
    assert counts["customers"] == BANK.customers
    assert all(counts.values()), f"the stream must exercise every part: {counts}"
    return end
