"""The outreach item lifecycle: every transition is checked here, before anything is stored.

queued -> assigned -> in_progress -> completed (with an outcome)
any open state -> cancelled (with a reason) or expired (by the timer)
held_out: planned for a customer an experiment's control group holds out; closed from birth
covered: an RM item of a household member that the household's contact for the same household
change covers (one RM contact per household); closed from birth
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from shared.contracts.outbound import OutreachOutcome


class ItemStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    HELD_OUT = "held_out"
    COVERED = "covered"


CLOSED_STATES = frozenset(
    {ItemStatus.COMPLETED, ItemStatus.CANCELLED, ItemStatus.EXPIRED, ItemStatus.HELD_OUT, ItemStatus.COVERED}
)
OPEN_STATES = frozenset(ItemStatus) - CLOSED_STATES
# An RM holds an item from assignment until it closes: held items count against the RM's
# capacity, and a held item past its SLA is overdue.
HELD_STATES = OPEN_STATES - {ItemStatus.QUEUED}


class TransitionRefused(ValueError):
    pass


class ActorUnknown(ValueError):
    pass


class ActedBeforeItem(ValueError):
    """A stated action time earlier than the item's own latest time (its creation, its claim)."""


@dataclass(frozen=True)
class Actor:
    """Who moves an item: an RM (perhaps an admin acting for them), or an admin in its own name,
    who may move items held by anyone.

    `name` is the RM the step is taken as (an item claimed goes to them); `recorded_as` is how the
    audit trail names who took it, when that is not the RM themself."""

    name: str
    admin: bool
    recorded_as: str | None = None

    @property
    def audit_name(self) -> str:
        return self.recorded_as or self.name


def acting(key_id: str, *, admin: bool, bound_rm: str | None, named_rm: str | None) -> Actor:
    """Who acts for a key: the RM it is bound to, whatever RM the request names; an admin for the
    RM named (audited as `<key id> for <RM>`) or in their own name. An admin acting for an RM has
    that RM's rights, no more: another RM's item is not theirs to move (only an explicit
    reassignment gives it to someone else). An unbound RM key has no one to act as: the RM it
    would name is only the caller's word."""
    if bound_rm is not None:
        return Actor(bound_rm, admin=False)
    if admin:
        if named_rm:
            return Actor(named_rm, admin=False, recorded_as=f"{key_id} for {named_rm}")
        return Actor(f"admin:{key_id}", admin=True)
    raise ActorUnknown(
        "this rm key is not bound to an RM, so it may read but not act: bind it as KEY=rm:RM_ID@BRANCH"
    )


@dataclass(frozen=True)
class ItemState:
    id: str
    status: ItemStatus
    assigned_to: str | None
    outcome: OutreachOutcome | None = None
    cancel_reason: str | None = None
    first_contact_at: datetime | None = None
    closed_at: datetime | None = None


def acted_after(item_id: str, acted_at: datetime, last_moved_at: datetime) -> None:
    """An RM's stated time must not predate the item's last step: a simulation or replay that
    dates a claim before the item existed, or a start before the claim, would make SLAs and
    times to first contact negative."""
    if acted_at < last_moved_at:
        raise ActedBeforeItem(
            f"`at` {acted_at.isoformat()} is before item {item_id}'s last step at"
            f" {last_moved_at.isoformat()}; an action cannot predate the item it moves"
        )


def _open(item: ItemState) -> None:
    if item.status not in OPEN_STATES:
        raise TransitionRefused(f"item {item.id} is {item.status}; only open items change")


def _held_by(item: ItemState, actor: str, admin: bool) -> None:
    if not admin and item.assigned_to != actor:
        holder = item.assigned_to or "nobody"
        raise TransitionRefused(f"item {item.id} is held by {holder}, not {actor}")


def assign(item: ItemState, rm_id: str) -> ItemState:
    _open(item)
    if item.status is ItemStatus.IN_PROGRESS:
        raise TransitionRefused(f"item {item.id} is in progress; cancel or complete it first")
    return replace(item, status=ItemStatus.ASSIGNED, assigned_to=rm_id)


def claim(item: ItemState, actor: str) -> ItemState:
    _open(item)
    if item.assigned_to not in (None, actor):
        raise TransitionRefused(f"item {item.id} is held by {item.assigned_to}")
    if item.status is ItemStatus.IN_PROGRESS:
        raise TransitionRefused(f"item {item.id} is already in progress")
    return replace(item, status=ItemStatus.ASSIGNED, assigned_to=actor)


def start(item: ItemState, actor: str, admin: bool, now: datetime) -> ItemState:
    _open(item)
    _held_by(item, actor, admin)
    if item.status is not ItemStatus.ASSIGNED:
        raise TransitionRefused(f"item {item.id} is {item.status}; start needs an assigned item")
    return replace(item, status=ItemStatus.IN_PROGRESS, first_contact_at=item.first_contact_at or now)


def complete(item: ItemState, actor: str, admin: bool, outcome: OutreachOutcome, now: datetime) -> ItemState:
    _open(item)
    _held_by(item, actor, admin)
    if item.status is not ItemStatus.IN_PROGRESS:
        raise TransitionRefused(f"item {item.id} is {item.status}; start it before completing")
    return replace(item, status=ItemStatus.COMPLETED, outcome=outcome, closed_at=now)


def cancel(item: ItemState, actor: str, admin: bool, reason: str, now: datetime) -> ItemState:
    _open(item)
    if item.assigned_to is not None:
        _held_by(item, actor, admin)
    return replace(item, status=ItemStatus.CANCELLED, cancel_reason=reason, closed_at=now)


def follow_customer(item: ItemState, rm_id: str | None) -> ItemState:
    """An item not yet under way follows its customer to another branch: an assigned one goes to
    `rm_id` (the assignment rule applied in the new branch) or, with no one there to take it,
    back to the queue; a queued one stays queued. An item in progress stays with the RM who has
    made contact, in the branch it was planned in, until it closes."""
    _open(item)
    if item.status is ItemStatus.IN_PROGRESS:
        raise TransitionRefused(f"item {item.id} is in progress with {item.assigned_to}; it stays with them")
    if item.status is ItemStatus.QUEUED:
        return item
    if rm_id is None:
        return replace(item, status=ItemStatus.QUEUED, assigned_to=None)
    return replace(item, status=ItemStatus.ASSIGNED, assigned_to=rm_id)


def expire(item: ItemState, now: datetime) -> ItemState:
    _open(item)
    return replace(
        item, status=ItemStatus.EXPIRED, cancel_reason="expired before it was worked", closed_at=now
    )


def household_rm(
    household_rm_id: str | None, registered_branch: str | None, branch: str | None
) -> str | None:
    """The household primary's RM, who takes the RM work of every member, unless engagement knows
    them in another branch than the member's: as for a customer who moved, an RM of another
    branch is not the member's there, and the item falls back to the member's own assignment."""
    if not household_rm_id or registered_branch not in (None, branch):
        return None
    return household_rm_id


def choose_rm(customer_rm: str | None, branch_rms: list[tuple[str, int, int]]) -> str | None:
    """The customer's own RM if they have one; else the least-loaded RM of the branch with room.

    `branch_rms` holds (rm_id, capacity, open items).
    """
    if customer_rm:
        return customer_rm
    with_room = [(load / capacity, rm_id) for rm_id, capacity, load in branch_rms if load < capacity]
    return min(with_room)[1] if with_room else None
