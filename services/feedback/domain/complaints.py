"""Complaint lifecycle: open -> in_progress -> resolved; resolution time is measured."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.contracts.outbound import ComplaintData, ComplaintStatus

_ALLOWED = {
    ComplaintStatus.OPEN: {ComplaintStatus.IN_PROGRESS, ComplaintStatus.RESOLVED},
    ComplaintStatus.IN_PROGRESS: {ComplaintStatus.RESOLVED},
    ComplaintStatus.RESOLVED: set(),
}
_HOUR = timedelta(hours=1)
_MICROSECOND = timedelta(microseconds=1)


class ComplaintRefused(ValueError):
    pass


@dataclass(frozen=True)
class Complaint:
    complaint_id: str
    status: ComplaintStatus
    opened_at: datetime
    resolved_at: datetime | None = None

    @property
    def resolution_hours(self) -> float | None:
        return None if self.resolved_at is None else in_hours(self.resolved_at - self.opened_at)


@dataclass(frozen=True)
class ComplaintChange:
    """A complaint as it now stands, what it was before, and when the change happened."""

    complaint: Complaint
    previous: ComplaintStatus | None
    happened_at: datetime


def in_hours(duration: timedelta) -> float:
    """Hours to the hundredth, halves rounded away from zero as PostgreSQL rounds numbers."""
    hours = Decimal(duration // _MICROSECOND) / Decimal(_HOUR // _MICROSECOND)
    return float(hours.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def move(complaint: Complaint, to: ComplaintStatus, now: datetime) -> Complaint:
    if to not in _ALLOWED[complaint.status]:
        raise ComplaintRefused(
            f"complaint {complaint.complaint_id} cannot go from {complaint.status.value} to {to.value}"
        )
    resolved_at = now if to is ComplaintStatus.RESOLVED else None
    return replace(complaint, status=to, resolved_at=resolved_at)


def receive(known: Complaint | None, reported: ComplaintData, now: datetime) -> ComplaintChange | None:
    """A complaint as a source system reports it; None when it repeats the known status (a resend).

    Times the report leaves out are those of its arrival. The change happened when the
    complaint was resolved, or opened if it is new: an event-time clock downstream is then
    not pulled forward by late reporting.
    """
    if known is not None and known.status is reported.status:
        return None
    opened = reported.opened_at or (known.opened_at if known else now)
    resolved = reported.resolved_at or (now if reported.status is ComplaintStatus.RESOLVED else None)
    happened = resolved if resolved is not None else (opened if known is None else now)
    complaint = Complaint(reported.complaint_id, reported.status, opened, resolved)
    return ComplaintChange(complaint, known.status if known else None, happened)
