"""HTTP entrypoint of engagement: the outreach queue, RM workflow, RMs and outcome statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement.domain import lifecycle
from services.engagement.domain.lifecycle import OPEN_STATES, Outcome, TransitionRefused
from services.engagement.domain.playbook import load_playbook
from services.engagement.handlers import Engagement, UnknownItem
from services.engagement.store import ITEM_COLUMNS
from shared.auth import Principal, Role
from shared.bodies import read_document
from shared.http import ApiError, require

ReaderKey = Annotated[Principal, Depends(require(Role.OPS, Role.RM))]
RmKey = Annotated[Principal, Depends(require(Role.RM))]
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
RmId = Annotated[str | None, Header(alias="X-RM-Id", max_length=128, description="The RM acting")]
_ITEM_ERRORS = {404: {"description": "Unknown item"}, 409: {"description": "Transition not allowed"}}


class OutreachItem(BaseModel):
    id: str
    customer_id: str
    branch_id: str | None
    action: str
    category: str
    channel: str | None
    priority: str
    status: str
    due_at: datetime
    sla_due_at: datetime
    expires_at: datetime
    trigger_event_id: str
    assigned_to: str | None
    reason: str
    template: str
    product: str | None
    outcome: str | None
    cancel_reason: str | None
    tier: str
    stage: str
    first_contact_at: datetime | None
    closed_at: datetime | None
    created_at: datetime


class PlaybookSummary(BaseModel):
    version: str
    created_at: datetime
    created_by: str
    active: bool


class Completion(BaseModel):
    outcome: Outcome
    note: Annotated[str, Field(max_length=1000)] | None = None
    request_survey: bool = True


class Cancellation(BaseModel):
    reason: Annotated[str, Field(min_length=3, max_length=500)]


class Reassignment(BaseModel):
    rm_id: Annotated[str, Field(min_length=1, max_length=128)]


class RmUpsert(BaseModel):
    branch_id: Annotated[str, Field(min_length=1, max_length=128)]
    capacity: Annotated[int, Field(ge=0, le=10_000)]
    active: bool = True


class RmWorkload(BaseModel):
    rm_id: str
    branch_id: str
    capacity: int
    active: bool
    open_items: int
    overdue_items: int


class QueueCell(BaseModel):
    action: str
    assigned_to: str | None
    status: str
    items: int


class OutcomeStats(BaseModel):
    tier: str
    action: str
    channel: str | None
    items: int
    completed: int
    reached: int
    converted: int
    reach_rate: float | None
    conversion_rate: float | None
    avg_hours_to_first_contact: float | None
    first_contact_within_sla_rate: float | None


def _public(row: dict[str, Any]) -> OutreachItem:
    renamed = {
        "id": str(row["id"]),
        "action": row["kind"],
        "tier": row["context_tier"],
        "stage": row["context_stage"],
    }
    return OutreachItem.model_validate({**row, **renamed})


def build_router(engine: AsyncEngine, engagement: Engagement) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["engagement"])

    async def load(item_id: UUID) -> OutreachItem:
        async with engine.connect() as db:
            row = await engagement.store(db).item(str(item_id))
        if row is None:
            raise ApiError(404, f"unknown outreach item {str(item_id)!r}")
        return _public(row)

    async def move(
        item_id: UUID, step: Any, actor: str, note: str | None, survey: bool = False
    ) -> OutreachItem:
        try:
            await engagement.transition(str(item_id), step, actor, note, survey)
        except UnknownItem:
            raise ApiError(404, f"unknown outreach item {str(item_id)!r}") from None
        except TransitionRefused as exc:
            raise ApiError(409, str(exc)) from None
        return await load(item_id)

    def actor_of(key: Principal, rm_id: str | None) -> tuple[str, bool]:
        admin = key.may(Role.ADMIN) and Role.ADMIN in key.roles
        if rm_id:
            return rm_id, admin
        if admin:
            return f"admin:{key.key_id}", True
        raise ApiError(400, "say which RM is acting: send the X-RM-Id header")

    @router.get("/outreach")
    async def list_outreach(
        _key: ReaderKey,
        customer_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        branch_id: Annotated[str | None, Query(max_length=128)] = None,
        assigned_to: Annotated[str | None, Query(max_length=128)] = None,
        priority: Annotated[str | None, Query(max_length=16)] = None,
        action: Annotated[str | None, Query(max_length=32)] = None,
        due_before: AwareDatetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[OutreachItem]:
        """Outreach items, soonest due first, filtered by customer, branch, RM, status, priority, action."""
        filters = {
            "customer_id": customer_id, "status": status, "branch_id": branch_id,
            "assigned_to": assigned_to, "priority": priority, "kind": action,
        }  # fmt: skip
        clauses = [f"{name} = :{name}" for name, value in filters.items() if value is not None]
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        if due_before is not None:
            clauses.append("due_at <= :due_before")
            params["due_before"] = due_before
        where = " AND ".join(clauses) or "true"
        sql = f"SELECT {ITEM_COLUMNS} FROM engagement.items WHERE {where} ORDER BY due_at, id LIMIT :limit"  # noqa: S608
        async with engine.connect() as db:
            rows = await db.execute(text(sql), {**params, "limit": limit})
        return [_public(dict(row._mapping)) for row in rows]

    @router.get("/outreach/stats")
    async def outreach_stats(
        _key: ReaderKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
    ) -> list[OutcomeStats]:
        """Reach, conversion and time to first contact against SLA, by tier, action and channel."""
        async with engine.connect() as db:
            rows = await db.execute(
                text(
                    """
                    SELECT context_tier, kind, channel, count(*) AS items,
                        count(*) FILTER (WHERE status = 'completed') AS completed,
                        count(*) FILTER (WHERE outcome IN ('reached', 'converted', 'declined')) AS reached,
                        count(*) FILTER (WHERE outcome = 'converted') AS converted,
                        avg(extract(epoch FROM first_contact_at - created_at) / 3600) AS hours,
                        avg(CASE WHEN first_contact_at IS NULL THEN NULL
                                 WHEN first_contact_at <= sla_due_at THEN 1.0 ELSE 0.0 END) AS within_sla
                    FROM engagement.items
                    WHERE created_at >= :start AND created_at < :end AND status <> 'cancelled'
                    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
                    """
                ),
                {"start": start, "end": end},
            )
            stats = []
            for tier, kind, channel, items, completed, reached, converted, hours, within in rows:
                stats.append(
                    OutcomeStats(
                        tier=tier,
                        action=kind,
                        channel=channel,
                        items=items,
                        completed=completed,
                        reached=reached,
                        converted=converted,
                        reach_rate=reached / completed if completed else None,
                        conversion_rate=converted / completed if completed else None,
                        avg_hours_to_first_contact=None if hours is None else round(float(hours), 2),
                        first_contact_within_sla_rate=None if within is None else round(float(within), 3),
                    )
                )
        return stats

    @router.get("/outreach/queue")
    async def outreach_queue(
        _key: ReaderKey, branch_id: Annotated[str | None, Query(max_length=128)] = None
    ) -> list[QueueCell]:
        """Open items counted by action, RM (`null`: not yet assigned) and status."""
        async with engine.connect() as db:
            rows = await db.execute(
                text(
                    """
                    SELECT kind, assigned_to, status, count(*) FROM engagement.items
                    WHERE status = ANY(:open)
                        AND (CAST(:branch AS text) IS NULL OR branch_id = :branch)
                    GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS FIRST, 3
                    """
                ),
                {"branch": branch_id, "open": sorted(OPEN_STATES)},
            )
            return [QueueCell(action=a, assigned_to=r, status=s, items=n) for a, r, s, n in rows]

    @router.get("/outreach/{item_id}", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def get_outreach(item_id: UUID, _key: ReaderKey) -> OutreachItem:
        """One outreach item."""
        return await load(item_id)

    @router.post("/outreach/{item_id}/claim", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def claim(item_id: UUID, key: RmKey, rm_id: RmId = None) -> OutreachItem:
        """Take an unassigned item (or confirm one assigned to you)."""
        actor, _ = actor_of(key, rm_id)
        return await move(item_id, lambda item, _now: lifecycle.claim(item, actor), actor, "claimed")

    @router.post("/outreach/{item_id}/start", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def start(item_id: UUID, key: RmKey, rm_id: RmId = None) -> OutreachItem:
        """Begin working an item you hold; the first contact time is recorded."""
        actor, admin = actor_of(key, rm_id)
        return await move(
            item_id, lambda item, now: lifecycle.start(item, actor, admin, now), actor, "started"
        )

    @router.post("/outreach/{item_id}/complete", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def complete(item_id: UUID, body: Completion, key: RmKey, rm_id: RmId = None) -> OutreachItem:
        """Close an item you are working with its outcome; optionally ask feedback for a survey."""
        actor, admin = actor_of(key, rm_id)
        return await move(
            item_id,
            lambda item, now: lifecycle.complete(item, actor, admin, body.outcome, now),
            actor,
            body.note,
            body.request_survey,
        )

    @router.post("/outreach/{item_id}/cancel", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def cancel(item_id: UUID, body: Cancellation, key: RmKey, rm_id: RmId = None) -> OutreachItem:
        """Cancel an open item (yours, or any as admin), with the reason."""
        actor, admin = actor_of(key, rm_id)
        return await move(
            item_id,
            lambda item, now: lifecycle.cancel(item, actor, admin, body.reason, now),
            actor,
            body.reason,
        )

    @router.post("/outreach/{item_id}/reassign", responses=_ITEM_ERRORS)  # type: ignore[arg-type]
    async def reassign(item_id: UUID, body: Reassignment, key: AdminKey) -> OutreachItem:
        """Give an open item to another RM."""
        return await move(
            item_id,
            lambda item, _now: lifecycle.assign(item, body.rm_id),
            f"admin:{key.key_id}",
            f"to {body.rm_id}",
        )

    @router.put("/rms/{rm_id}")
    async def put_rm(rm_id: str, body: RmUpsert, _key: AdminKey) -> RmWorkload:
        """Register or update an RM: branch and capacity (open items they can hold)."""
        async with engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO engagement.rms (rm_id, branch_id, capacity, active) VALUES (:r, :b, :c, :a) "
                    "ON CONFLICT (rm_id) DO UPDATE SET branch_id = :b, capacity = :c, active = :a"
                ),
                {"r": rm_id, "b": body.branch_id, "c": body.capacity, "a": body.active},
            )
        return next(w for w in await workloads(rm_id) if w.rm_id == rm_id)

    @router.get("/rms")
    async def list_rms(
        _key: ReaderKey, branch_id: Annotated[str | None, Query(max_length=128)] = None
    ) -> list[RmWorkload]:
        """RMs with their open and overdue items against capacity."""
        loads = await workloads(None)
        return [w for w in loads if branch_id is None or w.branch_id == branch_id]

    async def workloads(rm_id: str | None) -> list[RmWorkload]:
        async with engine.connect() as db:
            rows = await db.execute(
                text(
                    """
                    SELECT r.rm_id, r.branch_id, r.capacity, r.active,
                        count(i.id) FILTER (WHERE i.status IN ('assigned', 'in_progress')),
                        count(i.id) FILTER (
                            WHERE i.status IN ('assigned', 'in_progress') AND i.sla_due_at < now()
                        )
                    FROM engagement.rms r LEFT JOIN engagement.items i ON i.assigned_to = r.rm_id
                    WHERE (CAST(:rm AS text) IS NULL OR r.rm_id = :rm)
                    GROUP BY r.rm_id, r.branch_id, r.capacity, r.active ORDER BY r.rm_id
                    """
                ),
                {"rm": rm_id},
            )
            return [
                RmWorkload(
                    rm_id=r[0],
                    branch_id=r[1],
                    capacity=r[2],
                    active=r[3],
                    open_items=r[4],
                    overdue_items=r[5],
                )
                for r in rows
            ]

    @router.get("/playbooks")
    async def list_playbooks(_key: ReaderKey) -> list[PlaybookSummary]:
        """Every stored playbook version; one is active."""
        async with engine.connect() as db:
            return [PlaybookSummary.model_validate(row) for row in await engagement.store(db).playbooks()]

    @router.get("/playbooks/{version}", responses={404: {"description": "Unknown version"}})
    async def get_playbook(version: str, _key: ReaderKey) -> dict[str, Any]:
        """The playbook document, as stored."""
        async with engine.connect() as db:
            document = await engagement.store(db).playbook_document(version)
        if document is None:
            raise ApiError(404, f"unknown playbook version {version!r}")
        return document

    @router.post("/playbooks", status_code=201, responses={409: {"description": "Exists"}})
    async def create_playbook(request: Request, key: AdminKey) -> PlaybookSummary:
        """Store a new playbook version (JSON or YAML); versions are immutable, inactive until activated."""
        playbook = await read_document(request, load_playbook, "playbook")
        try:
            async with engine.begin() as db:
                await engagement.store(db).install_playbook(playbook, key.key_id, active=False)
        except IntegrityError:
            raise ApiError(409, f"playbook version {playbook.version!r} exists") from None
        async with engine.connect() as db:
            stored = next(
                p for p in await engagement.store(db).playbooks() if p["version"] == playbook.version
            )
        return PlaybookSummary.model_validate(stored)

    @router.post("/playbooks/{version}/activate", responses={404: {"description": "Unknown version"}})
    async def activate_playbook(version: str, _key: AdminKey) -> PlaybookSummary:
        """Make a stored version the one new tier changes are planned with."""
        async with engine.begin() as db:
            if not await engagement.store(db).activate_playbook(version):
                raise ApiError(404, f"unknown playbook version {version!r}")
        async with engine.connect() as db:
            stored = next(p for p in await engagement.store(db).playbooks() if p["version"] == version)
        return PlaybookSummary.model_validate(stored)

    return router
