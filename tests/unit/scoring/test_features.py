from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain.features import (
    Features,
    apply_event,
    average_daily_balance,
    day_of,
    open_complaints,
    window_totals,
)
from tests.unit.scoring.builders import T0, balance, complaint, days, interaction, profile, txn


def fold(*events: tuple[object, Decimal | None]) -> Features:
    features = Features()
    for event, amount in events:
        features = apply_event(features, event, amount)  # type: ignore[arg-type]
    return features


def test_lifetime_totals_count_every_transaction_and_the_latest_time_wins() -> None:
    features = fold(txn(T0, "10.50"), txn(T0 + days(3), "20.25"), txn(T0 + days(1), "1.00"))
    assert features.txn_count == 3
    assert features.txn_amount == Decimal("31.75")
    assert features.last_txn_at == T0 + days(3)
    assert features.first_txn_at == T0


@settings(max_examples=60)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=40),
    seed=st.integers(0, 1000),
)
def test_window_totals_are_exact_by_day_whatever_the_arrival_order(offsets: list[int], seed: int) -> None:
    events = [txn(T0 + days(offset), f"{offset + 1}.00") for offset in offsets]
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    features = fold(*shuffled)
    today = day_of(T0 + days(max(offsets)))
    totals = window_totals(features, today, (30, 90, 365))
    for window, bucket in totals.items():
        inside = [o for o in offsets if 0 <= today - day_of(T0 + days(o)) < window]
        # An event older than the 365-day horizon of the newest known day is only in lifetime totals.
        assert bucket.txn_count == len(inside)
        assert bucket.txn_amount == sum((Decimal(o + 1) for o in inside), Decimal(0))
    assert features.txn_count == len(offsets)
    assert len(features.days) <= 366


def test_a_day_old_large_deposit_barely_moves_the_30_day_average() -> None:
    features = fold(balance(T0, "10000.00"), balance(T0 + days(29), "6010000.00"))
    average = average_daily_balance(features, T0 + days(30), 30)
    assert average == Decimal("210000.00")


def test_the_average_counts_unknown_history_as_zero_and_a_steady_balance_as_itself() -> None:
    features = fold(balance(T0, "600000.00"))
    assert average_daily_balance(features, T0 + days(15), 30) == Decimal("300000.00")
    assert average_daily_balance(features, T0 + days(45), 30) == Decimal("600000.00")


def test_a_late_balance_is_inserted_in_its_place_and_does_not_replace_the_current_one() -> None:
    in_order = fold(balance(T0, "100.00"), balance(T0 + days(10), "200.00"), balance(T0 + days(20), "300.00"))
    late = fold(balance(T0, "100.00"), balance(T0 + days(20), "300.00"), balance(T0 + days(10), "200.00"))
    assert late.balances == in_order.balances
    assert late.aum == Decimal("300.00")


def test_the_newest_profile_wins_even_if_an_older_one_arrives_later() -> None:
    features = fold(profile(T0 + days(2), branch_id="B2", risk_profile="C4"), profile(T0, branch_id="B1"))
    assert features.profile["branch_id"] == "B2"


def test_interactions_keep_their_own_counts() -> None:
    features = fold(interaction(T0), interaction(T0 + days(1), kind="branch_visit"))
    assert features.interaction_count == 2
    assert features.last_interaction_at == T0 + days(1)
    assert features.channels == {"mobile": 2}


def test_complaints_open_and_resolve_by_the_newest_update() -> None:
    features = fold(
        complaint(T0, "K1", "high", "open"),
        complaint(T0 + days(5), "K1", "high", "resolved"),
        complaint(T0 + days(1), "K1", "high", "in_progress"),  # late: older than the resolution
        complaint(T0 + days(2), "K2", "low", "open"),
    )
    assert open_complaints(features) == {"low": 1}


def test_a_household_is_joined_by_id_and_left_only_by_an_explicit_null() -> None:
    joined = fold(profile(T0, household_id="H1", household_role="spouse", rm_id="RM1"))
    assert (joined.profile["household_id"], joined.profile["household_role"]) == ("H1", "spouse")
    unchanged = apply_event(joined, *profile(T0 + days(1), rm_id="RM2", region=None))
    assert (unchanged.profile["household_id"], unchanged.profile["rm_id"]) == ("H1", "RM2")
    left = apply_event(unchanged, *profile(T0 + days(2), household_id=None))
    assert "household_id" not in left.profile
    assert "household_role" not in left.profile
    assert left.profile["rm_id"] == "RM2"


def test_a_role_does_not_follow_a_customer_into_another_household() -> None:
    moved = fold(
        profile(T0, household_id="H1", household_role="primary"), profile(T0 + days(1), household_id="H2")
    )
    assert moved.profile["household_id"] == "H2"
    assert "household_role" not in moved.profile
