from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from services.engagement.domain.guardrails import (
    Contact,
    consented_channel,
    marketing_suppressed,
    outside_quiet_hours,
    suitable,
    within_cap,
)
from services.engagement.domain.lifecycle import (
    ItemState,
    ItemStatus,
    TransitionRefused,
    cancel,
    choose_rm,
    claim,
    complete,
    expire,
    start,
)
from services.engagement.domain.planning import Change, OpenItem, plan
from services.engagement.domain.playbook import (
    Action,
    ActionKind,
    Cap,
    Category,
    ContactChannel,
    QuietHours,
    default_playbook,
)
from shared.contracts.outbound import OutreachOutcome
from shared.contracts.types import Stage, Tier

PLAYBOOK = default_playbook()
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ALL_CONSENTS = {"phone": True, "sms": True, "email": True, "app": True}


def change(**overrides: Any) -> Change:
    base: dict[str, Any] = {
        "source": "tierflow/scoring", "event_id": "chg-1", "customer_id": "C1",
        "previous_tier": "wealth", "tier": "vip", "previous_stage": "core", "stage": "core",
        "direction": "downgrade", "at": NOON,
        "profile": {"rm_id": "RM1", "branch_id": "B1", "consents": ALL_CONSENTS, "risk_profile": "C2"},
    }  # fmt: skip
    base.update(overrides)
    return Change(**base)


def queued(result_items: list[Any]) -> list[str]:
    return [i.kind for i in result_items if i.status == "queued"]


def test_an_opted_out_channel_is_never_used_and_the_next_allowed_one_is() -> None:
    channels = [ContactChannel.SMS, ContactChannel.EMAIL, ContactChannel.APP]
    assert consented_channel(channels, {"sms": False, "email": True})[0] is ContactChannel.EMAIL
    chosen, why = consented_channel(channels, {"sms": False, "email": False, "app": False})
    assert chosen is None
    assert "sms, email, app" in why
    assert consented_channel([ContactChannel.INTERNAL], {"phone": False})[0] is ContactChannel.INTERNAL


def test_frequency_caps_count_only_the_category_inside_the_window() -> None:
    caps = {Category.MARKETING: Cap(max_contacts=2, days=7)}
    two = [Contact(Category.MARKETING, ContactChannel.SMS, NOON - timedelta(days=d)) for d in (1, 6)]
    assert not within_cap(Category.MARKETING, two, caps, NOON)
    assert within_cap(Category.MARKETING, two[:1], caps, NOON)
    assert within_cap(Category.MARKETING, [replace(two[0], at=NOON - timedelta(days=8))] * 5, caps, NOON)
    assert within_cap(Category.SERVICE, two * 3, caps, NOON)


def test_quiet_hours_schedule_calls_and_messages_for_the_morning_and_leave_email_alone() -> None:
    quiet = QuietHours(start=time(21), end=time(8))
    late = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    assert outside_quiet_hours(ContactChannel.PHONE, late, "Asia/Shanghai", quiet) == datetime(
        2026, 3, 3, 0, 0, tzinfo=UTC
    )
    early = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # 05:00 in Shanghai
    assert outside_quiet_hours(ContactChannel.SMS, early, "Asia/Shanghai", quiet) == datetime(
        2026, 3, 3, 0, 0, tzinfo=UTC
    )
    assert outside_quiet_hours(ContactChannel.EMAIL, late, "Asia/Shanghai", quiet) == late
    assert outside_quiet_hours(ContactChannel.PHONE, NOON, "Asia/Shanghai", quiet) == NOON


def test_products_are_offered_only_within_their_risk_range() -> None:
    offer = Action.model_validate(
        {
            "kind": ActionKind.OFFER, "category": Category.MARKETING, "channels": [ContactChannel.SMS],
            "template": "t", "product": "equity-fund", "min_risk": "C4", "max_risk": "C5",
        }
    )  # fmt: skip
    assert suitable(offer, "C5")[0]
    assert not suitable(offer, "C2")[0]
    assert not suitable(offer, None)[0]


def test_marketing_stops_while_a_high_complaint_is_open_and_service_does_not() -> None:
    assert marketing_suppressed(Category.MARKETING, 1)
    assert not marketing_suppressed(Category.SERVICE, 1)
    assert not marketing_suppressed(Category.MARKETING, 0)


def test_a_wealth_downgrade_queues_one_high_priority_retention_call() -> None:
    result = plan(change(), [], [], PLAYBOOK, NOON)
    assert queued(result.items) == ["rm_call"]
    item = result.items[0]
    assert (item.category, item.priority.value, item.channel) == (
        Category.RETENTION,
        "high",
        ContactChannel.PHONE,
    )
    assert item.needs_rm


def test_churned_customers_get_a_return_visit_call_and_a_suitable_offer() -> None:
    churned = change(
        previous_tier="vip", tier="vip", previous_stage="at_risk", stage="churned", direction="stage"
    )
    assert queued(plan(churned, [], [], PLAYBOOK, NOON).items) == ["return_visit_call", "offer"]
    aggressive = replace(churned, profile={**churned.profile, "risk_profile": "C5"})
    items = plan(aggressive, [], [], PLAYBOOK, NOON).items
    assert queued(items) == ["return_visit_call"]
    assert "does not suit" in next(i.reason for i in items if i.kind == "offer")


def test_a_third_marketing_contact_inside_the_window_is_not_queued() -> None:
    upgrade = change(previous_tier="mass", tier="vip", direction="upgrade")
    contacts = [Contact(Category.MARKETING, ContactChannel.APP, NOON - timedelta(days=2))] * 2
    items = plan(upgrade, [], contacts, PLAYBOOK, NOON).items
    assert queued(items) == []
    assert "frequency cap" in items[0].reason


def test_no_marketing_and_still_service_recovery_while_a_high_complaint_is_open() -> None:
    at_risk = change(
        previous_tier="mass",
        tier="mass",
        previous_stage="regular",
        stage="at_risk",
        direction="stage",
        complaints_open_high=1,
    )
    items = plan(at_risk, [], [], PLAYBOOK, NOON).items
    assert queued(items) == ["rm_call"]
    assert items[0].category is Category.SERVICE


def test_no_duplicate_open_item_and_a_new_change_supersedes_what_no_longer_fits() -> None:
    open_retention = OpenItem(
        "i1", "top-tier-retention", "rm_call", Category.RETENTION, Tier.WEALTH, Stage.CORE
    )
    result = plan(change(event_id="chg-2"), [open_retention], [], PLAYBOOK, NOON)
    assert result.cancellations == [("i1", "superseded: the customer changed tier or stage again")]
    assert queued(result.items) == ["rm_call"]
    same_context = OpenItem("i2", "top-tier-retention", "rm_call", Category.RETENTION, Tier.VIP, Stage.CORE)
    again = plan(change(event_id="chg-3"), [same_context], [], PLAYBOOK, NOON)
    assert again.cancellations == []
    assert queued(again.items) == []
    assert again.items[0].reason.startswith("duplicate")


def test_planning_is_deterministic_so_a_redelivered_change_makes_the_same_items() -> None:
    assert [i.id for i in plan(change(), [], [], PLAYBOOK, NOON).items] == [
        i.id for i in plan(change(), [], [], PLAYBOOK, NOON).items
    ]


def test_rm_assignment_prefers_the_customers_rm_then_the_least_loaded_with_room() -> None:
    assert choose_rm("RM9", [("RM1", 10, 0)]) == "RM9"
    assert choose_rm(None, [("RM1", 10, 8), ("RM2", 20, 8), ("RM3", 5, 5)]) == "RM2"
    assert choose_rm(None, [("RM3", 5, 5)]) is None


def test_only_the_holder_moves_an_item_and_in_order() -> None:
    item = ItemState("i1", ItemStatus.QUEUED, None)
    mine = claim(item, "RM1")
    with pytest.raises(TransitionRefused, match="held by RM1"):
        claim(mine, "RM2")
    with pytest.raises(TransitionRefused, match="start it before"):
        complete(mine, "RM1", False, OutreachOutcome.REACHED, NOON)
    working = start(mine, "RM1", False, NOON)
    with pytest.raises(TransitionRefused, match="held by RM1, not RM2"):
        complete(working, "RM2", False, OutreachOutcome.REACHED, NOON)
    done = complete(working, "RM1", False, OutreachOutcome.CONVERTED, NOON)
    assert (done.status, done.outcome, done.first_contact_at) == ("completed", "converted", NOON)
    with pytest.raises(TransitionRefused, match="only open items"):
        cancel(done, "RM1", True, "late", NOON)
    assert expire(ItemState("i2", ItemStatus.QUEUED, None), NOON).status == "expired"


def test_one_change_that_calls_for_two_calls_makes_one_call() -> None:
    both = change(stage="at_risk")  # a downgrade from wealth that also enters at_risk
    items = plan(both, [], [], PLAYBOOK, NOON).items
    assert queued(items) == ["rm_call"]
    recovery = next(i for i in items if i.rule == "service-recovery")
    assert recovery.reason == "duplicate: covered by the top-tier-retention rm_call of this change"
