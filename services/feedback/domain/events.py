"""What feedback reads from the streams: tier changes, requests for a follow-up survey, the
outreach items a holdout draw decided, and erasures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.contracts.internal import ErasureNotice


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
    # The customer's holdings at the change (AUM in the base currency), when scoring sent them.
    aum: Decimal | None = None
    products_held: int | None = None


@dataclass(frozen=True)
class BranchObserved:
    """A customer's branch from `customer.profile_changed.v1`: a transfer without a tier change."""

    source: str
    event_id: str
    customer_id: str
    at: datetime
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
    # When the item's contact was due: when a held-out customer is invited to a survey.
    contact_due_at: datetime | None = None


FeedbackEvent = TierObserved | BranchObserved | SurveyRequested | ExperimentEnrolled | ErasureNotice


def event_time(event: FeedbackEvent) -> datetime:
    """The `time` of the event this was read from, which a resend keeps."""
    if isinstance(event, TierObserved | BranchObserved | ExperimentEnrolled):
        return event.at
    if isinstance(event, ErasureNotice):
        return event.erased_at
    return event.requested_at
