"""Feedback's service layer: intake, complaint lifecycle, invitations and tier tracking."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.feedback.domain.complaints import Complaint, move
from services.feedback.store import FeedbackStore
from shared.consumer import Delivered, PoisonMessage
from shared.contracts.outbound import TIER_CHANGED, ComplaintData, ComplaintStatus, SurveyData
from shared.db import consumer_transaction
from shared.errors import TierFlowError

SURVEY_REQUESTED = "engagement.survey_requested.v1"


class UnknownComplaint(TierFlowError):
    pass


def decode_event(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    try:
        event: dict[str, Any] = json.loads(record.value or b"")
        if not isinstance(event.get("data"), dict) or not isinstance(event.get("id"), str):
            raise ValueError("no id or data")
        datetime.fromisoformat(event["time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"not a CloudEvent: {exc}") from None
    return event


@dataclass
class Feedback:
    engine: AsyncEngine
    topic: str

    def store(self, connection: AsyncConnection) -> FeedbackStore:
        return FeedbackStore(connection, self.topic)

    async def apply_batch(self, batch: Sequence[Delivered[dict[str, Any]]]) -> None:
        async with consumer_transaction(self.engine) as db:
            store = self.store(db)
            for delivered in batch:
                event = delivered.value
                if event.get("type") not in (TIER_CHANGED, SURVEY_REQUESTED):
                    continue
                if not await store.claim_event(event["id"]):
                    continue
                data, at = event["data"], datetime.fromisoformat(event["time"])
                if event["type"] == TIER_CHANGED:
                    branch = (data.get("profile") or {}).get("branch_id")
                    await store.remember_tier(
                        event["id"], data["customer_id"], at, data["tier"], data["stage"], branch
                    )
                else:
                    await store.invite(data, at)

    async def record_surveys(self, surveys: Sequence[SurveyData]) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            now = datetime.now(UTC)
            return sum([await store.add_survey(survey, now) for survey in surveys])

    async def record_complaints(self, complaints: Sequence[ComplaintData], actor: str) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            now = datetime.now(UTC)
            return sum([await store.put_complaint(complaint, actor, now) for complaint in complaints])

    async def update_complaint(self, complaint_id: str, to: ComplaintStatus, actor: str) -> dict[str, Any]:
        async with self.engine.begin() as db:
            store = self.store(db)
            known = await store.complaint(complaint_id)
            if known is None:
                raise UnknownComplaint(complaint_id)
            now = datetime.now(UTC)
            current = Complaint(complaint_id, ComplaintStatus(known["status"]), known["opened_at"])
            moved = move(current, to, now)
            data = ComplaintData(
                customer_id=known["customer_id"],
                complaint_id=complaint_id,
                severity=known["severity"],
                category=known["category"],
                status=moved.status,
                opened_at=known["opened_at"],
                resolved_at=moved.resolved_at,
            )
            await store.put_complaint(data, actor, now)
            updated = await store.complaint(complaint_id)
            assert updated is not None
            return updated
