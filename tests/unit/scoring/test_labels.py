"""Customer labels: entered at once when their conditions hold, left after their leave-after period."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from services.scoring.domain.codec import decode, encode
from services.scoring.domain.customer import CustomerState, apply, review
from services.scoring.domain.evaluation import evaluate
from services.scoring.domain.policy import Policy, default_policy
from shared.contracts.outbound import ChangeDirection
from tests.unit.scoring.builders import T0, balance, complaint, days, interaction, profile, run, survey, txn

POLICY = default_policy()


def labels_of(state: CustomerState) -> set[str]:
    assert state.decision is not None
    return set(state.decision.label_names)


def test_mobile_activity_makes_a_customer_digital_first_at_once_with_reasons() -> None:
    state, changes = run(*(interaction(T0 + days(0.01 * n)) for n in range(5)))
    assert "digital_first" in labels_of(state)
    entered = changes[-1]
    assert entered.direction is ChangeDirection.LABELS
    assert (entered.labels_entered, entered.labels_left) == (("digital_first",), ())
    assert entered.labels == ("digital_first",)
    assert entered.reasons[0].rule == "label.digital_first"
    assert "digital_share 100 >= 70" in entered.reasons[0].detail
    assert "activity_count 5 >= 5" in entered.reasons[0].detail
    assert state.decision is not None
    held = state.decision.labels[0]
    assert (held.dimension, held.since, held.outside_since) == ("behaviour", T0 + days(0.04), None)


def test_a_label_is_kept_for_its_leave_after_period_then_left_by_the_review_at_that_moment() -> None:
    state, _ = run(*(interaction(T0 + days(0.01 * n)) for n in range(5)))
    # Branch visits bring the digital share under 70%: the label stays 14 days, then goes.
    moved = T0 + days(1)
    state, changes = run(
        *(interaction(moved, "branch_visit", channel="branch") for _ in range(3)), state=state
    )
    assert "digital_first" in labels_of(state)
    assert not any(c.labels_left for c in changes)
    assert state.decision is not None
    assert state.decision.labels[0].outside_since == moved
    assert state.decision.labels[0].reason.detail.startswith("outside its conditions since")
    assert state.decision.due_at == moved + days(14)

    state, changes = review(state, POLICY, moved + days(20))
    assert "digital_first" not in labels_of(state)
    left = next(c for c in changes if c.labels_left)
    assert left.at == moved + days(14)
    assert left.labels_left == ("digital_first",)
    assert left.direction is ChangeDirection.LABELS
    assert left.caused_by == "review"


def test_conditions_that_hold_again_within_the_period_keep_the_label_and_its_start() -> None:
    state, _ = run(*(interaction(T0 + days(0.01 * n)) for n in range(5)))
    state, _ = run(
        *(interaction(T0 + days(1), "branch_visit", channel="branch") for _ in range(3)), state=state
    )
    state, changes = run(*(interaction(T0 + days(2)) for _ in range(10)), state=state)
    assert state.decision is not None
    held = state.decision.labels[0]
    assert (held.name, held.since, held.outside_since) == ("digital_first", T0 + days(0.04), None)
    assert not any(c.labels_left or c.labels_entered for c in changes)


def test_failed_logins_after_digital_attempts_mark_digital_difficulty() -> None:
    state, _ = run(interaction(T0), *(interaction(T0 + days(1), "login_failed") for _ in range(2)))
    assert "digital_difficulty" not in labels_of(state)
    state, changes = run(interaction(T0 + days(1.1), "login_failed"), state=state)
    assert "digital_difficulty" in labels_of(state)
    assert changes[-1].labels_entered == ("digital_difficulty",)
    # Support calls from a customer who never tried digital banking are not digital difficulty.
    other, _ = run(*(interaction(T0, "support_call", customer="C2", channel="phone") for _ in range(3)))
    assert "digital_difficulty" not in labels_of(other)


def test_investment_intent_needs_an_investment_and_a_risk_appetite_of_c3_or_more() -> None:
    cautious, _ = run(profile(T0, risk_profile="C2"), txn(T0 + days(1), "50000.00", category="investment"))
    assert "investment_intent" not in labels_of(cautious)
    state, changes = run(profile(T0, risk_profile="C4"), txn(T0 + days(1), "50000.00", category="investment"))
    assert "investment_intent" in labels_of(state)
    assert changes[-1].labels_entered == ("investment_intent",)
    assert state.decision is not None
    reason = state.decision.labels[0].reason
    assert (reason.rule, reason.detail) == (
        "label.investment_intent",
        "days_since_investment 0 <= 90; risk_level 4 >= 3",
    )
    # Days are counted from the investment's day: 91 days on the condition stops holding,
    # and 30 days after that the label is left, each at the exact moment.
    state, changes = review(state, POLICY, T0 + days(150))
    assert "investment_intent" not in labels_of(state)
    investment_day = datetime.combine((T0 + days(1)).date(), time(), UTC)
    assert [c.at for c in changes if c.labels_left == ("investment_intent",)] == [
        investment_day + days(91 + 30)
    ]


def test_an_inflow_in_each_of_three_months_makes_a_salary_earner() -> None:
    state, _ = run(txn(T0, "9000.00"), txn(T0 + days(31), "9000.00"))
    assert "salary_earner" not in labels_of(state)
    state, _ = run(txn(T0 + days(62), "9000.00"), state=state)
    assert "salary_earner" in labels_of(state)


def test_loyalty_labels_follow_tenure_nps_and_complaints() -> None:
    opened = (T0 - days(1200)).isoformat()
    state, _ = run(profile(T0, opened_at=opened), survey(T0 + days(1), 10))
    assert labels_of(state) >= {"high_loyalty"}
    state, _ = run(complaint(T0 + days(2), "K1", "low", "open"), state=state)
    assert labels_of(state) >= {"high_loyalty", "service_sensitive"}
    state, changes = run(complaint(T0 + days(3), "K1", "low", "resolved"), state=state)
    assert "service_sensitive" in labels_of(state)  # kept 7 days after the complaint is resolved
    state, changes = review(state, POLICY, T0 + days(11))
    assert [c.labels_left for c in changes] == [("service_sensitive",)]


def test_an_event_that_cannot_move_a_label_keeps_it_as_a_full_evaluation_would() -> None:
    """Labels are re-evaluated only over features the event can change; the result is the same."""
    events = [
        profile(T0, risk_profile="C3", opened_at=(T0 - days(1200)).isoformat()),
        *(interaction(T0 + days(0.01 * n)) for n in range(6)),
        txn(T0 + days(0.1), "20000.00", category="investment"),
        balance(T0 + days(0.2), "80000.00"),
        survey(T0 + days(0.3), 10),
        complaint(T0 + days(0.4), "K1", "low", "open"),
        *(interaction(T0 + days(0.5), "login_failed") for _ in range(3)),
        txn(T0 + days(1.5), "300.00", direction="debit", category="loan_repayment", channel="branch"),
    ]
    state = CustomerState.new("C1")
    for event, amount in events:
        state, _ = apply(state, event, amount, POLICY, event.time)
        assert state.decision is not None
        full = evaluate(state.features, POLICY, event.time, None)
        assert state.decision.label_names == full.label_names
    assert labels_of(state) == {
        "digital_first",
        "investment_intent",
        "borrowing_need",
        "digital_difficulty",
        "high_loyalty",
        "service_sensitive",
    }


def test_labels_survive_the_state_codec() -> None:
    state, _ = run(*(interaction(T0 + days(0.01 * n)) for n in range(5)))
    state, _ = run(interaction(T0 + days(1), "branch_visit", channel="branch"), state=state)
    state, _ = run(
        *(interaction(T0 + days(1), "branch_visit", channel="branch") for _ in range(2)), state=state
    )
    state, _ = run(txn(T0 + days(1), "10.00"), state=state)
    assert decode("C1", encode(state)) == state


def test_a_policy_declares_each_label_once_over_known_features() -> None:
    document = POLICY.model_dump(mode="json")
    label = {"name": "x", "dimension": "needs", "any_of": [[{"feature": "aum", "op": "gte", "value": 1}]]}
    with pytest.raises(ValueError, match="each label may be declared once"):
        Policy.model_validate({**document, "labels": [label, label]})
    unknown = {**label, "any_of": [[{"feature": "shoe_size", "op": "gte", "value": 1}]]}
    with pytest.raises(ValueError, match="unknown feature"):
        Policy.model_validate({**document, "labels": [unknown]})
    with pytest.raises(ValueError, match="dimension"):
        Policy.model_validate({**document, "labels": [{**label, "dimension": "value"}]})


def test_assets_rise_only_against_a_known_history_not_against_days_before_the_first_balance() -> None:
    opened = (T0 - days(1000)).isoformat()
    newcomer, _ = run(
        profile(T0 - days(40), risk_profile="C3", opened_at=opened), balance(T0 - days(40), "80000.00")
    )
    newcomer, _ = review(newcomer, POLICY, T0)
    assert "investment_intent" not in labels_of(newcomer)
    grower, _ = run(
        profile(T0 - days(120), risk_profile="C3", opened_at=opened),
        balance(T0 - days(120), "50000.00"),
        balance(T0 - days(20), "90000.00"),
    )
    grower, _ = review(grower, POLICY, T0)
    assert "investment_intent" in labels_of(grower)
