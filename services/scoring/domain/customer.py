"""The customer aggregate: apply an event or a review, get the new state and any tier change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.scoring.domain.evaluation import (
    MAX_CATCH_UP_REVIEWS,
    Decision,
    Override,
    Reason,
    evaluate,
    touched_by,
)
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.features import Features, apply_event
from services.scoring.domain.policy import Policy
from shared.contracts.outbound import OVERRIDE, REVIEW, TIER_RANK, CausedBy, ChangeDirection, EventCause
from shared.contracts.types import Stage, Tier

_IDS = uuid.UUID("5b0e5f3e-8d0c-4a57-9a43-2f1f6a1c7e01")


class Trigger(StrEnum):
    EVENT = "event"
    REVIEW = "review"
    POLICY = "policy_activation"
    OVERRIDE = "override"


@dataclass(frozen=True)
class CustomerState:
    customer_id: str
    features: Features
    decision: Decision | None = None
    override: Override | None = None

    @classmethod
    def new(cls, customer_id: str) -> CustomerState:
        return cls(customer_id=customer_id, features=Features())


@dataclass(frozen=True)
class TierChange:
    id: str
    customer_id: str
    previous_tier: Tier | None
    tier: Tier
    previous_stage: Stage | None
    stage: Stage
    direction: ChangeDirection
    score: float
    policy_version: str
    reasons: tuple[Reason, ...]
    caused_by: CausedBy
    trigger: Trigger
    at: datetime
    # The aggregates the change was decided on: what its event tells subscribers about the
    # customer then, not after later events of the same micro-batch.
    features: Features
    labels: tuple[str, ...] = ()
    labels_entered: tuple[str, ...] = ()
    labels_left: tuple[str, ...] = ()


def change_id(customer_id: str, cause: str) -> str:
    """Deterministic: the same input always yields the same id, so a resend is recognisable."""
    return str(uuid.uuid5(_IDS, f"tier-change|{customer_id}|{cause}"))


def event_cause_key(cause: EventCause) -> str:
    """Source and id, unambiguous whatever either contains: a resend of one event gives the same
    key, the same id from another source another."""
    return f"event|{len(cause.source)}:{cause.source}|{cause.id}"


def _direction(previous: Decision | None, current: Decision) -> ChangeDirection:
    before = -1 if previous is None else TIER_RANK[previous.tier]
    after = TIER_RANK[current.tier]
    if after > before:
        return ChangeDirection.UPGRADE
    if after < before:
        return ChangeDirection.DOWNGRADE
    if previous is not None and previous.stage is current.stage:
        return ChangeDirection.LABELS
    return ChangeDirection.STAGE


def _changed(
    previous: Decision | None,
    current: Decision,
    features: Features,
    customer_id: str,
    caused_by: CausedBy,
    trigger: Trigger,
    cause: str,
) -> TierChange | None:
    held_before = () if previous is None else previous.label_names
    held_now = current.label_names
    if (
        previous is not None
        and held_now == held_before
        and previous.tier is current.tier
        and previous.stage is current.stage
    ):
        return None  # the usual case, decided without looking for labels entered or left
    entered = tuple(name for name in held_now if name not in held_before)
    left = tuple(name for name in held_before if name not in held_now)
    if (
        previous is not None
        and (previous.tier, previous.stage) == (current.tier, current.stage)
        and not entered
        and not left
    ):
        return None
    direction = _direction(previous, current)
    return TierChange(
        id=change_id(customer_id, cause),
        customer_id=customer_id,
        previous_tier=None if previous is None else previous.tier,
        tier=current.tier,
        previous_stage=None if previous is None else previous.stage,
        stage=current.stage,
        direction=direction,
        score=current.score,
        policy_version=current.policy_version,
        reasons=_label_reasons(current, entered, left)
        if direction is ChangeDirection.LABELS
        else current.reasons,
        caused_by=caused_by,
        trigger=trigger,
        at=current.evaluated_at,
        features=features,
        labels=held_now,
        labels_entered=entered,
        labels_left=left,
    )


def _label_reasons(current: Decision, entered: tuple[str, ...], left: tuple[str, ...]) -> tuple[Reason, ...]:
    """Why a change of labels alone happened: each entered label's reason, each left one named."""
    reasons = [label.reason for label in current.labels if label.name in entered]
    reasons += [Reason(f"label.{name}", "left: its conditions no longer hold") for name in left]
    return tuple(reasons)


def reevaluate(
    state: CustomerState, policy: Policy, now: datetime, trigger: Trigger, occasion: datetime | None = None
) -> tuple[CustomerState, TierChange | None]:
    """Evaluate again with no new event: time passed, a policy or an override changed.

    The change's id is made of the customer, the trigger, the policy version and the
    `occasion` (by default `now`): for a review, the moment it fell due, not the moment a loop
    got to it, so a replay reproduces the same ids however its batches fall.
    """
    decision = evaluate(state.features, policy, now, state.decision, state.override)
    cause = f"{trigger.value}|{policy.version}|{(occasion or now).isoformat()}"
    caused_by: CausedBy = OVERRIDE if trigger is Trigger.OVERRIDE else REVIEW
    change = _changed(state.decision, decision, state.features, state.customer_id, caused_by, trigger, cause)
    return CustomerState(state.customer_id, state.features, decision, state.override), change


def catch_up(state: CustomerState, policy: Policy, until: datetime) -> tuple[CustomerState, list[TierChange]]:
    """Run every exact review that fell due up to `until`, each at its own moment, in order."""
    changes: list[TierChange] = []
    if state.decision is None or state.decision.evaluated_at >= until:
        return state, changes  # a decision falls due only after it was made
    for _ in range(MAX_CATCH_UP_REVIEWS):
        due = None if state.decision is None else state.decision.due_at
        if due is None or due > until:
            break
        state, change = reevaluate(state, policy, due, Trigger.REVIEW)
        if change is not None:
            changes.append(change)
    return state, changes


def review(state: CustomerState, policy: Policy, now: datetime) -> tuple[CustomerState, list[TierChange]]:
    """Time passed: exact reviews in order, a re-decision under a new policy, the periodic refresh."""
    if state.decision is None:
        return state, []
    changes: list[TierChange] = []
    if state.decision.policy_version != policy.version:
        # The re-decision of the decision in force under this policy: one per both, whenever made.
        replaced = state.decision.evaluated_at
        state, change = reevaluate(state, policy, now, Trigger.POLICY, occasion=replaced)
        changes += [change] if change else []
    state, caught_up = catch_up(state, policy, now)
    changes += caught_up
    if state.decision is not None and state.decision.next_review_at <= now:
        due = state.decision.next_review_at
        state, refreshed = reevaluate(state, policy, now, Trigger.REVIEW, occasion=due)
        changes += [refreshed] if refreshed else []
    return state, changes


def apply(
    state: CustomerState, event: ScoringEvent, amount_in_base: Decimal | None, policy: Policy, now: datetime
) -> tuple[CustomerState, list[TierChange]]:
    """Fold one event in: reviews due before it first, then the event, then the decision."""
    state, changes = catch_up(state, policy, min(event.time, now))
    features = apply_event(state.features, event, amount_in_base)
    touched = touched_by(event.type, state.decision, policy, now)
    decision = evaluate(features, policy, now, state.decision, state.override, touched)
    caused_by = event.cause
    change = _changed(
        state.decision,
        decision,
        features,
        state.customer_id,
        caused_by,
        Trigger.EVENT,
        event_cause_key(caused_by),
    )
    if change is not None:
        changes.append(change)
    return CustomerState(state.customer_id, features, decision, state.override), changes


class OverrideRefused(ValueError):
    pass


def new_override(
    tier: Tier, reason: str, expires_at: datetime, set_by: str, set_at: datetime, now: datetime
) -> Override:
    """A tier set by hand wins until it expires; one that would never be in force is refused."""
    override = Override(tier, reason, expires_at, set_by, set_at)
    if not override.active(now):
        raise OverrideRefused("expires_at must be in the future")
    return override


def set_override(
    state: CustomerState, override: Override | None, policy: Policy, now: datetime
) -> tuple[CustomerState, TierChange | None]:
    return reevaluate(replace(state, override=override), policy, now, Trigger.OVERRIDE)
