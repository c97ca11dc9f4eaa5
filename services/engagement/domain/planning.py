"""From a tier or stage change to outreach: match the playbook, then apply every guardrail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.engagement.domain.guardrails import (
    Contact,
    consented_channel,
    label_allowed_channels,
    marketing_suppressed,
    outside_quiet_hours,
    suitable,
    within_cap,
)
from services.engagement.domain.holdouts import (
    HeldOut,
    experiment_of,
    held_out_reason,
    hold_on,
    hold_reason,
    in_control_group,
)
from services.engagement.domain.lifecycle import CLOSED_STATES, ItemStatus
from services.engagement.domain.playbook import (
    Action,
    Category,
    ContactChannel,
    Holdout,
    Match,
    Playbook,
    Priority,
    Rule,
)
from shared.contracts.outbound import ChangeDirection
from shared.contracts.types import Stage, Tier

_IDS = uuid.UUID("8f4f1f0c-2b7e-4f57-93c1-0d6a55f2a901")


@dataclass(frozen=True)
class Change:
    """What engagement reads from `customer.tier_changed.v1`."""

    source: str
    event_id: str
    customer_id: str
    previous_tier: Tier | None
    tier: Tier
    previous_stage: Stage | None
    stage: Stage
    direction: ChangeDirection
    at: datetime
    profile: dict[str, Any] = field(default_factory=dict)
    complaints_open_high: int = 0
    labels: tuple[str, ...] = ()
    labels_entered: tuple[str, ...] = ()
    labels_left: tuple[str, ...] = ()
    # The member's household and, when a household change caused this change, its id: the
    # members' changes of one household change share one RM contact.
    household_id: str | None = None
    household_tier: Tier | None = None
    household_rm_id: str | None = None
    household_change: str | None = None


@dataclass(frozen=True)
class ProfileUpdate:
    """What engagement reads from `customer.profile_changed.v1`: the customer's new profile."""

    source: str
    event_id: str
    customer_id: str
    at: datetime
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenItem:
    id: str
    rule: str
    kind: str
    category: Category
    context_tier: Tier
    context_stage: Stage


@dataclass(frozen=True)
class PlannedItem:
    id: str
    customer_id: str
    rule: str
    kind: str
    category: Category
    channel: ContactChannel | None
    priority: Priority
    status: ItemStatus
    due_at: datetime
    sla_due_at: datetime
    expires_at: datetime
    template: str
    product: str | None
    reason: str
    needs_rm: bool
    trigger_event_id: str
    context_tier: Tier
    context_stage: Stage
    assigned_to: str | None = None
    # The experiment whose draw decided this item: queued is treated, held_out the control.
    experiment: str | None = None
    # An RM item of a household change: the household's contact, or (covered) one covered by it.
    household_id: str | None = None
    household_change: str | None = None
    covered_by: str | None = None

    @property
    def needs_assignee(self) -> bool:
        return self.status is ItemStatus.QUEUED and self.needs_rm

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATES

    @property
    def cancel_reason(self) -> str | None:
        """A planned item a guardrail stopped is stored cancelled, with the guardrail as the reason."""
        return self.reason if self.status is ItemStatus.CANCELLED else None


def assign_planned(item: PlannedItem, rm_id: str | None) -> PlannedItem:
    """A queued item goes straight to the RM found for it; without one it waits in the queue."""
    if item.status is not ItemStatus.QUEUED or not rm_id:
        return item
    return replace(item, status=ItemStatus.ASSIGNED, assigned_to=rm_id)


@dataclass(frozen=True)
class Plan:
    items: list[PlannedItem]
    cancellations: list[tuple[str, str]]


def matches(match: Match, change: Change) -> bool:
    checks = [
        not match.directions or change.direction in match.directions,
        not match.from_tiers or change.previous_tier in match.from_tiers,
        not match.to_tiers or change.tier in match.to_tiers,
        not match.from_stages or change.previous_stage in match.from_stages,
        not match.to_stages or change.stage in match.to_stages,
        match.first_seen is None or match.first_seen == (change.previous_tier is None),
        match.stage_changed is None or match.stage_changed == (change.previous_stage != change.stage),
        match.tier_changed is None or match.tier_changed == (change.previous_tier != change.tier),
        not match.labels_entered or not set(match.labels_entered).isdisjoint(change.labels_entered),
        not match.labels_left or not set(match.labels_left).isdisjoint(change.labels_left),
        set(match.labels_held).issubset(change.labels),
        set(match.labels_not_held).isdisjoint(change.labels),
    ]
    return all(checks)


def plan(
    change: Change,
    open_items: list[OpenItem],
    contacts: list[Contact],
    playbook: Playbook,
    now: datetime,
    holds: dict[str, HeldOut] | None = None,
) -> Plan:
    """New items (queued, held out, or cancelled with the guardrail that stopped them) and
    superseded ones. `holds` are the actions the customer is held out of (by kind) from earlier
    draws; a draw made here holds them out of its action for the rest of this change too."""
    holding = dict(holds or {})
    cancellations = [
        (item.id, "superseded: the customer changed tier or stage again")
        for item in open_items
        if item.context_tier != change.tier
        or (item.category is not Category.SERVICE and item.context_stage != change.stage)
    ]
    # The same playbook action is never open twice for a customer; different purposes may be.
    still_open = {
        (item.rule, item.kind) for item in open_items if item.id not in {c[0] for c in cancellations}
    }
    planned: list[PlannedItem] = []
    planned_kinds: dict[str, str] = {}  # one contact of a kind per change covers every purpose
    seen_contacts = list(contacts)
    for rule in playbook.rules:
        if not matches(rule.when, change):
            continue
        for index, action in enumerate(rule.actions):
            item = _plan_action(
                change, rule, index, action, still_open, planned_kinds, seen_contacts, playbook, now
            )
            item = _held(item, holding, change)
            planned.append(item)
            if item.status is ItemStatus.HELD_OUT and item.experiment and item.kind not in holding:
                window = rule.holdout.days if rule.holdout else 0
                holding[item.kind] = HeldOut(item.kind, item.experiment, now + timedelta(days=window))
            if item.status is ItemStatus.QUEUED:
                still_open.add((rule.name, action.kind.value))
                planned_kinds[action.kind.value] = rule.name
                seen_contacts.append(Contact(action.category, item.channel, now))
    return Plan(planned, cancellations)


def _plan_action(
    change: Change,
    planned_by: Rule,
    index: int,
    action: Action,
    open_actions: set[tuple[str, str]],
    planned_kinds: dict[str, str],
    contacts: list[Contact],
    playbook: Playbook,
    now: datetime,
) -> PlannedItem:
    rule, profile = planned_by.name, change.profile
    channels, ruled_out = label_allowed_channels(action, change.labels, playbook.label_suppressions)
    channel, refusal = consented_channel(channels, profile.get("consents") or {})
    fits, unsuitable = suitable(action, profile.get("risk_profile"))
    stopped = ""
    if (rule, action.kind.value) in open_actions:
        stopped = f"duplicate: an open {action.kind.value} item exists"
    elif action.kind.value in planned_kinds:
        stopped = (
            f"duplicate: covered by the {planned_kinds[action.kind.value]} {action.kind.value} of this change"
        )
    elif marketing_suppressed(action.category, change.complaints_open_high):
        stopped = "guardrail: open high-severity complaint suppresses marketing"
    elif not fits:
        stopped = f"guardrail: {unsuitable}"
    elif ruled_out:
        stopped = f"guardrail: {ruled_out}"
    elif not within_cap(action.category, contacts, playbook.caps, now):
        cap = playbook.caps[action.category]
        limit = f"{cap.max_contacts} {action.category.value} contacts per {cap.days} days"
        stopped = f"guardrail: frequency cap of {limit}"
    elif channel is None:
        stopped = f"guardrail: {refusal}"
    timezone = profile.get("timezone") or playbook.default_timezone
    due = outside_quiet_hours(channel, now, timezone, playbook.quiet_hours)
    # Only a customer every guardrail lets through is drawn, so the control group is made of
    # customers who would have been contacted: the comparison is like for like.
    holdout = (
        None
        if stopped
        else experiment_of(
            planned_by.holdout, action.category, change.complaints_open_high, change.stage == Stage.AT_RISK
        )
    )
    status, reason = (ItemStatus.CANCELLED, stopped) if stopped else _drawn(holdout, change.customer_id)
    return PlannedItem(
        # From the change's source and id: the same id from another source is another change.
        id=str(uuid.uuid5(_IDS, f"{len(change.source)}:{change.source}|{change.event_id}|{rule}|{index}")),
        customer_id=change.customer_id,
        rule=rule,
        kind=action.kind.value,
        category=action.category,
        channel=channel,
        priority=action.priority,
        status=status,
        due_at=due,
        sla_due_at=due + timedelta(hours=action.sla_hours),
        expires_at=now + timedelta(hours=action.expires_hours),
        template=action.template,
        product=action.product,
        reason=reason or _why(rule, change),
        needs_rm=action.needs_rm,
        trigger_event_id=change.event_id,
        context_tier=change.tier,
        context_stage=change.stage,
        experiment=holdout.experiment if holdout else None,
    )


def _held(item: PlannedItem, holding: dict[str, HeldOut], change: Change) -> PlannedItem:
    """An action every guardrail let through is held out when an earlier draw holds the customer
    out of it, whichever rule planned it; an item its own draw held out keeps its own reason.
    The item names no experiment: it is no draw, so it neither restarts the hold nor enters an
    experiment's groups (a customer would otherwise join a later period's control group alone)."""
    if item.status is not ItemStatus.QUEUED:
        return item
    hold = hold_on(
        holding, item.kind, item.category, change.complaints_open_high, change.stage == Stage.AT_RISK
    )
    if hold is None:
        return item
    return replace(item, status=ItemStatus.HELD_OUT, reason=hold_reason(hold), experiment=None)


def _drawn(holdout: Holdout | None, customer_id: str) -> tuple[ItemStatus, str]:
    """Queued (treated, or outside any experiment), or held out with the experiment named."""
    if holdout is not None and in_control_group(customer_id, holdout):
        return ItemStatus.HELD_OUT, held_out_reason(holdout)
    return ItemStatus.QUEUED, ""


def _why(rule: str, change: Change) -> str:
    before = f"{change.previous_tier or 'new'}/{change.previous_stage or 'new'}"
    labels = [f"entered {name}" for name in change.labels_entered]
    labels += [f"left {name}" for name in change.labels_left]
    moved = f" ({', '.join(labels)})" if labels else ""
    return f"{rule}: {before} -> {change.tier}/{change.stage}{moved}"
