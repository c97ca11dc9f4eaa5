"""Feedback's tables, through the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback.outbound import complaint_event, survey_event
from shared.contracts.outbound import ComplaintData, SurveyData

INVITATION_DAYS = 14


class FeedbackStore:
    def __init__(self, connection: AsyncConnection, topic: str) -> None:
        self._db = connection
        self._topic = topic

    async def claim_event(self, event_id: str) -> bool:
        inserted = await self._db.scalar(
            text(
                "INSERT INTO feedback.applied_events (event_id) VALUES (:id) "
                "ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            {"id": event_id},
        )
        return inserted is not None

    async def remember_tier(
        self, event_id: str, customer_id: str, at: datetime, tier: str, stage: str, branch: str | None
    ) -> None:
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.customers (customer_id, tier, stage, branch_id, updated_at)
                VALUES (:c, :t, :s, :b, now())
                ON CONFLICT (customer_id) DO UPDATE SET tier = :t, stage = :s,
                    branch_id = coalesce(:b, feedback.customers.branch_id), updated_at = now()
                """
            ),
            {"c": customer_id, "t": tier, "s": stage, "b": branch},
        )
        await self._db.execute(
            text(
                "INSERT INTO feedback.tier_history (event_id, customer_id, at, tier, stage) "
                "VALUES (:e, :c, :at, :t, :s) ON CONFLICT (event_id) DO NOTHING"
            ),
            {"e": event_id, "c": customer_id, "at": at, "t": tier, "s": stage},
        )

    async def invite(self, data: dict[str, Any], at: datetime) -> None:
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.invitations (outreach_id, customer_id, action, tier, channel, outcome,
                    requested_at, expires_at)
                VALUES (:o, :c, :a, :t, :ch, :out, :at, :exp) ON CONFLICT (outreach_id) DO NOTHING
                """
            ),
            {
                "o": data["outreach_id"],
                "c": data["customer_id"],
                "a": data.get("action") or "unknown",
                "t": data.get("tier"),
                "ch": data.get("channel"),
                "out": data.get("outcome"),
                "at": at,
                "exp": at + timedelta(days=INVITATION_DAYS),
            },
        )

    async def add_survey(self, survey: SurveyData, now: datetime) -> bool:
        """Store and publish a survey once; a resent survey id changes nothing."""
        answered = survey.answered_at or now
        outreach = survey.outreach_id or await self._open_invitation(survey.customer_id, answered)
        inserted = await self._db.scalar(
            text(
                """
                INSERT INTO feedback.surveys (survey_id, customer_id, kind, score, comment, outreach_id,
                    answered_at, tier, stage, branch_id, channel)
                SELECT :id, :c, :k, :s, :comment, :o, :at, cu.tier, cu.stage, cu.branch_id, inv.channel
                FROM (SELECT 1) AS one
                LEFT JOIN feedback.customers cu ON cu.customer_id = :c
                LEFT JOIN feedback.invitations inv ON inv.outreach_id = :o
                ON CONFLICT (survey_id) DO NOTHING RETURNING survey_id
                """
            ),
            {
                "id": survey.survey_id,
                "c": survey.customer_id,
                "k": survey.kind.value,
                "s": survey.score,
                "comment": survey.comment,
                "o": outreach,
                "at": answered,
            },
        )
        if inserted is None:
            return False
        if outreach is not None:
            await self._db.execute(
                text(
                    "UPDATE feedback.invitations SET survey_id = :s "
                    "WHERE outreach_id = :o AND survey_id IS NULL"
                ),
                {"s": survey.survey_id, "o": outreach},
            )
        data = survey.model_dump(mode="json", exclude_none=True)
        data["answered_at"] = answered.isoformat()
        if outreach is not None:
            data["outreach_id"] = outreach
        await self._outbox(survey.customer_id, survey_event(data, answered))
        return True

    async def _open_invitation(self, customer_id: str, answered: datetime) -> str | None:
        found: str | None = await self._db.scalar(
            text(
                """
                SELECT outreach_id FROM feedback.invitations
                WHERE customer_id = :c AND survey_id IS NULL AND requested_at <= :at AND expires_at > :at
                ORDER BY requested_at DESC LIMIT 1
                """
            ),
            {"c": customer_id, "at": answered},
        )
        return found

    async def complaint(self, complaint_id: str) -> dict[str, Any] | None:
        row = (
            await self._db.execute(
                text("SELECT * FROM feedback.complaints WHERE complaint_id = :id FOR UPDATE"),
                {"id": complaint_id},
            )
        ).first()
        return None if row is None else dict(row._mapping)

    async def put_complaint(self, complaint: ComplaintData, actor: str, now: datetime) -> bool:
        """Insert or move a complaint; returns False when nothing changed (a resend)."""
        known = await self.complaint(complaint.complaint_id)
        if known is not None and known["status"] == complaint.status.value:
            return False
        opened = complaint.opened_at or (known["opened_at"] if known else now)
        resolved = complaint.resolved_at or (now if complaint.status.value == "resolved" else None)
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.complaints (complaint_id, customer_id, severity, category, status,
                    opened_at, resolved_at, updated_at, tier, branch_id)
                SELECT :id, :c, :sev, :cat, :st, :opened, :resolved, :now, cu.tier, cu.branch_id
                FROM (SELECT 1) AS one LEFT JOIN feedback.customers cu ON cu.customer_id = :c
                ON CONFLICT (complaint_id) DO UPDATE
                SET status = :st, resolved_at = :resolved, updated_at = :now
                """
            ),
            {
                "id": complaint.complaint_id,
                "c": complaint.customer_id,
                "sev": complaint.severity.value,
                "cat": complaint.category,
                "st": complaint.status.value,
                "opened": opened,
                "resolved": resolved,
                "now": now,
            },
        )
        await self._db.execute(
            text(
                "INSERT INTO feedback.complaint_audit (complaint_id, from_status, to_status, actor) "
                "VALUES (:id, :f, :t, :a)"
            ),
            {
                "id": complaint.complaint_id,
                "f": known["status"] if known else None,
                "t": complaint.status.value,
                "a": actor,
            },
        )
        data = complaint.model_dump(mode="json", exclude_none=True)
        data["opened_at"] = opened.isoformat()
        if resolved is not None:
            data["resolved_at"] = resolved.isoformat()
        # The event carries when the change happened, as reported, so an event-time clock
        # downstream is not pulled forward by late reporting.
        happened = resolved if resolved is not None else (opened if known is None else now)
        await self._outbox(complaint.customer_id, complaint_event(data, happened))
        return True

    async def _outbox(self, customer_id: str, value: bytes) -> None:
        await self._db.execute(
            text("INSERT INTO feedback.outbox (topic, key, value) VALUES (:t, :k, :v)"),
            {"t": self._topic, "k": customer_id.encode(), "v": value},
        )
