"""Typed request and response bodies of the scoring API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from services.scoring.household_schemas import CustomerHousehold
from shared.contracts.types import ReasonText, Stage, Tier


class ReasonConditionPublic(BaseModel):
    feature: str
    operator: Literal["gte", "gt", "lte", "lt", "eq", "ne"]
    value: str = Field(description="The customer's value, numbers as decimal strings")
    threshold: str = Field(description="The policy's value the customer's was compared with")


class ReasonPublic(BaseModel):
    rule: str
    detail: str = Field(description="The reason in English words")
    conditions: list[ReasonConditionPublic] = Field(
        default_factory=list,
        description="The matched rule's conditions; empty for hysteresis, override and labels left",
    )


class OverridePublic(BaseModel):
    tier: Tier
    reason: str
    expires_at: datetime
    set_by: str
    set_at: datetime
    active: bool


class CustomerFeatures(BaseModel):
    txn_count: int
    txn_amount: str
    last_txn_at: datetime | None
    aum: str
    aum_avg_30d: str
    aum_avg_90d: str
    txn_count_30d: int
    txn_count_90d: int
    txn_count_365d: int
    txn_amount_30d: str
    txn_amount_90d: str
    txn_amount_365d: str
    interaction_count: int
    last_interaction_at: datetime | None
    days_since_last_activity: int | None
    products_held: int
    channel_mix: dict[str, int]
    nps_latest: int | None
    nps_category: str | None
    csat_avg: float | None
    complaints_open: dict[str, int]
    tenure_days: int | None
    clv: str


class LabelPublic(BaseModel):
    name: str
    dimension: str
    since: datetime
    reason: ReasonPublic
    outside_since: datetime | None = Field(
        description="Set while the conditions no longer hold but the label's leave-after period keeps it"
    )


class CustomerPublic(BaseModel):
    customer_id: str
    tier: Tier
    stage: Stage
    score: float
    policy_version: str
    tier_since: datetime
    features: CustomerFeatures
    reasons: list[ReasonPublic]
    labels: list[LabelPublic]
    override: OverridePublic | None
    profile: dict[str, Any]
    household: CustomerHousehold | None = None
    next_review_at: datetime
    updated_at: datetime


class EventCausePublic(BaseModel):
    source: str = Field(description="CloudEvents source; empty for changes recorded before sources were kept")
    id: str


class TierChangePublic(BaseModel):
    change_id: str
    at: datetime
    previous_tier: Tier | None
    tier: Tier
    previous_stage: Stage | None
    stage: Stage
    direction: str
    score: float
    policy_version: str
    reasons: list[ReasonPublic]
    caused_by: EventCausePublic | Literal["review", "override"] = Field(
        description="The causing event's source and id; `review` when time or a new policy changed the "
        "decision; `override` when an operator set or cleared an override"
    )
    trigger: str
    labels: list[str] = Field(description="The customer's labels after the change")
    labels_entered: list[str]
    labels_left: list[str]


class CustomerSummary(BaseModel):
    customer_id: str
    tier: Tier
    stage: Stage
    score: float
    policy_version: str
    tier_since: datetime
    branch_id: str | None
    segment: str | None
    region: str | None
    labels: list[str]
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class Distribution(BaseModel):
    total: int
    by_tier: dict[str, int]
    by_stage: dict[str, int]
    by_tier_and_stage: dict[str, dict[str, int]]
    by_label: dict[str, int] = Field(description="Customers holding each label (a customer may hold several)")


class MigrationCell(BaseModel):
    from_tier: str
    to_tier: str
    count: int
    sample: list[str] = Field(default_factory=list)


class LabelMigration(BaseModel):
    label: str
    entered: int
    left: int
    held: int


class MigrationMatrix(BaseModel):
    start: datetime
    end: datetime
    moves: list[MigrationCell]
    label_flows: list[LabelMigration] = Field(
        description="Per label, customers who entered, left or kept it between `from` and `to`"
    )


class OverrideCreate(BaseModel):
    tier: Tier
    reason: ReasonText
    expires_at: AwareDatetime


class ErasureCreate(BaseModel):
    """Why the customer is erased (their request, a court order); kept in the erasure record, so
    it must name no one."""

    reason: ReasonText


class ErasurePublic(BaseModel):
    customer_id: str
    erased_at: datetime
    scoring_held_data: bool = Field(description="false: scoring had decided no tier for the customer")
    note: str


class PolicySummary(BaseModel):
    version: str
    created_at: datetime
    created_by: str
    activated_at: datetime | None
    active: bool


class StageCell(BaseModel):
    from_stage: str
    to_stage: str
    count: int
    sample: list[str]


class LabelFlow(BaseModel):
    label: str
    entered: int
    left: int
    sample_entered: list[str] = Field(default_factory=list)
    sample_left: list[str] = Field(default_factory=list)


class SimulationPublic(BaseModel):
    candidate_version: str
    active_version: str
    evaluated_at: datetime
    customers: int
    tiers: dict[str, int]
    stages: dict[str, int]
    tier_migration: list[MigrationCell]
    stage_migration: list[StageCell]
    labels: dict[str, int] = Field(description="Customers who would hold each label")
    label_changes: list[LabelFlow] = Field(description="Per label, how many would enter or leave it")


class Activation(BaseModel):
    version: str
    active: bool
    note: str


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


class TierChangesOnDay(BaseModel):
    day: date = Field(description="The UTC calendar day")
    changes: dict[str, int] = Field(description="Tier and stage changes that day by direction")
