"""Holdouts: a deterministic, independent draw, taken only where every guardrail lets an
action through, never for service recovery, and using no cap."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.engagement.domain.guardrails import COUNTS_TOWARDS_CAPS, Contact
from services.engagement.domain.holdouts import held_out_reason, hold_on, holds_in_force, in_control_group
from services.engagement.domain.lifecycle import ItemStatus, TransitionRefused, claim
from services.engagement.domain.planning import Change, plan
from services.engagement.domain.playbook import Category, ContactChannel, Holdout, Playbook, Rule
from services.engagement.store import item_state
from tests.unit.engagement.test_guardrails_and_planning import NOON, PLAYBOOK, change

VIP_WELCOME = Holdout(experiment="vip-welcome-holdout", share=Decimal("0.1"))
CUSTOMERS = [f"C{number:05d}" for number in range(4000)]
HELD = next(c for c in CUSTOMERS if in_control_group(c, VIP_WELCOME))
TREATED = next(c for c in CUSTOMERS if not in_control_group(c, VIP_WELCOME))


def upgrade_of(customer_id: str, **overrides: Any) -> Change:
    return change(customer_id=customer_id, previous_tier="mass", tier="vip", direction="upgrade", **overrides)


def statuses(items: list[Any]) -> list[tuple[str, ItemStatus, str | None]]:
    return [(i.kind, i.status, i.experiment) for i in items]


def action(kind: str, category: str, channels: list[str], **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "category": category, "channels": channels, "template": kind, **extra}


def test_the_draw_holds_out_the_stated_share_the_same_way_every_time_and_apart_per_experiment() -> None:
    held = {c for c in CUSTOMERS if in_control_group(c, VIP_WELCOME)}
    assert 0.085 < len(held) / len(CUSTOMERS) < 0.115
    assert held == {c for c in CUSTOMERS if in_control_group(c, VIP_WELCOME)}
    other = VIP_WELCOME.model_copy(update={"experiment": "onboarding-holdout"})
    # Independent draws overlap by about share squared (1%), not by the share.
    assert len(held & {c for c in CUSTOMERS if in_control_group(c, other)}) < 0.03 * len(CUSTOMERS)


def test_a_held_out_customer_gets_a_closed_held_out_item_with_its_reason_and_the_treated_one_is_queued() -> (
    None
):
    held = plan(upgrade_of(HELD), [], [], PLAYBOOK, NOON).items
    treated = plan(upgrade_of(TREATED), [], [], PLAYBOOK, NOON).items
    assert statuses(held) == [("app_push", ItemStatus.HELD_OUT, "vip-welcome-holdout")]
    assert held[0].reason == "holdout: control group of experiment vip-welcome-holdout (10% held out)"
    assert held[0].closed
    assert not held[0].needs_assignee
    assert statuses(treated) == [("app_push", ItemStatus.QUEUED, "vip-welcome-holdout")]


def test_guardrails_decide_before_the_draw_so_the_control_group_would_have_been_contacted() -> None:
    over_cap = [Contact(Category.MARKETING, ContactChannel.APP, NOON - timedelta(days=1))] * 2
    items = plan(upgrade_of(HELD), [], over_cap, PLAYBOOK, NOON).items
    assert statuses(items) == [("app_push", ItemStatus.CANCELLED, None)]
    assert "frequency cap" in items[0].reason
    no_consent = upgrade_of(HELD, profile={"consents": {"app": False, "sms": False, "email": False}})
    assert statuses(plan(no_consent, [], [], PLAYBOOK, NOON).items) == [
        ("app_push", ItemStatus.CANCELLED, None)
    ]


def test_a_held_out_item_uses_no_cap_and_never_moves() -> None:
    assert ItemStatus.HELD_OUT not in COUNTS_TOWARDS_CAPS
    playbook = Playbook.model_validate(
        {
            "version": "t", "caps": {"marketing": {"max_contacts": 1, "days": 7}},
            "rules": [
                {"name": "welcome", "when": {"to_tiers": ["vip"]}, "holdout": VIP_WELCOME.model_dump(),
                 "actions": [action("app_push", "marketing", ["app"])]},
                {"name": "benefits", "when": {"to_tiers": ["vip"]},
                 "actions": [action("email", "marketing", ["email"])]},
            ],
        }
    )  # fmt: skip
    held = plan(upgrade_of(HELD), [], [], playbook, NOON).items
    assert [i.status for i in held] == [ItemStatus.HELD_OUT, ItemStatus.QUEUED]
    treated = plan(upgrade_of(TREATED), [], [], playbook, NOON).items
    assert [i.status for i in treated] == [ItemStatus.QUEUED, ItemStatus.CANCELLED]
    row = {"id": "i1", "status": "held_out", "assigned_to": None, "outcome": None, "cancel_reason": None,
           "first_contact_at": None, "closed_at": NOON}  # fmt: skip
    with pytest.raises(TransitionRefused, match="held_out"):
        claim(item_state(row), "RM1")


def test_service_is_never_held_out_nor_a_customer_with_an_open_high_complaint() -> None:
    service = action("assign_rm", "service", ["internal"], needs_rm=True)
    rule: dict[str, Any] = {
        "name": "top-welcome", "when": {"to_tiers": ["vip"]}, "holdout": VIP_WELCOME.model_dump(),
        "actions": [service, action("rm_call", "retention", ["phone"], needs_rm=True)],
    }  # fmt: skip
    playbook = Playbook.model_validate({"version": "t", "rules": [rule]})
    assert statuses(plan(upgrade_of(HELD), [], [], playbook, NOON).items) == [
        ("assign_rm", ItemStatus.QUEUED, None),
        ("rm_call", ItemStatus.HELD_OUT, "vip-welcome-holdout"),
    ]
    complaining = upgrade_of(HELD, complaints_open_high=1)
    assert [i.status for i in plan(complaining, [], [], playbook, NOON).items] == [ItemStatus.QUEUED] * 2
    # A rule that does not name the at-risk stage still meets customers who are drifting away:
    # their calls are service recovery too.
    drifting = upgrade_of(HELD, previous_stage="core", stage="at_risk")
    assert [i.status for i in plan(drifting, [], [], playbook, NOON).items] == [ItemStatus.QUEUED] * 2
    with pytest.raises(ValidationError, match="marketing or retention action"):
        Rule.model_validate({**rule, "actions": [service]})
    with pytest.raises(ValidationError, match="never held out"):
        Rule.model_validate({**rule, "when": {"to_stages": ["at_risk"]}})
    with pytest.raises(ValidationError, match="share"):
        Holdout.model_validate({"experiment": "x", "share": "0.6"})


def test_the_default_playbook_holds_out_a_tenth_of_its_marketing_welcomes() -> None:
    holdouts = {rule.name: rule.holdout for rule in PLAYBOOK.rules if rule.holdout}
    assert {name: h.share for name, h in holdouts.items()} == {
        "vip-welcome": Decimal("0.1"),
        "onboarding": Decimal("0.1"),
    }


def stage_change(customer_id: str, **overrides: Any) -> Change:
    """A mass customer becoming regular: only the nudge rule matches."""
    return change(
        customer_id=customer_id, previous_tier="mass", tier="mass", previous_stage="new", stage="regular",
        direction="stage", **overrides,
    )  # fmt: skip


def two_rules_pushing_the_app() -> Playbook:
    """The welcome's experiment holds out app pushes; a later rule pushes the app too."""
    return Playbook.model_validate(
        {
            "version": "t",
            "rules": [
                {"name": "welcome", "when": {"to_tiers": ["vip"]},
                 "holdout": {**VIP_WELCOME.model_dump(), "days": 30},
                 "actions": [action("app_push", "marketing", ["app"])]},
                {"name": "nudge", "when": {"to_stages": ["regular"]},
                 "actions": [action("app_push", "marketing", ["app"]),
                             action("rm_call", "service", ["phone"], needs_rm=True)]},
            ],
        }
    )  # fmt: skip


# What engagement stores of the welcome's draw: (kind, experiment, when, why).
VIP_WELCOME_DRAWN_AT_NOON = ("app_push", "vip-welcome-holdout", NOON, held_out_reason(VIP_WELCOME))


def test_a_held_out_customer_gets_the_action_from_no_other_rule_in_the_window_but_service_still() -> None:
    playbook = two_rules_pushing_the_app()
    drawn = plan(upgrade_of(HELD, stage="regular"), [], [], playbook, NOON).items
    # The same change: the welcome's draw holds the nudge's app push out too.
    assert statuses(drawn) == [
        ("app_push", ItemStatus.HELD_OUT, "vip-welcome-holdout"),
        ("app_push", ItemStatus.HELD_OUT, None),
        ("rm_call", ItemStatus.QUEUED, None),
    ]
    assert drawn[1].reason.startswith("holdout: held out of app_push by experiment vip-welcome-holdout until")
    # A later change: the earlier draw still holds, from the items stored for it.
    stored = [("app_push", "vip-welcome-holdout", NOON, drawn[0].reason)]
    later = NOON + timedelta(days=10)
    nudge = stage_change(HELD, at=later)
    holds = holds_in_force(stored, playbook, later)
    assert statuses(plan(nudge, [], [], playbook, later, holds).items) == [
        ("app_push", ItemStatus.HELD_OUT, None),
        ("rm_call", ItemStatus.QUEUED, None),
    ]
    # Past the experiment's window the customer is contacted again; a treated one always was.
    after = NOON + timedelta(days=31)
    assert holds_in_force(stored, playbook, after) == {}
    assert [i.status for i in plan(nudge, [], [], playbook, after, {}).items] == [ItemStatus.QUEUED] * 2
    treated = plan(stage_change(TREATED, at=later), [], [], playbook, later, {}).items
    assert [i.status for i in treated] == [ItemStatus.QUEUED] * 2


def test_a_hold_gives_way_to_service_recovery_for_a_customer_at_risk_or_complaining() -> None:
    playbook = two_rules_pushing_the_app()
    holds = holds_in_force([VIP_WELCOME_DRAWN_AT_NOON], playbook, NOON)
    assert hold_on(holds, "app_push", Category.MARKETING, 0, at_risk=False) is not None
    assert hold_on(holds, "app_push", Category.SERVICE, 0, at_risk=False) is None
    assert hold_on(holds, "app_push", Category.MARKETING, 1, at_risk=False) is None
    assert hold_on(holds, "app_push", Category.MARKETING, 0, at_risk=True) is None
    # An experiment the playbook no longer runs holds nobody.
    retired = ("app_push", "retired-holdout", NOON, "holdout: control group of experiment retired-holdout")
    assert holds_in_force([retired], playbook, NOON) == {}


def test_a_hold_ends_with_the_window_of_the_draw_however_often_other_rules_trigger_the_action() -> None:
    playbook = two_rules_pushing_the_app()
    stored = [VIP_WELCOME_DRAWN_AT_NOON]
    later = NOON + timedelta(days=20)
    nudged = plan(
        stage_change(HELD, at=later), [], [], playbook, later, holds_in_force(stored, playbook, later)
    )
    # The nudge's app push held out by the hold is no draw: it names no experiment, so it is not
    # among the holds engagement reads back, and no report counts it in a group.
    held = [i for i in nudged.items if i.status is ItemStatus.HELD_OUT]
    assert [(i.kind, i.experiment) for i in held] == [("app_push", None)]
    stored += [(i.kind, i.experiment, later, i.reason) for i in held if i.experiment is not None]
    # The draw was 31 days ago: its 30-day window is over, and no later draw was made.
    assert holds_in_force(stored, playbook, NOON + timedelta(days=31)) == {}
