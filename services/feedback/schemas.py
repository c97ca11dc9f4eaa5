"""Typed request and response bodies of the feedback API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from services.feedback.store import complaint_of
from shared.contracts.outbound import ComplaintStatus


class Accepted(BaseModel):
    accepted: int
    new: int


class ComplaintUpdate(BaseModel):
    status: ComplaintStatus


class ComplaintPublic(BaseModel):
    complaint_id: str
    customer_id: str
    severity: str
    category: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    resolution_hours: float | None
    tier: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ComplaintPublic:
        shown = {name: row[name] for name in cls.model_fields if name in row}
        return cls(**shown, resolution_hours=complaint_of(row).resolution_hours)


class SurveyPublic(BaseModel):
    survey_id: str
    kind: str
    score: int
    comment: str | None
    outreach_id: str | None
    answered_at: datetime
    tier: str | None
    stage: str | None
    channel: str | None


class CustomerFeedback(BaseModel):
    customer_id: str
    surveys: list[SurveyPublic]
    complaints: list[ComplaintPublic]
