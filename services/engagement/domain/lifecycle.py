"""The outreach item lifecycle: every transition is checked here, before anything is stored.

queued -> assigned -> in_progress -> completed (with an outcome)
any open state -> cancelled (with a reason) or expired (by the timer)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

OPEN_STATES = frozenset({"queued", "assigned", "in_progress"})


class Outcome(StrEnum):
    REACHED = "reached"
    NOT_REACHED = "not_reached"
    CONVERTED = "converted"
    DECLINED = "declined"


class TransitionRefused(ValueError):
    pass


@dataclass(frozen=True)
class ItemState:
    id: str
    status: str
    assigned_to: str | None
    outcome: str | None = None
    cancel_reason: str | None = None
    first_contact_at: datetime | None = None
    closed_at: datetime | None = None


def _open(item: ItemState) -> None:
    if item.status not in OPEN_STATES:
        raise TransitionRefused(f"item {item.id} is {item.status}; only open items change")


def _held_by(item: ItemState, actor: str, admin: bool) -> None:
    if not admin and item.assigned_to != actor:
        holder = item.assigned_to or "nobody"
        raise TransitionRefused(f"item {item.id} is held by {holder}, not {actor}")


def assign(item: ItemState, rm_id: str) -> ItemState:
    _open(item)
    if item.status == "in_progress":
        raise TransitionRefused(f"item {item.id} is in progress; cancel or complete it first")
    return replace(item, status="assigned", assigned_to=rm_id)


def claim(item: ItemState, actor: str) -> ItemState:
    _open(item)
    if item.assigned_to not in (None, actor):
        raise TransitionRefused(f"item {item.id} is held by {item.assigned_to}")
    if item.status == "in_progress":
        raise TransitionRefused(f"item {item.id} is already in progress")
    return replace(item, status="assigned", assigned_to=actor)


def start(item: ItemState, actor: str, admin: bool, now: datetime) -> ItemState:
    _open(item)
    _held_by(item, actor, admin)
    if item.status != "assigned":
        raise TransitionRefused(f"item {item.id} is {item.status}; start needs an assigned item")
    return replace(item, status="in_progress", first_contact_at=item.first_contact_at or now)


def complete(item: ItemState, actor: str, admin: bool, outcome: Outcome, now: datetime) -> ItemState:
    _open(item)
    _held_by(item, actor, admin)
    if item.status != "in_progress":
        raise TransitionRefused(f"item {item.id} is {item.status}; start it before completing")
    return replace(item, status="completed", outcome=outcome.value, closed_at=now)


def cancel(item: ItemState, actor: str, admin: bool, reason: str, now: datetime) -> ItemState:
    _open(item)
    if item.assigned_to is not None:
        _held_by(item, actor, admin)
    return replace(item, status="cancelled", cancel_reason=reason, closed_at=now)


def expire(item: ItemState, now: datetime) -> ItemState:
    _open(item)
    return replace(item, status="expired", cancel_reason="expired before it was worked", closed_at=now)


def choose_rm(customer_rm: str | None, branch_rms: list[tuple[str, int, int]]) -> str | None:
    """The customer's own RM if they have one; else the least-loaded RM of the branch with room.

    `branch_rms` holds (rm_id, capacity, open items).
    """
    if customer_rm:
        return customer_rm
    with_room = [(load / capacity, rm_id) for rm_id, capacity, load in branch_rms if load < capacity]
    return min(with_room)[1] if with_room else None
