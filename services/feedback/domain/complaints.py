"""Complaint lifecycle: open -> in_progress -> resolved; resolution time is measured."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.contracts.outbound import ComplaintStatus

_ALLOWED = {
    ComplaintStatus.OPEN: {ComplaintStatus.IN_PROGRESS, ComplaintStatus.RESOLVED},
    ComplaintStatus.IN_PROGRESS: {ComplaintStatus.RESOLVED},
    ComplaintStatus.RESOLVED: set(),
}


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
        if self.resolved_at is None:
            return None
        return (self.resolved_at - self.opened_at).total_seconds() / 3600


def move(complaint: Complaint, to: ComplaintStatus, now: datetime) -> Complaint:
    if to not in _ALLOWED[complaint.status]:
        raise ComplaintRefused(
            f"complaint {complaint.complaint_id} cannot go from {complaint.status.value} to {to.value}"
        )
    resolved_at = now if to is ComplaintStatus.RESOLVED else None
    return replace(complaint, status=to, resolved_at=resolved_at)


def nps(scores: list[int]) -> float | None:
    """Net promoter score: % promoters (9-10) minus % detractors (0-6)."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)
