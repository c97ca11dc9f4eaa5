"""Feedback's service layer: intake, complaint lifecycle, invitations and tier tracking."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.feedback.domain.complaints import move, receive
from services.feedback.domain.events import FeedbackEvent, SurveyRequested, TierObserved
from services.feedback.domain.surveys import answer, invitation_expires
from services.feedback.store import FeedbackStore, complaint_of
from shared.consumer import Delivered, PoisonMessage
from shared.contracts.outbound import (
    SURVEY_REQUESTED,
    TIER_CHANGED,
    ComplaintData,
    ComplaintStatus,
    SurveyData,
)
from shared.db import consumer_transaction
from shared.errors import TierFlowError


class UnknownComplaint(TierFlowError):
    pass


def decode_event(record: ConsumerRecord[bytes, bytes]) -> FeedbackEvent | None:
    """The events feedback acts on; any other valid CloudEvent on its topics is None, to skip."""
    try:
        event: dict[str, Any] = json.loads(record.value or b"")
        if not isinstance(event.get("data"), dict) or not all(
            isinstance(event.get(name), str) for name in ("source", "id")
        ):
            raise ValueError("no source, id or data")
        at = datetime.fromisoformat(event["time"])
        return _typed(event.get("type"), event["source"], event["id"], at, event["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"not a CloudEvent: {exc}") from None


def _typed(
    event_type: object, source: str, event_id: str, at: datetime, data: dict[str, Any]
) -> FeedbackEvent | None:
    if event_type == TIER_CHANGED:
        branch = (data.get("profile") or {}).get("branch_id")
        return TierObserved(source, event_id, data["customer_id"], at, data["tier"], data["stage"], branch)
    if event_type == SURVEY_REQUESTED:
        return SurveyRequested(
            source=source,
            event_id=event_id,
            outreach_id=data["outreach_id"],
            customer_id=data["customer_id"],
            action=data.get("action") or "unknown",
            tier=data.get("tier"),
            channel=data.get("channel"),
            outcome=data.get("outcome"),
            requested_at=at,
        )
    return None


@dataclass
class Feedback:
    engine: AsyncEngine
    topic: str

    def store(self, connection: AsyncConnection) -> FeedbackStore:
        return FeedbackStore(connection, self.topic)

    async def apply_batch(self, batch: Sequence[Delivered[FeedbackEvent | None]]) -> None:
        async with consumer_transaction(self.engine) as db:
            store = self.store(db)
            for delivered in batch:
                event = delivered.value
                if event is None or not await store.claim_event(event.source, event.event_id):
                    continue
                if isinstance(event, TierObserved):
                    await store.remember_tier(event)
                else:
                    await store.invite(event, invitation_expires(event.requested_at))

    async def record_surveys(self, surveys: Sequence[SurveyData]) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            now = datetime.now(UTC)
            new = 0
            for survey in surveys:
                unanswered = (
                    [] if survey.outreach_id else await store.unanswered_invitations(survey.customer_id)
                )
                new += await store.add_survey(survey, answer(survey, now, unanswered))
            return new

    async def record_complaints(self, complaints: Sequence[ComplaintData], actor: str) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            now = datetime.now(UTC)
            return sum([await self._receive(store, complaint, actor, now) for complaint in complaints])

    async def update_complaint(self, complaint_id: str, to: ComplaintStatus, actor: str) -> None:
        async with self.engine.begin() as db:
            store = self.store(db)
            known = await store.complaint(complaint_id)
            if known is None:
                raise UnknownComplaint(complaint_id)
            now = datetime.now(UTC)
            moved = move(complaint_of(known), to, now)
            reported = ComplaintData(
                customer_id=known["customer_id"],
                complaint_id=complaint_id,
                severity=known["severity"],
                category=known["category"],
                status=moved.status,
                opened_at=moved.opened_at,
                resolved_at=moved.resolved_at,
            )
            await self._receive(store, reported, actor, now)

    async def _receive(
        self, store: FeedbackStore, reported: ComplaintData, actor: str, now: datetime
    ) -> bool:
        """Record a complaint as reported; False when it changes nothing (a resend)."""
        known = await store.complaint(reported.complaint_id)
        change = receive(None if known is None else complaint_of(known), reported, now)
        if change is None:
            return False
        await store.put_complaint(reported, change, actor, now)
        return True
