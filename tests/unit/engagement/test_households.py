"""One RM contact per household change, decided in the pure domain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.engagement.domain.guardrails import Contact
from services.engagement.domain.households import HouseholdContact, share_household_contacts
from services.engagement.domain.lifecycle import ItemStatus, household_rm
from services.engagement.domain.planning import Change, PlannedItem, plan
from services.engagement.domain.playbook import Category, ContactChannel
from tests.unit.engagement.test_guardrails_and_planning import NOON, PLAYBOOK, change

# 12:00 in Shanghai is 04:00 in London: quiet hours there.
NIGHT_ZONE = "Europe/London"


def member(customer_id: str, household_change: str | None = "hc-1", **overrides: Any) -> Change:
    """A household member's downgrade, which calls for a retention call by their RM."""
    return change(
        customer_id=customer_id,
        event_id=f"chg-{customer_id}",
        household_id="H1",
        household_tier="wealth",
        household_rm_id="RM-H",
        household_change=household_change,
        **overrides,
    )


def decided(
    of: Change, contacts: list[HouseholdContact], recent: list[Contact] | None = None
) -> list[PlannedItem]:
    planned = plan(of, [], recent or [], PLAYBOOK, NOON)
    return share_household_contacts(planned, of, contacts, PLAYBOOK, NOON).items


def the_call(items: list[PlannedItem]) -> PlannedItem:
    return next(item for item in items if item.kind == "rm_call")


def contact_of(item: PlannedItem) -> HouseholdContact:
    return HouseholdContact(item.id, item.kind, item.due_at)


def test_the_first_members_rm_call_becomes_the_households_contact_for_the_household_change() -> None:
    call = the_call(decided(member("M1"), []))
    assert call.status is ItemStatus.QUEUED
    assert (call.household_id, call.household_change, call.covered_by) == ("H1", "hc-1", None)
    assert "household H1 contact" in call.reason


def test_a_later_members_rm_call_of_the_same_household_change_is_covered_by_the_households_contact() -> None:
    first = the_call(decided(member("M1"), []))
    second = the_call(decided(member("M2"), [contact_of(first)]))
    assert second.status is ItemStatus.COVERED
    assert second.closed
    assert not second.needs_assignee
    assert second.covered_by == first.id
    assert (
        second.reason == f"household: covered by household H1's rm_call {first.id} for household change hc-1"
    )


def test_a_member_changed_by_another_household_change_gets_their_own_contact() -> None:
    first = the_call(decided(member("M1"), []))
    # The store finds the contacts of the member's own household change only: none for hc-2.
    other = the_call(decided(member("M2", household_change="hc-2"), []))
    assert other.status is ItemStatus.QUEUED
    assert other.id != first.id
    assert other.household_change == "hc-2"


def test_a_change_no_household_change_caused_plans_as_for_anyone() -> None:
    own = member("M1", household_change=None)
    planned = plan(own, [], [], PLAYBOOK, NOON)
    assert share_household_contacts(planned, own, [], PLAYBOOK, NOON) == planned
    assert the_call(planned.items).household_id is None


def test_a_member_at_their_frequency_cap_is_not_covered_and_keeps_the_guardrails_refusal() -> None:
    first = the_call(decided(member("M1"), []))
    three_calls = [
        Contact(Category.RETENTION, ContactChannel.PHONE, NOON - timedelta(days=d)) for d in (1, 2, 3)
    ]
    capped = the_call(decided(member("M2"), [contact_of(first)], three_calls))
    assert capped.status is ItemStatus.CANCELLED
    assert capped.covered_by is None
    assert capped.household_change is None
    assert "frequency cap" in capped.reason


def test_a_member_in_quiet_hours_when_the_contact_is_made_is_not_covered_and_is_called_in_their_morning() -> (
    None
):
    first = the_call(decided(member("M1"), []))
    night = member("M2", profile={**member("M2").profile, "timezone": NIGHT_ZONE})
    own = the_call(decided(night, [contact_of(first)]))
    assert own.status is ItemStatus.QUEUED
    assert own.covered_by is None
    assert own.due_at > first.due_at  # 08:00 in London


def test_a_member_reachable_when_a_later_due_contact_is_made_is_covered() -> None:
    night = member("M1", profile={**member("M1").profile, "timezone": NIGHT_ZONE})
    first = the_call(decided(night, []))
    assert first.due_at > NOON
    assert the_call(decided(member("M2"), [contact_of(first)])).covered_by == first.id


def test_an_overdue_contact_covers_only_members_reachable_now() -> None:
    overdue = HouseholdContact("item-0", "rm_call", NOON - timedelta(hours=14))  # 22:00 in Shanghai
    assert the_call(decided(member("M2"), [overdue])).covered_by == "item-0"
    night = member("M3", profile={**member("M3").profile, "timezone": NIGHT_ZONE})
    assert the_call(decided(night, [overdue])).covered_by is None


def test_the_earliest_contact_of_a_kind_covers_later_members() -> None:
    contacts = [HouseholdContact(f"item-{n}", "rm_call", NOON + timedelta(hours=n)) for n in (1, 2)]
    assert the_call(decided(member("M3"), contacts)).covered_by == "item-1"


def test_items_a_member_needs_no_rm_for_are_never_covered() -> None:
    upgraded = member("M2", previous_tier="mass", tier="vip", direction="upgrade", previous_stage="core")
    first_push = HouseholdContact("item-0", "app_push", NOON)
    pushes = [item for item in decided(upgraded, [first_push]) if item.kind == "app_push"]
    assert pushes
    assert all(item.covered_by is None and item.household_id is None for item in pushes)


def test_the_household_rm_takes_the_members_rm_work_unless_known_in_another_branch() -> None:
    assert household_rm("RM-H", None, "B1") == "RM-H"  # not registered: taken at its word, as a customer's RM
    assert household_rm("RM-H", "B1", "B1") == "RM-H"
    assert household_rm("RM-H", "B2", "B1") is None
    assert household_rm(None, None, "B1") is None
