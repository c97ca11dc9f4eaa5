"""Accepted feedback as `feedback.survey.v1` / `feedback.complaint.v1` CloudEvents, keyed by customer."""

from __future__ import annotations

import uuid

from services.feedback.domain.complaints import ComplaintChange
from services.feedback.domain.surveys import Answer
from shared.contracts.outbound import COMPLAINT, SURVEY, ComplaintData, SurveyData
from shared.publishing import EventSource, OutboxMessage

SOURCE = EventSource("tierflow/feedback", uuid.UUID("4d1b9d52-3f8e-4a5e-9a57-6a2c8e0b7c33"))


def survey_event(survey: SurveyData, answer: Answer) -> OutboxMessage:
    data = survey.model_dump(mode="json", exclude_none=True)
    data["answered_at"] = answer.answered_at.isoformat()
    if answer.outreach_id is not None:
        data["outreach_id"] = answer.outreach_id
    return SOURCE.event(f"survey|{survey.survey_id}", SURVEY, answer.answered_at, survey.customer_id, data)


def complaint_event(reported: ComplaintData, change: ComplaintChange) -> OutboxMessage:
    complaint = change.complaint
    data = reported.model_dump(mode="json", exclude_none=True)
    data["opened_at"] = complaint.opened_at.isoformat()
    if complaint.resolved_at is not None:
        data["resolved_at"] = complaint.resolved_at.isoformat()
    seed = f"complaint|{reported.complaint_id}|{reported.status.value}"
    return SOURCE.event(seed, COMPLAINT, change.happened_at, reported.customer_id, data)
