"""Household contributions on `household.contributions.v1`: scoring's own messages, keyed by
household so that one household stage instance folds all of a household's members in order.

A message carries the member's sequence; its id is derived from member and sequence, so a
contribution built again (a retried transaction) is the same message, and the fold recognises a
repeat by the sequence alone.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from services.scoring.domain.household import Contribution, Published
from shared.contracts.envelope import FieldError, InvalidEvent, decode_json, field_errors
from shared.contracts.types import (
    MONEY_SUM_PRECISION,
    CustomerId,
    HouseholdRole,
    Identifier,
    LabelName,
    NonNegativeMoney,
    PayloadTime,
    Tier,
)
from shared.publishing import EventSource, OutboxMessage

CONTRIBUTION = "tierflow.household.contribution.v1"

_SOURCE = EventSource("tierflow/scoring/households", uuid.UUID("0f6a3c52-4d1e-4b8e-9f57-3f0c8d2b6a11"))
MAX_PRODUCTS = 64
# The place furthest behind the point an average may reach: sixty significant digits behind
# the zeros of the smallest average a cent held for a second over 90 days gives (about 1E-9).
_SMALLEST_PLACE = -2 * MONEY_SUM_PRECISION


def _exact_average(value: Decimal) -> Decimal:
    # Bounded by its significant digits, not by `max_digits`, which also counts the zeros
    # between the point and them: an average below 0.1 would not pass it.
    _, digits, exponent = value.as_tuple()
    if len(digits) > MONEY_SUM_PRECISION or not isinstance(exponent, int) or exponent < _SMALLEST_PLACE:
        raise ValueError(
            f"an average of at most {MONEY_SUM_PRECISION} significant digits,"
            f" none past decimal place {-_SMALLEST_PLACE}"
        )
    return value


# A member's time-weighted average AUM, exact to the digits money sums are taken to: an
# average rounded to cents would make the household's sum drift from its members' figures.
ExactAverage = Annotated[
    Decimal,
    Field(ge=0, lt=Decimal(10) ** MONEY_SUM_PRECISION, allow_inf_nan=False),
    AfterValidator(_exact_average),
]


class ContributionData(BaseModel):
    """A member's figures for their household; absent on a removal."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: HouseholdRole
    role_since: PayloadTime
    aum: NonNegativeMoney
    aum_avg_30d: ExactAverage
    aum_avg_90d: ExactAverage
    products: Annotated[list[LabelName], Field(max_length=MAX_PRODUCTS)]
    tier: Tier | None
    rm_id: Identifier | None
    branch_id: Identifier | None


class ContributionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    household_id: Identifier
    member_id: CustomerId
    sequence: Annotated[StrictInt, Field(ge=1)]
    as_of: PayloadTime
    contribution: ContributionData | None


def contribution_event(published: Published) -> OutboxMessage:
    body = published.contribution
    data: dict[str, Any] = {
        "household_id": published.household_id,
        "member_id": published.member_id,
        "sequence": published.sequence,
        "as_of": published.as_of.isoformat(),
        "contribution": None if body is None else contribution_json(body),
    }
    seed = f"household-contribution|{published.member_id}|{published.sequence}"
    return _SOURCE.event(seed, CONTRIBUTION, published.as_of, published.household_id, data)


def contribution_json(body: Contribution) -> dict[str, Any]:
    return {
        "role": body.role.value,
        "role_since": body.role_since.isoformat(),
        "aum": str(body.aum),
        "aum_avg_30d": str(body.aum_avg_30d),
        "aum_avg_90d": str(body.aum_avg_90d),
        "products": list(body.products),
        "tier": None if body.tier is None else body.tier.value,
        "rm_id": body.rm_id,
        "branch_id": body.branch_id,
    }


def contribution_from(household_id: str, member_id: str, data: ContributionData) -> Contribution:
    return Contribution(
        household_id=household_id,
        member_id=member_id,
        role=data.role,
        role_since=data.role_since,
        aum=data.aum,
        aum_avg_30d=data.aum_avg_30d,
        aum_avg_90d=data.aum_avg_90d,
        products=tuple(sorted(data.products)),
        tier=data.tier,
        rm_id=data.rm_id,
        branch_id=data.branch_id,
    )


def stored_contribution(household_id: str, member_id: str, stored: Any) -> Contribution | None:
    """A contribution kept as JSON in a table (written by `contribution_json`)."""
    if stored is None:
        return None
    return contribution_from(household_id, member_id, ContributionData.model_validate(stored))


def decode_contribution(value: bytes, key: bytes | None) -> Published:
    """A consumed contribution, checked field by field; `InvalidEvent` names what is wrong."""
    event = decode_json(value)
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(event, dict) or event.get("type") != CONTRIBUTION or not isinstance(data, dict):
        raise InvalidEvent([FieldError(field="type", message=f"not a {CONTRIBUTION} event")])
    try:
        message = ContributionMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc, "data")) from None
    if key is not None and key != message.household_id.encode():
        raise InvalidEvent([FieldError(field="key", message="the record key is not the household_id")])
    body = message.contribution
    contribution = None if body is None else contribution_from(message.household_id, message.member_id, body)
    return Published(message.household_id, message.member_id, message.sequence, message.as_of, contribution)
