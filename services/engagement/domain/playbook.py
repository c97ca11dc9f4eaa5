"""A playbook is data: which tier or stage changes call for which outreach, and the limits."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.outbound import ChangeDirection
from shared.contracts.types import LabelName, RiskProfile, Stage, Tier

DEFAULT_PLAYBOOK_FILE = Path(__file__).with_name("default_playbook.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionKind(StrEnum):
    ASSIGN_RM = "assign_rm"
    RM_CALL = "rm_call"
    SMS = "sms"
    EMAIL = "email"
    APP_PUSH = "app_push"
    BRANCH_INVITATION = "branch_invitation"
    OFFER = "offer"
    RETURN_VISIT_CALL = "return_visit_call"
    SURVEY = "survey"
    # Helping a customer who struggles with digital banking: in the app or at a branch.
    DIGITAL_COACHING = "digital_coaching"


class Category(StrEnum):
    SERVICE = "service"
    RETENTION = "retention"
    MARKETING = "marketing"


class ContactChannel(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    APP = "app"
    BRANCH = "branch"
    INTERNAL = "internal"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Match(_Strict):
    """Every listed criterion must hold; an empty list matches anything."""

    directions: list[ChangeDirection] = Field(default_factory=list)
    from_tiers: list[Tier] = Field(default_factory=list)
    to_tiers: list[Tier] = Field(default_factory=list)
    from_stages: list[Stage] = Field(default_factory=list)
    to_stages: list[Stage] = Field(default_factory=list)
    first_seen: bool | None = None
    stage_changed: bool | None = None
    tier_changed: bool | None = None
    # Customer labels: the change entered (or left) any of these; the customer holds all of
    # `labels_held` and none of `labels_not_held` after it.
    labels_entered: list[LabelName] = Field(default_factory=list)
    labels_left: list[LabelName] = Field(default_factory=list)
    labels_held: list[LabelName] = Field(default_factory=list)
    labels_not_held: list[LabelName] = Field(default_factory=list)


class Action(_Strict):
    kind: ActionKind
    category: Category
    channels: Annotated[list[ContactChannel], Field(min_length=1, max_length=6)]
    priority: Priority = Priority.NORMAL
    sla_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 72
    expires_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 24 * 14
    template: Annotated[str, Field(min_length=1, max_length=64)]
    product: Annotated[str, Field(max_length=64)] | None = None
    min_risk: RiskProfile | None = None
    max_risk: RiskProfile | None = None
    needs_rm: bool = False

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.expires_hours < self.sla_hours:
            raise ValueError("expires_hours must not be shorter than sla_hours")
        if (self.min_risk or self.max_risk) and not self.product:
            raise ValueError("a risk range needs the product it protects")
        return self


# Categories whose effect a holdout may measure; service (recovery, a named RM) is always given.
HOLDOUT_CATEGORIES = frozenset({Category.MARKETING, Category.RETENTION})


class Holdout(_Strict):
    """A randomised control group: this share of the customers a rule's marketing or retention
    actions would reach gets none, so the experiment measures what the actions cause."""

    experiment: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    share: Annotated[Decimal, Field(gt=0, le=Decimal("0.5"), decimal_places=3)]
    # How long a held-out customer gets none of the held-out actions, whatever rule would
    # trigger them: the experiment's window, which its report's `days` should match.
    days: Annotated[int, Field(ge=1, le=365)] = 30


class Rule(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    when: Match
    actions: Annotated[list[Action], Field(min_length=1, max_length=10)]
    holdout: Holdout | None = None

    @model_validator(mode="after")
    def _holdout_measures_something(self) -> Self:
        if self.holdout is None:
            return self
        if not any(action.category in HOLDOUT_CATEGORIES for action in self.actions):
            raise ValueError("a holdout needs a marketing or retention action to hold out")
        if Stage.AT_RISK in self.when.to_stages:
            raise ValueError("service recovery for at-risk customers is never held out")
        return self


class Cap(_Strict):
    max_contacts: Annotated[int, Field(ge=0, le=100)]
    days: Annotated[int, Field(ge=1, le=365)]


class QuietHours(_Strict):
    start: time = time(21, 0)
    end: time = time(8, 0)
    channels: list[ContactChannel] = Field(
        default_factory=lambda: [ContactChannel.PHONE, ContactChannel.SMS, ContactChannel.APP]
    )


class LabelSuppression(_Strict):
    """Customers holding `label` are not contacted through `channels` for this category."""

    label: LabelName
    category: Category
    channels: Annotated[list[ContactChannel], Field(min_length=1, max_length=6)]


class Playbook(_Strict):
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    description: Annotated[str, Field(max_length=2000)] = ""
    default_timezone: str = "Asia/Shanghai"
    caps: dict[Category, Cap] = Field(default_factory=dict)
    quiet_hours: QuietHours = QuietHours()
    label_suppressions: Annotated[list[LabelSuppression], Field(max_length=50)] = Field(default_factory=list)
    rules: Annotated[list[Rule], Field(min_length=1, max_length=100)]


def load_playbook(text: str) -> Playbook:
    return Playbook.model_validate(yaml.safe_load(text))


def default_playbook() -> Playbook:
    return load_playbook(DEFAULT_PLAYBOOK_FILE.read_text())
