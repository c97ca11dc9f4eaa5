"""A branch transfer, RM or segment change without a tier change is decided for publication."""

from __future__ import annotations

from services.scoring.domain.profile import profile_change
from shared.contracts.outbound import EventCause
from tests.unit.scoring.builders import T0, balance, days, profile, run

CAUSE = EventCause(source="core-banking", id="e-transfer")


def test_a_transfer_of_a_decided_customer_names_what_changed_and_where_from() -> None:
    before, _ = run(profile(T0, branch_id="B1", rm_id="RM-7"), balance(T0, "620000.00"))
    after, changes = run(profile(T0 + days(1), branch_id="B2", rm_id="RM-7"), state=before)

    moved = profile_change(before, after, CAUSE, T0 + days(1))

    assert changes == [], "a transfer alone changes no tier"
    assert moved is not None
    assert moved.changed == ("branch_id",)
    assert (moved.previous_branch_id, moved.previous_rm_id) == ("B1", "RM-7")
    assert moved.features.profile["branch_id"] == "B2"
    resent = profile_change(before, after, CAUSE, T0 + days(1))
    assert resent is not None
    assert resent.id == moved.id, "a resend keeps its id"


def test_an_event_that_changes_no_followed_field_publishes_nothing() -> None:
    before, _ = run(profile(T0, branch_id="B1", rm_id="RM-7", region="urban"), balance(T0, "620000.00"))
    after, _ = run(profile(T0 + days(1), branch_id="B1", rm_id="RM-7", region="rural"), state=before)
    assert profile_change(before, after, CAUSE, T0 + days(1)) is None


def test_a_customer_never_decided_is_not_announced() -> None:
    undecided, _ = run()
    after, _ = run(profile(T0, branch_id="B2"), state=undecided)
    assert profile_change(undecided, after, CAUSE, T0) is None
