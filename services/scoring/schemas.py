"""Typed request and response bodies of the scoring API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from shared.contracts.types import ReasonText, Stage, Tier


class ReasonPublic(BaseModel):
    rule: str
    detail: str


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


class CustomerPublic(BaseModel):
    customer_id: str
    tier: Tier
    stage: Stage
    score: float
    policy_version: str
    tier_since: datetime
    features: CustomerFeatures
    reasons: list[ReasonPublic]
    override: OverridePublic | None
    profile: dict[str, Any]
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
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class Distribution(BaseModel):
    total: int
    by_tier: dict[str, int]
    by_stage: dict[str, int]
    by_tier_and_stage: dict[str, dict[str, int]]


class MigrationCell(BaseModel):
    from_tier: str
    to_tier: str
    count: int
    sample: list[str] = Field(default_factory=list)


class MigrationMatrix(BaseModel):
    start: datetime
    end: datetime
    moves: list[MigrationCell]


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


class SimulationPublic(BaseModel):
    candidate_version: str
    active_version: str
    evaluated_at: datetime
    customers: int
    tiers: dict[str, int]
    stages: dict[str, int]
    tier_migration: list[MigrationCell]
    stage_migration: list[StageCell]


class Activation(BaseModel):
    version: str
    active: bool
    note: str


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


class TierChangesOnDay(BaseModel):
    day: date = Field(description="The UTC calendar day")
    changes: dict[str, int] = Field(description="Tier and stage changes that day by direction")
