"""Who is held out of an experiment: a pure, deterministic draw.

The draw hashes the customer id with the experiment name, so a replay, a resend or another
engagement instance puts the same customer in the same group, and one customer's group in one
experiment says nothing about their group in another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.engagement.domain.playbook import HOLDOUT_CATEGORIES, Category, Holdout, Playbook

_BUCKETS = 2**64


def in_control_group(customer_id: str, holdout: Holdout) -> bool:
    """True when the customer falls in the held-out share of `holdout`'s experiment."""
    digest = hashlib.sha256(f"{len(holdout.experiment)}:{holdout.experiment}|{customer_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big")
    return Decimal(bucket) < holdout.share * _BUCKETS


def experiment_of(
    holdout: Holdout | None, category: Category, complaints_open_high: int, at_risk: bool
) -> Holdout | None:
    """The holdout an action is drawn for: marketing and retention only, and nobody with an
    open high-severity complaint or at risk of leaving (service recovery comes first for them,
    never a control group), whatever the rule's conditions name."""
    if holdout is None or not drawable(category, complaints_open_high, at_risk):
        return None
    return holdout


def drawable(category: Category, complaints_open_high: int, at_risk: bool) -> bool:
    return category in HOLDOUT_CATEGORIES and not complaints_open_high and not at_risk


_DRAWN = "holdout: control group of experiment "


def held_out_reason(holdout: Holdout) -> str:
    percent = f"{holdout.share * 100:f}".rstrip("0").rstrip(".")
    return f"{_DRAWN}{holdout.experiment} ({percent}% held out)"


@dataclass(frozen=True)
class HeldOut:
    """A customer held out of an action (its kind) by an experiment until its window ends."""

    kind: str
    experiment: str
    until: datetime


def hold_window(playbook: Playbook) -> timedelta:
    """The longest window of the playbook's experiments: how far back a hold can still apply."""
    days = [rule.holdout.days for rule in playbook.rules if rule.holdout is not None]
    return timedelta(days=max(days, default=0))


def holds_in_force(
    held_out_items: Iterable[tuple[str, str, datetime, str]], playbook: Playbook, now: datetime
) -> dict[str, HeldOut]:
    """By action kind, the holds still in force from the customer's held-out items (kind,
    experiment, when created, reason): each draw holds for its experiment's window in the
    playbook. An item a hold kept from the customer is no draw: it does not prolong the hold.
    An experiment the playbook no longer runs holds nobody."""
    windows = {rule.holdout.experiment: rule.holdout.days for rule in playbook.rules if rule.holdout}
    holds: dict[str, HeldOut] = {}
    for kind, experiment, drawn_at, reason in held_out_items:
        if experiment not in windows or not reason.startswith(_DRAWN):
            continue
        until = drawn_at + timedelta(days=windows[experiment])
        if until > now and (kind not in holds or until > holds[kind].until):
            holds[kind] = HeldOut(kind, experiment, until)
    return holds


def hold_on(
    holds: dict[str, HeldOut], kind: str, category: Category, complaints_open_high: int, at_risk: bool
) -> HeldOut | None:
    """The hold that keeps this action from the customer, if any: holds apply to marketing and
    retention only, never to service recovery or to a customer at risk or with an open
    high-severity complaint, as the draw itself does."""
    return holds.get(kind) if drawable(category, complaints_open_high, at_risk) else None


def hold_reason(hold: HeldOut) -> str:
    return (
        f"holdout: held out of {hold.kind} by experiment {hold.experiment}"
        f" until {hold.until.isoformat()}, whatever rule triggers it"
    )
