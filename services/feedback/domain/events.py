"""What feedback reads from the streams: tier changes, requests for a follow-up survey and the
outreach items a holdout draw decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class TierObserved:
    """A customer's tier and stage from `customer.tier_changed.v1`, kept for the reports."""

    source: str
    event_id: str
    customer_id: str
    at: datetime
    tier: str
    stage: str
    branch_id: str | None


@dataclass(frozen=True)
class SurveyRequested:
    """An RM completed a contact and asked for the customer's feedback on it."""

    source: str
    event_id: str
    outreach_id: str
    customer_id: str
    action: str
    tier: str | None
    channel: str | None
    outcome: str | None
    requested_at: datetime


class Arm(StrEnum):
    TREATED = "treated"
    HELD_OUT = "held_out"


@dataclass(frozen=True)
class ExperimentEnrolled:
    """A holdout draw put a customer in an experiment's treated or held-out group."""

    source: str
    event_id: str
    outreach_id: str
    customer_id: str
    experiment: str
    arm: Arm
    action: str
    tier: str | None
    at: datetime


FeedbackEvent = TierObserved | SurveyRequested | ExperimentEnrolled
