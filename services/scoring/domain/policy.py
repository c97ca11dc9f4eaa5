"""A tiering policy is data: score weights, tier gates, stage rules, labels, hysteresis, review.

Policies are validated by this schema whether they come from YAML, JSON or the API.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.outbound import TIER_RANK
from shared.contracts.types import LabelName, Stage, Tier

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.yaml")

NUMERIC_FEATURES = frozenset(
    {
        "txn_count", "txn_amount", "txn_count_30d", "txn_count_90d", "txn_count_365d",
        "txn_amount_30d", "txn_amount_90d", "txn_amount_365d", "interaction_count",
        "interactions_30d", "interactions_90d", "activity_count", "days_since_last_txn",
        "days_since_last_interaction", "days_since_last_activity", "aum", "aum_avg_30d",
        "aum_avg_90d", "aum_trend_30_90", "products_held", "tenure_days", "nps_latest",
        "nps_age_days", "csat_avg", "complaints_open", "complaints_open_high", "score",
        "credits_30d", "credit_months_90d", "outflow_ratio_30d", "digital_share", "branch_share",
        "support_calls_30d", "login_failures_30d", "days_since_investment", "days_since_loan",
        "risk_level", "balance_known_days",
    }
)  # fmt: skip
TEXT_FEATURES = frozenset({"nps_category", "tier", "segment", "region", "risk_profile"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Op(StrEnum):
    GTE = "gte"
    GT = "gt"
    LTE = "lte"
    LT = "lt"
    EQ = "eq"
    NE = "ne"


class Condition(_Strict):
    feature: str
    op: Op
    value: Decimal | str

    @model_validator(mode="before")
    @classmethod
    def _typed_value(cls, raw: object) -> object:
        # Numeric features compare with exact decimals (also when stored as JSON strings).
        if (
            isinstance(raw, dict)
            and isinstance(raw.get("feature"), str)
            and raw["feature"] in NUMERIC_FEATURES
        ):
            value = raw.get("value")
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                try:
                    return {**raw, "value": Decimal(str(value))}
                except ArithmeticError:
                    return raw
        return raw

    @model_validator(mode="after")
    def _known_feature(self) -> Self:
        if self.feature in NUMERIC_FEATURES:
            if not isinstance(self.value, Decimal) or not self.value.is_finite():
                raise ValueError(f"{self.feature} is numeric: compare it with a number")
        elif self.feature in TEXT_FEATURES:
            if self.op not in (Op.EQ, Op.NE):
                raise ValueError(f"{self.feature} is text: use eq or ne")
            object.__setattr__(self, "value", str(self.value))
        else:
            raise ValueError(f"unknown feature {self.feature!r}")
        return self


# A rule holds when any of its groups holds; a group holds when all its conditions hold.
Groups = Annotated[list[Annotated[list[Condition], Field(min_length=1, max_length=10)]], Field(max_length=10)]


class ScoreTerm(_Strict):
    feature: str
    weight: Annotated[Decimal, Field(gt=0, le=1000)]
    transform: Literal["linear", "log"] = "linear"
    low: Decimal
    high: Decimal
    missing: Annotated[Decimal, Field(ge=0, le=1)] = Decimal(0)

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.feature not in NUMERIC_FEATURES - {"score"}:
            raise ValueError(f"score term on unknown or circular feature {self.feature!r}")
        if self.low == self.high:
            raise ValueError("low and high must differ (swap them to reward lower values)")
        if self.transform == "log" and min(self.low, self.high) <= 0:
            raise ValueError("a log transform needs positive low and high")
        return self


class TierGate(_Strict):
    tier: Tier
    any_of: Groups = Field(default_factory=list)


class StageRule(_Strict):
    stage: Stage
    any_of: Groups = Field(default_factory=list)


class LabelDimension(StrEnum):
    """The source articles' dimensions besides value (which the tiers cover)."""

    NEEDS = "needs"
    BEHAVIOUR = "behaviour"
    LOYALTY = "loyalty"


class LabelRule(_Strict):
    """A customer label (客户标签): held while any group of conditions holds; once held, it is
    kept for `leave_after_days` outside its conditions, so a label does not flicker."""

    name: LabelName
    dimension: LabelDimension
    description: Annotated[str, Field(max_length=500)] = ""
    any_of: Annotated[Groups, Field(min_length=1)]
    leave_after_days: Annotated[int, Field(ge=0, le=365)] = 0


class Hysteresis(_Strict):
    downgrade_grace_days: Annotated[int, Field(ge=0, le=365)] = 30
    downgrade_margin: Annotated[Decimal, Field(ge=0, lt=1)] = Decimal("0.2")


class Review(_Strict):
    """Decisions are re-checked exactly when a condition can flip with time alone (a recency,
    tenure or average-balance threshold, a grace period, an override expiry); besides, every
    decision is refreshed at least this often so the score follows slow drifts."""

    refresh_hours: Annotated[int, Field(ge=1, le=24 * 366)] = 168


class Clv(_Strict):
    annual_margin_on_aum: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.01")
    fee_rate_on_volume: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.001")
    discount_rate: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.08")
    retention_by_stage: dict[Stage, Annotated[Decimal, Field(ge=0, lt=1)]] = Field(default_factory=dict)


class Policy(_Strict):
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    description: Annotated[str, Field(max_length=2000)] = ""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"
    score: Annotated[list[ScoreTerm], Field(min_length=1, max_length=30)]
    tiers: Annotated[list[TierGate], Field(min_length=1, max_length=4)]
    stages: Annotated[list[StageRule], Field(min_length=1, max_length=20)]
    labels: Annotated[list[LabelRule], Field(max_length=50)] = Field(default_factory=list)
    hysteresis: Hysteresis = Hysteresis()
    review: Review = Review()
    clv: Clv = Clv()

    @model_validator(mode="after")
    def _gates_and_stages_are_complete(self) -> Self:
        tiers = [gate.tier for gate in self.tiers]
        if len(set(tiers)) != len(tiers):
            raise ValueError("each tier may have one gate")
        if sorted(tiers, key=TIER_RANK.__getitem__, reverse=True) != tiers:
            raise ValueError("tier gates must be listed from the highest tier down")
        if tiers[-1] is not Tier.MASS or self.tiers[-1].any_of:
            raise ValueError("the last gate must be mass, with no conditions (everyone else)")
        if self.stages[-1].any_of:
            raise ValueError("the last stage rule must have no conditions (everyone else)")
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError("each label may be declared once")
        return self

    def gate_of(self, tier: Tier) -> TierGate | None:
        return next((gate for gate in self.tiers if gate.tier is tier), None)


def load_policy(text: str) -> Policy:
    """Parse YAML (JSON is YAML too) and validate it as a policy."""
    return Policy.model_validate(yaml.safe_load(text))


def default_policy() -> Policy:
    return load_policy(DEFAULT_POLICY_FILE.read_text())
