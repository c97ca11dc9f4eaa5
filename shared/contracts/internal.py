"""Events TierFlow's services consume from each other, typed for the consumers that read them.

A consumer decodes every record through these models, so a well-formed CloudEvent with wrong
or missing data is refused with each field named (`InvalidEvent`) instead of failing deep in a
handler. The models ignore fields they do not know, as every outbound model does: a producer
may add fields before its consumers read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.contracts.envelope import (
    CloudEvent,
    FieldError,
    InvalidEvent,
    ValidEvent,
    decode_json,
    field_errors,
)
from shared.contracts.inbound import Consents
from shared.contracts.outbound import (
    CUSTOMER_ERASED,
    OUTREACH_TYPE_PREFIX,
    PROFILE_CHANGED,
    SURVEY_REQUESTED,
    TIER_CHANGED,
    CustomerErasedData,
    CustomerProfileChangedData,
    TierChangedData,
)
from shared.contracts.types import (
    CustomerId,
    Identifier,
    NonNegativeMoney,
    PayloadTime,
    RiskProfile,
    Segment,
    ShortText,
    Tier,
    TimeBounds,
    TimeZoneName,
)

M = TypeVar("M", bound=BaseModel)


class _Internal(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChangeTrigger(StrEnum):
    """What made scoring decide again: an event, a due review, a new policy, an override."""

    EVENT = "event"
    REVIEW = "review"
    POLICY_ACTIVATION = "policy_activation"
    OVERRIDE = "override"


class TierChangeProfile(_Internal):
    """The customer's profile as scoring knows it, for acting on a change without asking back."""

    branch_id: Identifier | None = None
    rm_id: Identifier | None = None
    segment: Segment | None = None
    region: ShortText | None = None
    risk_profile: RiskProfile | None = None
    consents: Consents | None = None
    timezone: TimeZoneName | None = None


NpsScore = Annotated[StrictInt, Field(ge=0, le=10)]


class TierChanged(TierChangedData):
    """`customer.tier_changed.v1` as engagement and feedback read it: the contract's fields plus
    the context scoring adds (absent context reads as an empty profile and no complaints)."""

    trigger: ChangeTrigger | None = None
    profile: TierChangeProfile = TierChangeProfile()
    complaints_open_high: Annotated[StrictInt, Field(ge=0)] = 0
    nps_latest: NpsScore | None = None
    # The customer's holdings when the change was decided (AUM in the base currency); absent
    # from events published before scoring added them.
    aum: NonNegativeMoney | None = None
    products_held: Annotated[StrictInt, Field(ge=0, le=100)] | None = None


class ProfileChanged(CustomerProfileChangedData):
    """`customer.profile_changed.v1` as engagement and feedback read it, with the new profile."""

    profile: TierChangeProfile = TierChangeProfile()


class SurveyRequested(_Internal):
    """`engagement.survey_requested.v1`: an outreach item was completed; feedback invites a survey."""

    outreach_id: Identifier
    customer_id: CustomerId
    action: ShortText | None = None
    outcome: ShortText | None = None
    tier: Tier | None = None
    channel: ShortText | None = None
    requested_at: PayloadTime | None = None


@dataclass(frozen=True)
class ErasureNotice:
    """A `customer.erased.v1` as read by a service that holds its own part of the customer."""

    source: str
    event_id: str
    customer_id: str
    erased_at: datetime


class OutreachPlanned(_Internal):
    """`engagement.outreach_<status>.v1` as feedback reads it: an item and, when a holdout draw
    decided it, its experiment (status `held_out`: the control group; otherwise treated)."""

    outreach_id: Identifier
    customer_id: CustomerId
    action: ShortText
    status: ShortText
    tier: Tier | None = None
    experiment: ShortText | None = None
    # When the item's first contact is due (its SLA): a held-out customer is invited to a
    # survey then, as a treated one would be after the contact. Planned ahead, so not bounded
    # by the clock like an event's own times.
    sla_due_at: AwareDatetime | None = None


# The outreach events an item can be born with (queued, assigned at once, or held out).
OUTREACH_PLANNED_TYPES = tuple(
    f"{OUTREACH_TYPE_PREFIX}{status}.v1" for status in ("queued", "assigned", "held_out")
)


INTERNAL_DATA_MODELS: dict[str, type[BaseModel]] = {
    TIER_CHANGED: TierChanged,
    CUSTOMER_ERASED: CustomerErasedData,
    PROFILE_CHANGED: ProfileChanged,
    SURVEY_REQUESTED: SurveyRequested,
}


def decode_data(model: type[M], data: object, bounds: TimeBounds | None = None) -> M:
    """`data` as `model`, or `InvalidEvent` naming every wrong or missing field. With `bounds`,
    its times obey the future-skew rule against that clock."""
    if not isinstance(data, dict):
        raise InvalidEvent([FieldError("data", "must be a JSON object")])
    try:
        return model.model_validate(data, context=None if bounds is None else bounds.context())
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc, prefix="data")) from None


def decode_tier_changed(data: object) -> TierChanged:
    return decode_data(TierChanged, data)


def decode_survey_requested(data: object) -> SurveyRequested:
    return decode_data(SurveyRequested, data)


def decode_internal_event(
    value: bytes, models: Mapping[str, type[BaseModel]], bounds: TimeBounds | None = None
) -> ValidEvent | None:
    """One record's envelope and typed data; None for a valid CloudEvent whose type is not among
    `models` (the consumer does not read it); `InvalidEvent` when it is not a CloudEvent, of
    whatever type, or its data is wrong. With `bounds`, the envelope's time and the payload's
    obey the future-skew rule."""
    try:
        raw = decode_json(value)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent([FieldError("(event)", f"not JSON: {exc}")]) from None
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("(event)", "an event must be a JSON object")])
    errors: list[FieldError] = []
    envelope: CloudEvent | None = None
    data: BaseModel | None = None
    try:
        envelope = CloudEvent.model_validate(raw, context=None if bounds is None else bounds.context())
    except ValidationError as exc:
        errors.extend(field_errors(exc))
    event_type = raw.get("type")
    if isinstance(event_type, str) and event_type not in models:
        if errors:
            raise InvalidEvent(errors)
        return None
    if isinstance(event_type, str):
        try:
            data = decode_data(models[event_type], raw.get("data"), bounds)
        except InvalidEvent as invalid:
            named = {error.field for error in errors}
            errors.extend(error for error in invalid.errors if error.field not in named)
    if errors or envelope is None or data is None:
        raise InvalidEvent(errors)
    return ValidEvent(envelope=envelope, data=data)


__all__ = [
    "INTERNAL_DATA_MODELS",
    "OUTREACH_PLANNED_TYPES",
    "SURVEY_REQUESTED",
    "ChangeTrigger",
    "ErasureNotice",
    "OutreachPlanned",
    "ProfileChanged",
    "SurveyRequested",
    "TierChangeProfile",
    "TierChanged",
    "decode_data",
    "decode_internal_event",
    "decode_survey_requested",
    "decode_tier_changed",
]
