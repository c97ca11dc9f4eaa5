"""Survey answers: which follow-up invitation an answer closes, and the net promoter score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.contracts.outbound import SurveyData

# A completed contact invites the customer to answer a survey for this long.
INVITATION_LIFETIME = timedelta(days=14)


@dataclass(frozen=True)
class Invitation:
    outreach_id: str
    requested_at: datetime
    expires_at: datetime


def invitation_expires(requested_at: datetime) -> datetime:
    return requested_at + INVITATION_LIFETIME


# Survey fatigue: a customer is invited on the experiment's schedule at most once in this long,
# counting every invitation they have, however made.
FATIGUE_GAP = timedelta(days=30)


def held_out_invitation(contact_due_at: datetime | None, invited_at: Sequence[datetime]) -> datetime | None:
    """When to invite a held-out customer: when the contact they were held out of was due, so
    both groups are asked on the same schedule; None when they were invited within the fatigue
    gap of that moment (before or after it), or the item stated no due time."""
    if contact_due_at is None:
        return None
    if any(abs(contact_due_at - earlier) < FATIGUE_GAP for earlier in invited_at):
        return None
    return contact_due_at


@dataclass(frozen=True)
class Answer:
    """When a survey was answered and the outreach it follows, if any."""

    answered_at: datetime
    outreach_id: str | None


def answer(survey: SurveyData, received_at: datetime, unanswered: Sequence[Invitation]) -> Answer:
    """An answer without a time was given when it arrived. One that names no outreach closes
    the customer's latest invitation that was open when it was given."""
    answered_at = survey.answered_at or received_at
    if survey.outreach_id is not None:
        return Answer(answered_at, survey.outreach_id)
    open_then = [i for i in unanswered if i.requested_at <= answered_at < i.expires_at]
    latest = max(open_then, key=lambda i: i.requested_at) if open_then else None
    return Answer(answered_at, latest.outreach_id if latest else None)


def nps(promoters: int, detractors: int, responses: int) -> float | None:
    """Net promoter score: % promoters minus % detractors, to a tenth (halves away from zero)."""
    if not responses:
        return None
    score = Decimal(100 * (promoters - detractors)) / Decimal(responses)
    return float(score.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
