"""Tier changes as `customer.tier_changed.v1` CloudEvents (the outbox holds these bytes)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated

from pydantic import Field, TypeAdapter

from services.scoring.domain.customer import TierChange, Trigger
from services.scoring.domain.evaluation import Reason
from services.scoring.domain.features import Features, aum_at, day_of, open_high_complaints, products_held
from services.scoring.domain.profile import ProfileChange
from shared.contracts.outbound import (
    CUSTOMER_ERASED,
    OVERRIDE,
    PROFILE_CHANGED,
    REVIEW,
    TIER_CHANGED,
    ChangeDirection,
    CustomerErasedData,
    CustomerProfileChangedData,
    EventCause,
    ReasonCondition,
    TierChangedData,
)
from shared.contracts.outbound import Reason as ReasonData
from shared.contracts.types import CustomerId, LabelName, ShortText, Stage, Tier
from shared.publishing import OutboxMessage, customer_event

SOURCE = "tierflow/scoring"
PROFILE_FIELDS = ("branch_id", "rm_id", "segment", "region", "risk_profile", "consents", "timezone")


def tier_changed_event(change: TierChange) -> OutboxMessage:
    """The CloudEvent keyed by customer, with what subscribers need to act (profile, complaints).

    The payload is `TierChangedData` as its model would dump it, field for field and in its
    order, built without the model: a third of the events scoring applies change a tier or a
    label, and validating and dumping a model per change cost more than deciding it. What the
    model would check is checked still, once per distinct value (see `_valid_reason`).
    """
    if not _kinds_as_decided(change):
        _refused_by_the_model(change)
    cause = change.caused_by
    caused_by = {"source": cause.source, "id": cause.id} if isinstance(cause, EventCause) else cause
    data: dict[str, object] = {
        "customer_id": _CUSTOMER_ID.validate_python(change.customer_id),
        # Tiers, stages, directions and triggers are StrEnums: JSON writes each as its value.
        "previous_tier": change.previous_tier,
        "tier": change.tier,
        "previous_stage": change.previous_stage,
        "stage": change.stage,
        "direction": change.direction,
        "score": float(change.score),
        "policy_version": _valid_policy_version(change.policy_version),
        "reasons": _valid_reasons(change.reasons[:50]),
        "caused_by": caused_by,
        "labels": _valid_labels(change.labels),
        "labels_entered": _valid_labels(change.labels_entered),
        "labels_left": _valid_labels(change.labels_left),
        **_HOUSEHOLD_DEFAULTS,
        "trigger": change.trigger,
        **customer_context(change.features),
        **holdings(change.features, change.at),
    }
    return customer_event(
        event_id=change.id,
        source=SOURCE,
        event_type=TIER_CHANGED,
        time=change.at,
        customer_id=change.customer_id,
        data=data,
    )


def _kinds_as_decided(change: TierChange) -> bool:
    """Whether the change's tiers, stages, direction, trigger, score and cause are of the types the
    domain decides them as: then the payload writes them as the model would, unchecked."""
    cause = change.caused_by
    return (
        type(change.tier) is Tier
        and type(change.stage) is Stage
        and (change.previous_tier is None or type(change.previous_tier) is Tier)
        and (change.previous_stage is None or type(change.previous_stage) is Stage)
        and type(change.direction) is ChangeDirection
        and type(change.trigger) is Trigger
        and type(change.score) in (float, int)
        and (type(cause) is EventCause or cause in (REVIEW, OVERRIDE))
    )


def _refused_by_the_model(change: TierChange) -> None:
    """Anything else goes through the contract model, which names what is wrong (ValidationError);
    a value it accepts and coerces (a tier's value as text) is written as it would write it."""
    TierChangedData.model_validate(
        {
            "customer_id": change.customer_id,
            "previous_tier": change.previous_tier,
            "tier": change.tier,
            "previous_stage": change.previous_stage,
            "stage": change.stage,
            "direction": change.direction,
            "score": change.score,
            "policy_version": change.policy_version,
            "reasons": [],
            "caused_by": change.caused_by,
        }
    )
    if not isinstance(change.trigger, Trigger):
        raise TypeError(f"a tier change's trigger is a Trigger, not {type(change.trigger).__name__}")


_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(CustomerId)
_POLICY_VERSION: TypeAdapter[str] = TypeAdapter(ShortText)
_LABELS: TypeAdapter[list[str]] = TypeAdapter(Annotated[list[LabelName], Field(max_length=50)])
# The household fields keep the model's defaults (null): nothing on scoring's per-event path sets them.
_HOUSEHOLD_DEFAULTS = {
    name: field.default
    for name, field in TierChangedData.model_fields.items()
    if name.startswith("household_")
}
# Distinct reasons, label sets and policy versions are few (a policy's rules, a customer's
# values rounded as the detail shows them): each is validated and dumped once, not per change.
_DISTINCT_VALUES = 4096


def _valid_reasons(reasons: tuple[Reason, ...]) -> list[dict[str, object]]:
    return [_valid_reason(r) for r in reasons]


@lru_cache(maxsize=_DISTINCT_VALUES)
def _valid_reason(reason: Reason) -> dict[str, object]:
    """The reason as `TierChangedData.reasons` holds it (detail and conditions cut to their bounds).

    The dict is shared by every change with this reason: it is only ever serialised."""
    return ReasonData(
        rule=reason.rule,
        detail=reason.detail[:500],
        conditions=[ReasonCondition(**c._asdict()) for c in reason.conditions[:50]],
    ).model_dump(mode="json")


@lru_cache(maxsize=_DISTINCT_VALUES)
def _valid_labels(labels: tuple[str, ...]) -> list[str]:
    return _LABELS.validate_python(list(labels))


@lru_cache(maxsize=_DISTINCT_VALUES)
def _valid_policy_version(version: str) -> str:
    return _POLICY_VERSION.validate_python(version)


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
