from __future__ import annotations

import copy
import json
import math
import pickle
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain.codec import decode, encode
from services.scoring.domain.customer import CustomerState, TierChange, Trigger, review, set_override
from services.scoring.domain.evaluation import (
    FeatureVector,
    Override,
    Reason,
    ReasonCondition,
    decide_labels,
    derive,
    evaluate,
    exact_review_at,
    first_group,
    policy_tier,
    score,
)
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.features import Features, average_daily_balance
from services.scoring.domain.policy import Policy, default_policy, load_policy
from services.scoring.outbound import tier_changed_event
from shared.contracts.outbound import EventCause
from shared.contracts.types import Stage, Tier
from tests.unit.scoring.builders import (
    SOURCE,
    T0,
    balance,
    complaint,
    days,
    interaction,
    profile,
    run,
    survey,
    txn,
)

POLICY = default_policy()


def review_until(state: CustomerState, moment: datetime) -> tuple[CustomerState, list[TierChange]]:
    return review(state, POLICY, moment)


def test_a_known_customer_without_products_is_a_mass_prospect() -> None:
    state, changes = run(profile(T0, branch_id="B1", rm_id="RM1"))
    assert state.decision is not None
    assert (state.decision.tier, state.decision.stage) == (Tier.MASS, Stage.PROSPECT)
    assert changes[0].previous_tier is None


def test_tiers_follow_the_30_day_average_not_a_one_day_spike() -> None:
    state, _ = run(balance(T0, "7000000.00"))
    state, changes = review_until(state, T0 + days(31))
    assert state.decision is not None
    assert state.decision.tier is Tier.PRIVATE
    upgrades = {c.tier: c.at for c in changes if c.direction == "upgrade"}
    assert all(c.caused_by == "review" for c in changes)
    # The 30-day average of 7M reaches each gate at gate / 7M of the window, to the second.
    for tier, gate in ((Tier.VIP, 50_000), (Tier.WEALTH, 500_000), (Tier.PRIVATE, 6_000_000)):
        exact = T0 + days(30 * gate / 7_000_000)
        assert exact <= upgrades[tier] <= exact + timedelta(seconds=2)


def test_upgrades_happen_at_once_when_a_gate_is_met() -> None:
    state, _ = run(balance(T0 - days(40), "60000.00"))
    state, changes = run(balance(T0, "600000.00"), balance(T0 + days(30), "600000.00"), state=state)
    assert state.decision is not None
    assert state.decision.tier is Tier.WEALTH
    wealth = next(c for c in changes if c.tier is Tier.WEALTH)
    assert wealth.direction == "upgrade"
    assert wealth.at <= T0 + days(30)


def test_a_dip_within_the_margin_is_held_for_the_grace_period_then_downgraded() -> None:
    state, _ = run(balance(T0 - days(60), "600000.00"), interaction(T0))
    assert state.decision is not None
    assert state.decision.tier is Tier.WEALTH
    state, _ = run(balance(T0, "450000.00"), interaction(T0 + days(29)), state=state)  # 10% under the gate
    state, changes = run(interaction(T0 + days(31)), state=state)
    assert state.decision is not None
    held = [r.rule for r in state.decision.reasons]
    assert "hysteresis.hold" in held
    assert state.decision.tier is Tier.WEALTH
    state, changes = review_until(state, T0 + days(70))
    assert state.decision is not None
    assert state.decision.tier is Tier.VIP
    downgrade = next(c for c in changes if c.direction == "downgrade")
    assert downgrade.previous_tier is Tier.WEALTH
    assert any(r.rule == "hysteresis.downgrade" for r in downgrade.reasons)


def test_falling_far_below_the_gate_downgrades_without_waiting() -> None:
    state, _ = run(balance(T0 - days(60), "600000.00"), interaction(T0))
    state, changes = run(balance(T0, "1000.00"), state=state)
    state, changes = review_until(state, T0 + days(20))
    assert state.decision is not None
    assert state.decision.tier is not Tier.WEALTH
    downgrade = next(c for c in changes if c.direction == "downgrade")
    assert downgrade.at < T0 + days(20)


def test_a_silent_customer_churns_by_review_alone_at_the_moment_the_window_ends() -> None:
    state, _ = run(txn(T0, "500.00"), balance(T0, "20000.00"))
    state, changes = review_until(state, T0 + days(200))
    assert state.decision is not None
    assert state.decision.stage is Stage.CHURNED
    churn = next(c for c in changes if c.stage is Stage.CHURNED)
    assert churn.caused_by == "review"
    assert T0 + days(180) <= churn.at <= T0 + days(181)
    at_risk = next(c for c in changes if c.stage is Stage.AT_RISK)
    assert at_risk.at < churn.at


def test_new_customers_become_regular_after_ninety_days_of_tenure() -> None:
    state, _ = run(txn(T0, "50.00"))
    assert state.decision is not None
    assert state.decision.stage is Stage.NEW
    for n in range(1, 5):
        state, _ = run(txn(T0 + days(25 * n), "50.00"), state=state)
    assert state.decision is not None
    assert state.decision.stage is Stage.REGULAR


def test_a_detractor_or_an_open_high_complaint_puts_a_customer_at_risk_until_resolved() -> None:
    state, _ = run(txn(T0 - days(200), "50.00"), txn(T0, "50.00"))
    assert state.decision is not None
    assert state.decision.stage is Stage.REGULAR
    state, changes = run(complaint(T0 + days(1), "K1", "high", "open"), state=state)
    assert changes[-1].stage is Stage.AT_RISK
    assert "complaints_open_high 1 >= 1" in changes[-1].reasons[-1].detail
    state, changes = run(complaint(T0 + days(3), "K1", "high", "resolved"), state=state)
    assert changes[-1].stage is Stage.REGULAR
    state, changes = run(survey(T0 + days(4), 3), state=state)
    assert changes[-1].stage is Stage.AT_RISK


def test_every_decision_explains_itself_with_the_rule_and_the_values() -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    rules = {r.rule: r.detail for r in state.decision.reasons}
    assert rules["tier.wealth"] == "aum_avg_30d 620000 >= 500000"
    assert any(rule.startswith("stage.") for rule in rules)
    assert state.decision.policy_version == default_policy().version


def test_a_reason_names_its_conditions_so_each_language_can_word_it() -> None:
    state, changes = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    wealth = next(r for r in state.decision.reasons if r.rule == "tier.wealth")
    assert wealth.conditions == (ReasonCondition("aum_avg_30d", "gte", "620000", "500000"),)
    published = json.loads(tier_changed_event(changes[-1]).value)["data"]["reasons"]
    assert [r["conditions"] for r in published] == [
        [c._asdict() for c in r.conditions] for r in changes[-1].reasons
    ]
    assert (
        next(r for r in published if r["rule"] == "tier.wealth")["conditions"][0]["feature"] == "aum_avg_30d"
    )


def test_state_written_before_reasons_had_conditions_still_decodes() -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    raw = json.loads(json.dumps(encode(state)))
    raw["decision"]["reasons"] = [[r.rule, r.detail] for r in state.decision.reasons]
    decision = decode("C1", raw).decision
    assert decision is not None
    assert [(r.rule, r.detail) for r in decision.reasons] == [
        (r.rule, r.detail) for r in state.decision.reasons
    ]
    assert all(r.conditions == () for r in decision.reasons)


def test_a_reason_with_conditions_is_stored_as_its_conditions_alone() -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    stored = json.loads(json.dumps(encode(state)))["decision"]["reasons"]
    assert ["tier.wealth", [["aum_avg_30d", "gte", "620000", "500000"]]] in stored
    assert decode("C1", encode(state)) == state


def test_an_override_wins_until_it_expires_and_then_the_policy_decides_again() -> None:
    state, _ = run(txn(T0, "50.00"))
    override = Override(Tier.WEALTH, "retention exception approved", T0 + days(10), "admin-1", T0)
    state, change = set_override(state, override, POLICY, T0 + days(1))
    assert change is not None
    assert change.tier is Tier.WEALTH
    assert change.trigger is Trigger.OVERRIDE
    assert state.decision is not None
    assert state.decision.reasons[0].rule == "override"
    assert state.decision.next_review_at <= T0 + days(10)
    state, changes = review_until(state, T0 + days(11))
    assert state.decision is not None
    assert state.decision.tier is Tier.MASS
    assert changes[-1].previous_tier is Tier.WEALTH


def test_a_change_made_by_an_override_is_caused_by_the_override_and_its_expiry_by_review() -> None:
    state, _ = run(txn(T0, "50.00"))
    override = Override(Tier.WEALTH, "retention exception approved", T0 + days(10), "admin-1", T0)
    state, set_change = set_override(state, override, POLICY, T0 + days(1))
    assert set_change is not None
    assert set_change.caused_by == "override"
    _, expired = review_until(state, T0 + days(11))
    assert [c.caused_by for c in expired if c.previous_tier is Tier.WEALTH] == ["review"]
    _, cleared = set_override(state, None, POLICY, T0 + days(2))
    assert cleared is not None
    assert (cleared.tier, cleared.caused_by) == (Tier.MASS, "override")


def test_the_next_review_is_due_when_a_recency_threshold_would_be_crossed() -> None:
    policy = load_policy(POLICY.model_dump_json().replace('"refresh_hours":168', '"refresh_hours":8000'))
    state, _ = run(txn(T0, "50.00"), policy=policy)
    assert state.decision is not None
    assert state.decision.next_review_at == T0 + days(60)  # the at_risk recency threshold


def test_change_ids_are_deterministic_for_the_same_input() -> None:
    first = run(txn(T0, "50.00"))
    event = txn(T0 + days(1), "99.00")
    once = run(event, state=first[0])[1]
    twice = run(event, state=first[0])[1]
    assert [c.id for c in once] == [c.id for c in twice]


def test_a_review_gives_the_same_change_ids_whenever_the_loop_gets_to_it() -> None:
    """A replay's review loop runs at other moments than the first pass's: the ids must not differ."""
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    stricter = load_policy(
        POLICY.model_dump_json()
        .replace(f'"version":"{POLICY.version}"', '"version":"strict-2"')
        .replace("500000", "5000000")
    )
    early = review(state, stricter, T0 + timedelta(hours=1))[1]
    late = review(state, stricter, T0 + timedelta(hours=2))[1]
    assert [c.trigger for c in early] == [Trigger.POLICY]
    assert [c.id for c in early] == [c.id for c in late]


def test_score_rewards_value_and_is_bounded() -> None:
    rich, _ = run(balance(T0 - days(40), "9000000.00"), txn(T0, "500000.00"))
    poor, _ = run(txn(T0, "5.00"))
    assert rich.decision is not None
    assert poor.decision is not None
    assert 0 <= poor.decision.score < rich.decision.score <= 100
    vector = derive(Features(), T0)
    vector["score"] = 0
    assert score(vector, POLICY.score) == pytest.approx(2.5)  # only the "missing NPS" half-credit


def test_policies_are_validated_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        load_policy(POLICY.model_dump_json().replace("aum_avg_30d", "aum_avg_31d"))
    reordered = POLICY.model_dump(mode="json")
    reordered["tiers"][0], reordered["tiers"][1] = reordered["tiers"][1], reordered["tiers"][0]
    with pytest.raises(ValueError, match="highest tier down"):
        Policy.model_validate(reordered)
    # A condition naming something that is not a feature at all is a validation error too.
    malformed = POLICY.model_dump(mode="json")
    malformed["stages"][0]["any_of"][0][0]["feature"] = {"nested": "object"}
    with pytest.raises(ValueError, match="feature"):
        Policy.model_validate(malformed)


@settings(max_examples=30)
@given(
    amounts=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2), min_size=1, max_size=8
    ),
    aum=st.decimals(min_value=Decimal(0), max_value=Decimal("9000000"), places=2),
)
def test_state_survives_the_json_round_trip_exactly(amounts: list[Decimal], aum: Decimal) -> None:
    events: list[tuple[ScoringEvent, Decimal | None]] = [
        txn(T0 + days(i * 3), str(a)) for i, a in enumerate(amounts)
    ]
    events += [
        balance(T0, str(aum), breakdown={"deposits": str(aum)}),
        survey(T0, 9),
        complaint(T0, "K", "low", "open"),
    ]
    state, _ = run(*events)
    override = Override(Tier.VIP, "test", T0 + days(5), "admin", T0)
    state = CustomerState(state.customer_id, state.features, state.decision, override)
    assert decode("C1", encode(state)) == state


def test_evaluate_is_a_pure_function_of_its_inputs() -> None:
    state, _ = run(balance(T0, "70000.00"), txn(T0, "10.00"))
    one = evaluate(state.features, POLICY, T0 + days(3), state.decision)
    two = evaluate(state.features, POLICY, T0 + days(3), state.decision)
    assert one == two


def test_a_change_caused_by_an_event_names_its_source_and_id_and_takes_its_id_from_both() -> None:
    event, aum = balance(T0, "600000.00")
    _, [first] = run((event, aum))
    _, [resent] = run((event, aum))
    _, [same_id_elsewhere] = run((replace(event, source="card-system"), aum))
    assert first.caused_by == EventCause(source=SOURCE, id=event.id)
    assert resent.id == first.id
    assert same_id_elsewhere.caused_by == EventCause(source="card-system", id=event.id)
    assert same_id_elsewhere.id != first.id


@pytest.mark.parametrize("aum", ["40000.00", "450000.00", "5500000.00"])
def test_the_review_time_from_known_balance_averages_is_the_one_worked_out_afresh(aum: str) -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), balance(T0 - days(3), aum), txn(T0, "18250.40"))
    decision = state.decision
    assert decision is not None
    features, now = state.features, decision.evaluated_at
    known = {window: average_daily_balance(features, now, window) for window in (30, 90)}
    afresh = exact_review_at(features, POLICY, now, decision.below_gate_since, None, decision.labels)
    assert afresh is not None
    assert decision.due_at == afresh
    assert (
        exact_review_at(features, POLICY, now, decision.below_gate_since, None, decision.labels, known)
        == afresh
    )


@pytest.mark.parametrize("aum", ["0.00", "49999.99", "50000.00", "500000.00", "6000000.00"])
def test_compiled_gates_and_stages_choose_the_first_rule_whose_conditions_all_hold(aum: str) -> None:
    state, _ = run(profile(T0 - days(400)), balance(T0 - days(40), aum), txn(T0, "10.00"))
    assert state.decision is not None
    vector = FeatureVector(state.features, T0)
    vector["score"] = state.decision.score
    gate = next(g for g in POLICY.tiers if first_group(g.any_of, vector) is not None)
    assert policy_tier(vector, POLICY)[0] is gate.tier is state.decision.policy_tier
    vector["tier"] = state.decision.tier.value
    stage = next(r for r in POLICY.stages if first_group(r.any_of, vector) is not None)
    assert stage.stage is state.decision.stage


_NAMED = sorted(
    {
        c.feature
        for rules in (POLICY.tiers, POLICY.stages, POLICY.labels)
        for r in rules
        for g in r.any_of
        for c in g
    }
    | {term.feature for term in POLICY.score}
)
_TEXT = {"nps_category": ["promoter", "passive", "detractor"], "tier": ["mass", "vip", "wealth", "private"]}


def _value(feature: str) -> st.SearchStrategy[Any]:
    """A feature's value: missing, or near the policy's thresholds on it (on them exactly too)."""
    if feature in _TEXT:
        return st.none() | st.sampled_from(_TEXT[feature])
    thresholds = [
        c.value
        for rules in (POLICY.tiers, POLICY.stages, POLICY.labels)
        for r in rules
        for g in r.any_of
        for c in g
        if c.feature == feature and isinstance(c.value, Decimal)
    ]
    exact = st.sampled_from(thresholds) if thresholds else st.just(Decimal(0))
    nearby = st.decimals(min_value=-10, max_value=10_000_000, places=2, allow_nan=False, allow_infinity=False)
    return st.none() | exact | nearby | st.integers(0, 2_000)


@settings(max_examples=300)
@given(st.fixed_dictionaries({feature: _value(feature) for feature in _NAMED}))
def test_compiled_rules_and_score_agree_with_the_rules_read_one_condition_at_a_time(
    vector: dict[str, Any],
) -> None:
    """The policy compiled into functions decides as the conditions and terms read one by one:
    the same gate, the same labels with the same reasons, the same score to the last bit."""
    vector["score"] = None if vector["score"] is None else float(vector["score"])
    gate = next(g for g in POLICY.tiers if first_group(g.any_of, vector) is not None)
    tier, reason = policy_tier(vector, POLICY)
    assert tier is gate.tier
    assert reason.conditions == tuple(
        ReasonCondition(c.feature, c.op.value, _shown(vector[c.feature]), _shown(c.value))
        for c in first_group(gate.any_of, vector) or ()
    )
    held = decide_labels(vector, POLICY, T0, ())
    assert [label.name for label in held] == [
        rule.name for rule in POLICY.labels if first_group(rule.any_of, vector) is not None
    ]
    products: list[float] = []
    for term in POLICY.score:
        low, high, value = float(term.low), float(term.high), vector[term.feature]
        if value is None:
            normalised = float(term.missing)
        elif term.transform == "log" and float(value) <= 0:
            normalised = 0.0 if low < high else 1.0
        else:
            x = math.log(float(value)) if term.transform == "log" else float(value)
            if term.transform == "log":
                low, high = math.log(low), math.log(high)
            normalised = min(1.0, max(0.0, (x - low) / (high - low)))
        products.append(float(term.weight) * normalised)
    weighted, total = sum(products), sum(float(term.weight) for term in POLICY.score)
    assert score(vector, POLICY.score) == round(100 * weighted / total, 1)


def _shown(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value != value.to_integral_value() else f"{value:.0f}"
    return str(value)


def test_a_reason_worded_when_read_is_the_reason_worded_at_once() -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    for reason in state.decision.reasons:
        worded = Reason(reason.rule, reason.detail, reason.conditions)
        assert reason == worded
        assert hash(reason) == hash(worded)
        assert repr(reason) == repr(worded)
    with pytest.raises(AttributeError):
        state.decision.reasons[0].__setattr__("rule", "changed")


def test_a_reason_worded_when_read_copies_and_pickles_as_its_words() -> None:
    state, _ = run(balance(T0 - days(40), "620000.00"), txn(T0, "18250.40"))
    assert state.decision is not None
    for reason in state.decision.reasons:
        assert copy.copy(reason) == reason
        assert copy.deepcopy(reason) == reason
        assert pickle.loads(pickle.dumps(reason)) == reason  # noqa: S301 - our own bytes


@pytest.mark.parametrize("threshold", ["3000000", "1000000000"])
def test_a_day_count_threshold_beyond_the_calendar_never_falls_due_and_decides_as_before(
    threshold: str,
) -> None:
    """A policy may name any day count; one no date can reach is never due, for any customer."""
    document = POLICY.model_dump(mode="json")
    document["labels"] = [
        *document.get("labels", []),
        {
            "name": "veteran_saver",
            "dimension": "loyalty",
            "any_of": [[{"feature": "tenure_days", "op": "gte", "value": threshold}]],
        },
    ]
    far = Policy.model_validate({**document, "version": f"far-{threshold}"})
    events = (txn(T0, "500.00"), balance(T0, "20000.00"), txn(T0 + days(3), "80.00"))

    state, changes = run(*events, policy=far)
    usual, usual_changes = run(*events)

    assert state.decision is not None
    assert usual.decision is not None
    assert "veteran_saver" not in state.decision.label_names
    assert state.decision.due_at == usual.decision.due_at
    assert [(c.tier, c.stage) for c in changes] == [(c.tier, c.stage) for c in usual_changes]
