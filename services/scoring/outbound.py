"""Tier changes as `customer.tier_changed.v1` CloudEvents (the outbox holds these bytes)."""

from __future__ import annotations

from datetime import datetime

from services.scoring.domain.customer import TierChange
from services.scoring.domain.features import Features, aum_at, day_of, open_high_complaints, products_held
from services.scoring.domain.profile import ProfileChange
from shared.contracts.outbound import (
    CUSTOMER_ERASED,
    PROFILE_CHANGED,
    TIER_CHANGED,
    CustomerErasedData,
    CustomerProfileChangedData,
    Reason,
    ReasonCondition,
    TierChangedData,
)
from shared.publishing import OutboxMessage, customer_event

SOURCE = "tierflow/scoring"
PROFILE_FIELDS = ("branch_id", "rm_id", "segment", "region", "risk_profile", "consents", "timezone")


def tier_changed_event(change: TierChange) -> OutboxMessage:
    """The CloudEvent keyed by customer, with what subscribers need to act (profile, complaints)."""
    data = TierChangedData(
        customer_id=change.customer_id,
        previous_tier=change.previous_tier,
        tier=change.tier,
        previous_stage=change.previous_stage,
        stage=change.stage,
        direction=change.direction,
        score=change.score,
        policy_version=change.policy_version,
        reasons=[
            Reason(
                rule=r.rule,
                detail=r.detail[:500],
                conditions=[ReasonCondition(**c._asdict()) for c in r.conditions[:50]],
            )
            for r in change.reasons[:50]
        ],
        caused_by=change.caused_by,
        labels=list(change.labels),
        labels_entered=list(change.labels_entered),
        labels_left=list(change.labels_left),
    )
    return customer_event(
        event_id=change.id,
        source=SOURCE,
        event_type=TIER_CHANGED,
        time=change.at,
        customer_id=change.customer_id,
        data={
            **data.model_dump(mode="json"),
            "trigger": change.trigger.value,
            **customer_context(change.features),
            **holdings(change.features, change.at),
        },
    )


def holdings(features: Features, at: datetime) -> dict[str, object]:
    """The customer's AUM (base currency) and products held when the change was decided, so an
    experiment's groups can be compared on them by a subscriber that sees no balances."""
    return {"aum": str(aum_at(features, at)), "products_held": products_held(features, day_of(at))}


def profile_changed_event(change: ProfileChange) -> OutboxMessage:
    """`customer.profile_changed.v1`, keyed by customer, with the new profile as a tier change has it."""
    data = CustomerProfileChangedData.model_validate(
        {
            "customer_id": change.customer_id,
            "changed": list(change.changed),
            "previous_branch_id": change.previous_branch_id,
            "previous_rm_id": change.previous_rm_id,
        }
    )
    return customer_event(
        event_id=change.id,
        source=SOURCE,
        event_type=PROFILE_CHANGED,
        time=change.at,
        customer_id=change.customer_id,
        data={**data.model_dump(mode="json"), **customer_context(change.features)},
    )


def customer_context(features: Features) -> dict[str, object]:
    """What a subscriber needs to act on a change without asking back: profile and complaints."""
    profile = features.profile
    return {
        "profile": {name: profile[name] for name in PROFILE_FIELDS if name in profile},
        "complaints_open_high": open_high_complaints(features),
        "nps_latest": features.nps_latest,
    }


def customer_erased_event(customer_id: str, event_id: str, at: datetime) -> OutboxMessage:
    """`customer.erased.v1`, keyed by the customer so it follows their last tier change."""
    data = CustomerErasedData(customer_id=customer_id, erased_at=at)
    return customer_event(
        event_id=event_id,
        source=SOURCE,
        event_type=CUSTOMER_ERASED,
        time=at,
        customer_id=customer_id,
        data=data.model_dump(mode="json"),
    )
