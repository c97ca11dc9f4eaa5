"""Playbook rules over customer labels: entered, left, held, and the labels that rule channels out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.engagement.domain.planning import Change, OpenItem, matches, plan
from services.engagement.domain.playbook import Category, Match, default_playbook
from shared.contracts.types import Stage, Tier

PLAYBOOK = default_playbook()
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ALL_CONSENTS = {"phone": True, "sms": True, "email": True, "app": True}


def labels_change(**overrides: Any) -> Change:
    """A VIP whose labels alone changed."""
    base: dict[str, Any] = {
        "source": "tierflow/scoring", "event_id": "chg-9", "customer_id": "C1",
        "previous_tier": "vip", "tier": "vip", "previous_stage": "core", "stage": "core",
        "direction": "labels", "at": NOON,
        "profile": {"rm_id": "RM1", "branch_id": "B1", "consents": ALL_CONSENTS, "risk_profile": "C4"},
    }  # fmt: skip
    base.update(overrides)
    return Change(**base)


def by_rule(change: Change) -> dict[str, tuple[str, str]]:
    return {item.rule: (item.kind, item.status.value) for item in plan(change, [], [], PLAYBOOK, NOON).items}


def test_a_vip_entering_investment_intent_is_offered_a_consultation_if_it_suits_them() -> None:
    entered = labels_change(labels=("investment_intent",), labels_entered=("investment_intent",))
    items = plan(entered, [], [], PLAYBOOK, NOON).items
    assert [(i.rule, i.kind, i.status.value, i.needs_rm) for i in items] == [
        ("investment-consultation", "offer", "queued", True)
    ]
    assert items[0].reason == "investment-consultation: vip/core -> vip/core (entered investment_intent)"
    cautious = replace(entered, profile={**entered.profile, "risk_profile": "C2"})
    stopped = plan(cautious, [], [], PLAYBOOK, NOON).items
    assert [i.status.value for i in stopped] == ["cancelled"]
    assert "does not suit risk profile C2" in stopped[0].reason
    # Holding the label already is not entering it; nor is a mass customer a VIP.
    assert by_rule(labels_change(labels=("investment_intent",), labels_entered=("salary_earner",))) == {}
    assert by_rule(replace(entered, previous_tier=Tier.MASS, tier=Tier.MASS)) == {}


def test_digital_difficulty_is_coached_in_the_app_or_else_at_a_branch() -> None:
    entered = labels_change(labels=("digital_difficulty",), labels_entered=("digital_difficulty",))
    items = plan(entered, [], [], PLAYBOOK, NOON).items
    assert [(i.kind, i.status.value, i.channel) for i in items] == [("digital_coaching", "queued", "app")]
    no_app = replace(entered, profile={**entered.profile, "consents": {**ALL_CONSENTS, "app": False}})
    assert [i.channel for i in plan(no_app, [], [], PLAYBOOK, NOON).items] == ["branch"]


def test_branch_reliant_customers_get_no_digital_campaigns_but_still_a_call() -> None:
    upgrade = labels_change(previous_tier="mass", direction="upgrade", labels=("branch_reliant",))
    items = plan(upgrade, [], [], PLAYBOOK, NOON).items
    welcome = next(i for i in items if i.rule == "vip-welcome")
    assert welcome.status.value == "cancelled"
    assert welcome.reason == "guardrail: branch_reliant customers get no marketing by app, sms, email"
    digital = plan(replace(upgrade, labels=("digital_first",)), [], [], PLAYBOOK, NOON).items
    assert [(i.rule, i.status.value) for i in digital] == [("vip-welcome", "queued")]
    churned = labels_change(
        previous_stage="at_risk", stage="churned", direction="stage", labels=("branch_reliant",)
    )
    planned = [(i.kind, i.status.value) for i in plan(churned, [], [], PLAYBOOK, NOON).items]
    assert planned == [("return_visit_call", "queued"), ("offer", "cancelled")]


def test_label_criteria_match_entered_left_held_and_not_held() -> None:
    change = labels_change(labels=("a", "b"), labels_entered=("b",), labels_left=("c",))
    assert matches(Match(labels_entered=["b", "x"]), change)
    assert not matches(Match(labels_entered=["a"]), change)
    assert matches(Match(labels_left=["c"]), change)
    assert not matches(Match(labels_left=["a"]), change)
    assert matches(Match(labels_held=["a", "b"]), change)
    assert not matches(Match(labels_held=["a", "c"]), change)
    assert matches(Match(labels_not_held=["c"]), change)
    assert not matches(Match(labels_not_held=["a"]), change)


def test_a_change_of_labels_alone_triggers_no_tier_or_stage_rule_and_supersedes_nothing() -> None:
    salaried = labels_change(labels=("salary_earner",), labels_entered=("salary_earner",))
    assert by_rule(salaried) == {}
    welcome = OpenItem("item-1", "vip-welcome", "app_push", Category.MARKETING, Tier.VIP, Stage.CORE)
    assert plan(salaried, [welcome], [], PLAYBOOK, NOON).cancellations == []
