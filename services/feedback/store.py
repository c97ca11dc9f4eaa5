"""Feedback's tables, through the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback.domain.complaints import Complaint, ComplaintChange
from services.feedback.domain.events import ExperimentEnrolled, SurveyRequested, TierObserved
from services.feedback.domain.surveys import Answer, Invitation
from services.feedback.outbound import complaint_event, survey_event
from shared.contracts.internal import ErasureNotice
from shared.contracts.outbound import ComplaintData, ComplaintStatus, SurveyData
from shared.erasure import erased_among, exclude_writers, forget_unsent_events, record_erasure_by_event
from shared.inbox import claim_event
from shared.publishing import OutboxMessage, enqueue
from shared.retention import Cutoffs, Expiry, delete_expired

SCHEMA = "feedback"
# The tables holding a customer's rows by customer id; an erasure empties them of the customer.
_CUSTOMER_TABLES = ("surveys", "invitations", "tier_history", "customers", "experiment_members")


class FeedbackStore:
    def __init__(self, connection: AsyncConnection, topic: str) -> None:
        self._db = connection
        self._topic = topic

    @property
    def connection(self) -> AsyncConnection:
        return self._db

    async def claim_event(self, source: str, event_id: str, event_time: datetime) -> bool:
        return await claim_event(self._db, SCHEMA, source, event_id, event_time)

    async def erased_among(self, customer_ids: Sequence[str]) -> set[str]:
        return await erased_among(self._db, SCHEMA, customer_ids)

    async def erase(self, notice: ErasureNotice) -> bool:
        """Remove the customer's surveys (with their comments), complaints and their audit,
        invitations, observed tiers and unsent events; record the erasure with the counts
        removed. False if it was recorded before."""
        await exclude_writers(self._db, notice.customer_id)
        customer = {"c": notice.customer_id}
        # Complaints first: deleting them waits for an update holding one, so the audit row it
        # adds is committed, and found, when the audit is deleted next.
        complaints = [
            row[0]
            for row in await self._db.execute(
                text("DELETE FROM feedback.complaints WHERE customer_id = :c RETURNING complaint_id"),
                customer,
            )
        ]
        audit = await self._db.execute(
            text("DELETE FROM feedback.complaint_audit WHERE complaint_id = ANY(:ids)"), {"ids": complaints}
        )
        removed: dict[str, int] = {"complaints": len(complaints), "complaint_audit": audit.rowcount}
        for table in _CUSTOMER_TABLES:
            result = await self._db.execute(
                text(f"DELETE FROM feedback.{table} WHERE customer_id = :c"),  # noqa: S608 - fixed names
                customer,
            )
            removed[table] = result.rowcount
        removed["unsent_events"] = await forget_unsent_events(self._db, SCHEMA, notice.customer_id)
        return await record_erasure_by_event(self._db, SCHEMA, notice, removed)

    async def follow_branch(self, customer_id: str, branch_id: str | None) -> None:
        """The customer is in `branch_id` now: their surveys and complaints go with them, so the
        new branch's RMs and ops read them (and the old branch's no longer do), and branch
        reports count a customer's feedback where the customer is. Unknown (None) changes nothing."""
        if branch_id is None:
            return
        previous = await self._db.execute(
            text("SELECT branch_id FROM feedback.customers WHERE customer_id = :c FOR UPDATE"),
            {"c": customer_id},
        )
        known = previous.first()
        if known is not None and known[0] == branch_id:
            return  # the usual case: no transfer, nothing to move
        moved = {"c": customer_id, "b": branch_id}
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.customers (customer_id, branch_id, updated_at) VALUES (:c, :b, now())
                ON CONFLICT (customer_id) DO UPDATE SET branch_id = :b, updated_at = now()
                """
            ),
            moved,
        )
        for table in ("surveys", "complaints"):
            await self._db.execute(
                text(
                    f"UPDATE feedback.{table} SET branch_id = :b "  # noqa: S608 - a table of this schema
                    "WHERE customer_id = :c AND branch_id IS DISTINCT FROM :b"
                ),
                moved,
            )

    async def remember_tier(self, observed: TierObserved) -> None:
        tier = {"c": observed.customer_id, "t": observed.tier, "s": observed.stage}
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.customers (customer_id, tier, stage, branch_id, updated_at)
                VALUES (:c, :t, :s, :b, now())
                ON CONFLICT (customer_id) DO UPDATE SET tier = :t, stage = :s,
                    branch_id = coalesce(:b, feedback.customers.branch_id), updated_at = now()
                """
            ),
            {**tier, "b": observed.branch_id},
        )
        await self._db.execute(
            text(
                "INSERT INTO feedback.tier_history (source, event_id, customer_id, at, tier, stage, aum, "
                "products_held) VALUES (:src, :e, :c, :at, :t, :s, :aum, :products) "
                "ON CONFLICT (source, event_id) DO NOTHING"
            ),
            {
                **tier,
                "src": observed.source,
                "e": observed.event_id,
                "at": observed.at,
                "aum": observed.aum,
                "products": observed.products_held,
            },
        )

    async def enrol(self, enrolled: ExperimentEnrolled) -> None:
        """Record the customer's group; an item's later events (a reassignment) change nothing."""
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.experiment_members (outreach_id, customer_id, experiment, arm, action,
                    tier, enrolled_at)
                VALUES (:o, :c, :x, :arm, :a, :t, :at) ON CONFLICT (outreach_id) DO NOTHING
                """
            ),
            {
                "o": enrolled.outreach_id,
                "c": enrolled.customer_id,
                "x": enrolled.experiment,
                "arm": enrolled.arm.value,
                "a": enrolled.action,
                "t": enrolled.tier,
                "at": enrolled.at,
            },
        )

    async def invite(self, request: SurveyRequested, expires_at: datetime, *, held_out: bool = False) -> None:
        await self._db.execute(
            text(
                """
                INSERT INTO feedback.invitations (outreach_id, customer_id, action, tier, channel, outcome,
                    requested_at, expires_at, held_out)
                VALUES (:o, :c, :a, :t, :ch, :out, :at, :exp, :held_out) ON CONFLICT (outreach_id) DO NOTHING
                """
            ),
            {
                "o": request.outreach_id,
                "c": request.customer_id,
                "a": request.action,
                "t": request.tier,
                "ch": request.channel,
                "out": request.outcome,
                "at": request.requested_at,
                "exp": expires_at,
                "held_out": held_out,
            },
        )

    async def invitation_times(self, customer_id: str) -> list[datetime]:
        """When the customer was (or is to be) invited to each survey feedback knows of."""
        rows = await self._db.execute(
            text("SELECT requested_at FROM feedback.invitations WHERE customer_id = :c"), {"c": customer_id}
        )
        return [row[0] for row in rows]

    async def unanswered_invitations(self, customer_id: str) -> list[Invitation]:
        rows = await self._db.execute(
            text(
                "SELECT outreach_id, requested_at, expires_at FROM feedback.invitations "
                "WHERE customer_id = :c AND survey_id IS NULL"
            ),
            {"c": customer_id},
        )
        return [Invitation(r[0], r[1], r[2]) for r in rows]

    async def add_survey(self, survey: SurveyData, answer: Answer) -> bool:
        """Store and publish a survey once; a resent survey id changes nothing."""
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
                "o": answer.outreach_id,
                "at": answer.answered_at,
            },
        )
        if inserted is None:
            return False
        if answer.outreach_id is not None:
            await self._db.execute(
                text(
                    "UPDATE feedback.invitations SET survey_id = :s "
                    "WHERE outreach_id = :o AND survey_id IS NULL"
                ),
                {"s": survey.survey_id, "o": answer.outreach_id},
            )
        await self._outbox(survey_event(survey, answer))
        return True

    async def complaint(self, complaint_id: str) -> dict[str, Any] | None:
        """The complaint's row, locked until the transaction ends."""
        row = (
            await self._db.execute(
                text("SELECT * FROM feedback.complaints WHERE complaint_id = :id FOR UPDATE"),
                {"id": complaint_id},
            )
        ).first()
        return None if row is None else dict(row._mapping)

    async def put_complaint(
        self, reported: ComplaintData, change: ComplaintChange, actor: str, now: datetime
    ) -> None:
        """Insert or move a complaint, with its audit row and its event."""
        complaint = change.complaint
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
                "c": reported.customer_id,
                "sev": reported.severity.value,
                "cat": reported.category,
                "st": complaint.status.value,
                "opened": complaint.opened_at,
                "resolved": complaint.resolved_at,
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
                "f": change.previous.value if change.previous else None,
                "t": complaint.status.value,
                "a": actor,
            },
        )
        await self._outbox(complaint_event(reported, change))

    async def _outbox(self, message: OutboxMessage) -> None:
        await enqueue(self._db, SCHEMA, self._topic, [message])


def complaint_of(row: dict[str, Any]) -> Complaint:
    return Complaint(
        row["complaint_id"], ComplaintStatus(row["status"]), row["opened_at"], row["resolved_at"]
    )


async def expire(connection: AsyncConnection, cutoffs: Cutoffs, limit: int) -> dict[str, int]:
    """Feedback's retention, up to `limit` rows a table. Open complaints are never deleted."""
    expiries = [
        Expiry("feedback.tier_history", "at", cutoffs.tier_history),
        Expiry("feedback.surveys", "answered_at", cutoffs.surveys),
        Expiry("feedback.invitations", "expires_at", cutoffs.surveys),
        Expiry("feedback.complaints", "resolved_at", cutoffs.complaints, where="status = 'resolved'"),
        Expiry("feedback.complaint_audit", "at", cutoffs.audits),
        # Who was drawn into which group lives as long as the outreach items it stands for.
        Expiry("feedback.experiment_members", "enrolled_at", cutoffs.closed_outreach),
    ]
    return await delete_expired(connection, expiries, limit)
