"""Payloads TierFlow publishes: tier changes, outreach lifecycle and feedback (contract v1).

Outbound models ignore unknown fields so that subscribers built on v1 keep working as
fields are added.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from shared.contracts.types import (
    CustomerId,
    DetailText,
    EventId,
    EventSource,
    HouseholdRole,
    Identifier,
    LabelName,
    LongText,
    PayloadTime,
    ShortText,
    Stage,
    Tier,
)

TIER_CHANGED = "customer.tier_changed.v1"
CUSTOMER_ERASED = "customer.erased.v1"
PROFILE_CHANGED = "customer.profile_changed.v1"
SURVEY = "feedback.survey.v1"
COMPLAINT = "feedback.complaint.v1"
OUTREACH_TYPE_PREFIX = "engagement.outreach_"
SURVEY_REQUESTED = "engagement.survey_requested.v1"


class _Outbound(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReasonCondition(_Outbound):
    """One condition of the rule behind a reason: `value` is the customer's, `threshold` the policy's
    (numbers as decimal strings, as in `detail`), so each language can word the reason itself."""

    feature: ShortText
    operator: Literal["gte", "gt", "lte", "lt", "eq", "ne"]
    value: ShortText
    threshold: ShortText


class Reason(_Outbound):
    rule: ShortText
    detail: DetailText
    # Empty when the reason is not a rule's conditions (hysteresis, an override, a label left).
    conditions: Annotated[list[ReasonCondition], Field(max_length=50)] = []


class ChangeDirection(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    STAGE = "stage"
    # Neither tier nor stage changed, only the customer's labels (see `labels_entered`/`labels_left`).
    LABELS = "labels"


# Tiers from the lowest up: a change to a higher rank is an upgrade.
TIER_RANK: dict[Tier, int] = {Tier.MASS: 0, Tier.VIP: 1, Tier.WEALTH: 2, Tier.PRIVATE: 3}
TIERS_LOW_TO_HIGH = sorted(TIER_RANK, key=TIER_RANK.__getitem__)


class EventCause(_Outbound):
    """The event that caused a tier change, by its CloudEvents identity: source and id."""

    source: EventSource
    id: EventId


# What `caused_by` names when no event caused a change: the passing of time (or a new
# policy) re-evaluating the customer, or an operator setting or clearing an override.
REVIEW: Final = "review"
OVERRIDE: Final = "override"
CausedBy = EventCause | Literal["review", "override"]


class TierChangedData(_Outbound):
    customer_id: CustomerId
    previous_tier: Tier | None
    tier: Tier
    previous_stage: Stage | None
    stage: Stage
    direction: ChangeDirection
    score: float
    policy_version: ShortText
    reasons: Annotated[list[Reason], Field(max_length=50)]
    caused_by: CausedBy
    # The customer's labels (客户标签) after the change, and which of them this change added
    # or removed; absent from events published before labels existed.
    labels: Annotated[list[LabelName], Field(max_length=50)] = Field(default_factory=list)
    labels_entered: Annotated[list[LabelName], Field(max_length=50)] = Field(default_factory=list)
    labels_left: Annotated[list[LabelName], Field(max_length=50)] = Field(default_factory=list)
    # The member's household when the decision was made (null outside any household), the
    # household's tier as scoring knew it (its highest member tier), the household primary's RM
    # (engagement assigns RM work for every member to them) and the household change that caused
    # the decision (null when the member's own event, a review or an override caused it).
    household_id: Identifier | None = None
    household_role: HouseholdRole | None = None
    household_tier: Tier | None = None
    household_rm_id: Identifier | None = None
    household_change: Identifier | None = None


class CustomerErasedData(_Outbound):
    """`customer.erased.v1`: the customer's personal data was erased (PIPL Art. 47, GDPR Art. 17).

    Every subscriber erases what it holds about `customer_id` and refuses what arrives for them
    later. It carries nothing else about the customer, and not the request's reason."""

    customer_id: CustomerId
    erased_at: PayloadTime


class CustomerProfileChangedData(_Outbound):
    """`customer.profile_changed.v1`: the customer's branch, RM or segment changed while the tier and
    stage did not (a tier change carries the new profile itself). Keyed by the customer on
    `customer.tier-changes.v1`, so subscribers read it in order with the customer's tier changes;
    scoring adds the new `profile` as on a tier change."""

    customer_id: CustomerId
    changed: list[Literal["branch_id", "rm_id", "segment"]] = Field(min_length=1, max_length=3)
    previous_branch_id: Identifier | None = None
    previous_rm_id: Identifier | None = None


class OutreachOutcome(StrEnum):
    REACHED = "reached"
    NOT_REACHED = "not_reached"
    CONVERTED = "converted"
    DECLINED = "declined"


# The customer was spoken to, whatever they decided.
REACHED_OUTCOMES = frozenset({OutreachOutcome.REACHED, OutreachOutcome.CONVERTED, OutreachOutcome.DECLINED})


class OutreachData(_Outbound):
    outreach_id: Identifier
    customer_id: CustomerId
    action: ShortText
    channel: ShortText | None = None
    priority: ShortText
    status: ShortText
    due_at: PayloadTime | None = None
    trigger_event_id: Identifier | None = None
    assigned_to: Identifier | None = None
    reason: DetailText | None = None


class SurveyKind(StrEnum):
    NPS = "nps"
    CSAT = "csat"


SCORE_RANGES: dict[SurveyKind, tuple[int, int]] = {
    SurveyKind.NPS: (0, 10),
    SurveyKind.CSAT: (1, 5),
}


class NpsCategory(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


# An NPS answer of 9 or 10 is a promoter's, 7 or 8 a passive's, 0 to 6 a detractor's.
PROMOTER_MIN = 9
PASSIVE_MIN = 7


def nps_category(score: int) -> NpsCategory:
    if score >= PROMOTER_MIN:
        return NpsCategory.PROMOTER
    return NpsCategory.PASSIVE if score >= PASSIVE_MIN else NpsCategory.DETRACTOR


class SurveyData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: CustomerId
    survey_id: Identifier
    kind: SurveyKind
    score: StrictInt
    comment: LongText | None = None
    outreach_id: Identifier | None = None
    answered_at: PayloadTime | None = None

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, score: int, info: ValidationInfo) -> int:
        kind = info.data.get("kind")
        if isinstance(kind, SurveyKind):
            low, high = SCORE_RANGES[kind]
            if not low <= score <= high:
                raise ValueError(f"score for {kind.value} must be between {low} and {high}")
        return score


class ComplaintSeverity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ComplaintStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


class ComplaintData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: CustomerId
    complaint_id: Identifier
    severity: ComplaintSeverity
    category: ShortText
    status: ComplaintStatus
    opened_at: PayloadTime | None = None
    resolved_at: PayloadTime | None = None
