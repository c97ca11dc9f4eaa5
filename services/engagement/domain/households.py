"""One RM contact per household change: the members' changes one household change caused share
the RM contact planned for the first member who may be reached, instead of one call each.

Every guardrail still decides per person first (`plan`): only a member's RM item that came out
queued can be covered, and only if the member may be reached when the household's contact is
made (their own quiet hours at that moment). A member stopped by a guardrail keeps their
cancelled item; one who may not be reached then keeps their own item, due when they may be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from services.engagement.domain.guardrails import outside_quiet_hours
from services.engagement.domain.lifecycle import ItemStatus
from services.engagement.domain.planning import Change, Plan, PlannedItem
from services.engagement.domain.playbook import Playbook


@dataclass(frozen=True)
class HouseholdContact:
    """The open RM item that is a household's contact for one household change, of one kind."""

    item_id: str
    kind: str
    due_at: datetime


def share_household_contacts(
    planned: Plan, change: Change, contacts: Iterable[HouseholdContact], playbook: Playbook, now: datetime
) -> Plan:
    """The plan with the member's queued RM items either covered by the household's open contact
    of the same kind (status covered, naming it) or, with none to cover them, made the
    household's contact for this household change. Changes no household change caused, and
    every other item, are left as planned."""
    if change.household_id is None or change.household_change is None:
        return planned
    by_kind: dict[str, HouseholdContact] = {}
    for contact in contacts:  # the earliest first: a later one exists only for who it could not cover
        by_kind.setdefault(contact.kind, contact)
    items = [_shared(item, change, by_kind.get(item.kind), playbook, now) for item in planned.items]
    return replace(planned, items=items)


def _shared(
    item: PlannedItem, change: Change, contact: HouseholdContact | None, playbook: Playbook, now: datetime
) -> PlannedItem:
    if not item.needs_rm or item.status is not ItemStatus.QUEUED:
        return item
    household = replace(item, household_id=change.household_id, household_change=change.household_change)
    if contact is None or not _reachable(item, change, contact, playbook, now):
        return replace(household, reason=f"{item.reason} (household {change.household_id} contact)")
    reason = (
        f"household: covered by household {change.household_id}'s {item.kind} {contact.item_id}"
        f" for household change {change.household_change}"
    )
    return replace(household, status=ItemStatus.COVERED, covered_by=contact.item_id, reason=reason)


def _reachable(
    item: PlannedItem, change: Change, contact: HouseholdContact, playbook: Playbook, now: datetime
) -> bool:
    """Whether the member may be reached on their channel when the household's contact is made:
    when it is due, or now if it is overdue."""
    moment = max(contact.due_at, now)
    timezone = change.profile.get("timezone") or playbook.default_timezone
    return outside_quiet_hours(item.channel, moment, timezone, playbook.quiet_hours) == moment
