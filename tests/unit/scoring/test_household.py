from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain.household import (
    Contribution,
    Household,
    HouseholdFull,
    Membership,
    Published,
    aggregates,
    contribution_of,
    demoted,
    fold,
    publications,
    roles,
)
from services.scoring.household_messages import (
    contribution_event,
    contribution_json,
    decode_contribution,
    stored_contribution,
)
from shared.contracts.types import HouseholdRole, Tier
from tests.unit.scoring.builders import T0, balance, days, profile, run, txn


def contribution(member: str, aum: str = "100", household: str = "H1", **fields: Any) -> Contribution:
    made = Contribution(
        household_id=household,
        member_id=member,
        role=HouseholdRole.SPOUSE,
        role_since=T0,
        aum=Decimal(aum),
        aum_avg_30d=Decimal(aum),
        aum_avg_90d=Decimal(aum),
        products=(),
        tier=Tier.MASS,
        rm_id=None,
        branch_id=None,
    )
    return replace(made, **fields)


def message(sequence: int, member: str, body: Contribution | None, household: str = "H1") -> Published:
    return Published(household, member, sequence, T0, body)


def folded(*messages: Published) -> Household:
    household = Household.new("H1")
    for item in messages:
        household = fold(household, item) or household
    return household


def test_a_members_later_contribution_replaces_the_earlier_and_is_never_added_twice() -> None:
    household = folded(
        message(1, "A", contribution("A", "100")),
        message(2, "A", contribution("A", "250")),
        message(2, "A", contribution("A", "250")),
    )
    assert aggregates(household).aum == Decimal(250)


def test_an_older_contribution_arriving_late_is_dropped() -> None:
    household = folded(message(2, "A", contribution("A", "250")), message(1, "A", contribution("A", "100")))
    assert aggregates(household).aum == Decimal(250)


def test_a_removal_takes_the_members_contribution_and_a_stale_one_cannot_bring_it_back() -> None:
    household = folded(
        message(1, "A", contribution("A", "100")),
        message(1, "B", contribution("B", "40")),
        message(3, "A", None),
        message(2, "A", contribution("A", "100")),
    )
    summary = aggregates(household)
    assert (summary.members, summary.aum) == (1, Decimal(40))


@settings(max_examples=50)
@given(seed=st.integers(0, 10_000), resends=st.integers(0, 6))
def test_the_household_is_the_same_whatever_the_order_and_repeats_of_its_messages(
    seed: int, resends: int
) -> None:
    messages = [
        message(1, "A", contribution("A", "10.5", tier=Tier.VIP, products=("funds",))),
        message(2, "A", contribution("A", "20.25", tier=Tier.WEALTH, products=("funds",))),
        message(1, "B", contribution("B", "7", products=("loan",))),
        message(2, "B", None),
        message(1, "C", contribution("C", "3.125", role=HouseholdRole.PRIMARY, rm_id="RM1", branch_id="B1")),
    ]
    shuffled = messages + random.Random(seed).choices(messages, k=resends)
    random.Random(seed).shuffle(shuffled)
    assert folded(*shuffled) == folded(*messages)
    summary = aggregates(folded(*shuffled))
    assert summary.members == 2
    assert summary.aum == Decimal("23.375")
    assert summary.aum_avg_30d == Decimal("23.375")
    assert summary.products == ("funds",)
    assert summary.tier is Tier.WEALTH
    assert (summary.primary_id, summary.rm_id, summary.branch_id) == ("C", "RM1", "B1")


def test_a_second_primary_makes_the_previous_one_other() -> None:
    first = folded(message(1, "A", contribution("A", role=HouseholdRole.PRIMARY)))
    second = fold(
        first, message(1, "B", contribution("B", role=HouseholdRole.PRIMARY, role_since=T0 + days(1)))
    )
    assert second is not None
    assert roles(second.members) == {"A": HouseholdRole.OTHER, "B": HouseholdRole.PRIMARY}
    assert demoted(first, second) == ["A"]
    # The demoted member's next contribution does not take the household back.
    again = fold(second, message(2, "A", contribution("A", "900", role=HouseholdRole.PRIMARY)))
    assert again is not None
    assert aggregates(again).primary_id == "B"
    assert demoted(second, again) == []


def test_a_member_publishes_only_when_the_contribution_changes_and_a_move_removes_them_first() -> None:
    state, _ = run(profile(T0, household_id="H1", household_role="primary"), balance(T0, "500000"))
    current = contribution_of(state, None)
    assert current is not None
    assert (current.household_id, current.role, current.aum) == ("H1", HouseholdRole.PRIMARY, Decimal(500000))
    membership, sent = publications("C1", Membership(), current, T0)
    assert [(p.household_id, p.sequence, p.contribution is None) for p in sent] == [("H1", 1, False)]
    assert publications("C1", membership, current, T0) == (membership, [])
    moved, _ = run(profile(T0 + days(1), household_id="H2"), state=state)
    elsewhere = contribution_of(moved, membership.contribution)
    assert elsewhere is not None
    assert elsewhere.role is HouseholdRole.OTHER
    membership, sent = publications("C1", membership, elsewhere, T0 + days(1))
    assert [(p.household_id, p.sequence, p.contribution is None) for p in sent] == [
        ("H1", 2, True),
        ("H2", 3, False),
    ]
    left, _ = run(profile(T0 + days(2), household_id=None), state=moved)
    assert contribution_of(left, membership.contribution) is None
    _, sent = publications("C1", membership, None, T0 + days(2))
    assert [(p.household_id, p.sequence, p.contribution is None) for p in sent] == [("H2", 4, True)]


def test_a_members_small_fractional_average_survives_the_message_and_the_stored_row() -> None:
    # A balance held for the first minute of a 30-day window averages 0.02314814...: sixty
    # significant digits behind a zero, which the member's message and stored row must carry.
    state, _ = run(
        profile(T0, household_id="H1", household_role="primary"),
        balance(T0, "1000"),
        txn(T0 + timedelta(minutes=1), "10"),
    )
    current = contribution_of(state, None)
    assert current is not None
    assert Decimal(0) < current.aum_avg_30d < Decimal("0.1")
    _, sent = publications("C1", Membership(), current, T0)
    record = contribution_event(sent[0]).value
    assert decode_contribution(record, b"H1").contribution == current
    assert stored_contribution("H1", "C1", contribution_json(current)) == current


def test_a_full_household_refuses_a_new_member_but_its_members_still_update_and_leave() -> None:
    full = folded(*(message(1, member, contribution(member)) for member in ("A", "B", "C")))
    with pytest.raises(HouseholdFull, match="household H1 has 3 members, the most one may have"):
        fold(full, message(1, "D", contribution("D")), max_members=3)
    updated = fold(full, message(2, "A", contribution("A", "900")), max_members=3)
    assert updated is not None
    assert aggregates(updated).members == 3
    left = fold(updated, message(2, "B", None), max_members=3)
    assert left is not None
    # Room again: the member refused before joins with their next contribution.
    joined = fold(left, message(2, "D", contribution("D")), max_members=3)
    assert joined is not None
    assert sorted(joined.members) == ["A", "C", "D"]
