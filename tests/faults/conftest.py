from __future__ import annotations

import pytest

from tests.faults.system import BANK, EndState, Stream, assert_households_add_up, running_system
from tests.infra import Infra
from tests.integration.scoring_support import partition_of
from tierflow.simulate import customer_id, households


@pytest.fixture(scope="session")
def stream() -> Stream:
    stream = Stream.of(BANK)
    # Households whose members' events land on different partitions (with several scoring
    # instances, on different instances), and a member who moves to another household.
    spread = [h for h in households(BANK) if len({partition_of(customer_id(m.index)) for m in h.members}) > 1]
    assert len(spread) >= 3, "the stream must have households spread over partitions"
    moves = [e for e in stream.bank if e["type"] == "bank.customer.v1" and "branch_id" not in e["data"]]
    assert any(move["data"]["household_id"] is not None for move in moves), "a member must move"
    return stream


@pytest.fixture(scope="session")
def undisturbed(infra: Infra, stream: Stream) -> EndState:
    """The end state of a run nothing happens to: what every faulted run must end with."""
    with running_system(infra) as system:
        end = system.drive(stream)
    counts = end.counts()
    assert counts.pop("dead_letters") == 0, end.dead_letters[:3]
    assert counts["customers"] == BANK.customers
    assert all(counts.values()), f"the stream must exercise every part: {counts}"
    assert_households_add_up(end)
    # A member who moved or left is a current member of the household they last moved to and
    # of no other.
    last_move = {
        e["data"]["customer_id"]: e["data"]["household_id"]
        for e in stream.bank
        if e["type"] == "bank.customer.v1" and "branch_id" not in e["data"]
    }
    homes: dict[str, list[str]] = {}
    for household, member, _ in end.household_members:
        homes.setdefault(member, []).append(household)
    for member, household in last_move.items():
        assert homes.get(member, []) == ([household] if household else []), member
    return end
