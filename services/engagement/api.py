"""HTTP entrypoint of engagement: the outreach queue, RM workflow, RMs and outcome statistics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import AwareDatetime
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement import views
from services.engagement.domain.lifecycle import (
    ActedBeforeItem,
    Actor,
    ActorUnknown,
    TransitionRefused,
    acting,
)
from services.engagement.domain.outcomes import OutcomeCounts
from services.engagement.domain.playbook import load_playbook
from services.engagement.handlers import Engagement, UnknownItem
from services.engagement.schemas import (
    CancellationCreate,
    CompletionCreate,
    OutcomeStats,
    OutreachItemPublic,
    PlaybookSummary,
    QueueCell,
    ReassignmentCreate,
    RmUpdate,
    RmWorkload,
)
from shared.auth import Principal, Role
from shared.bodies import read_document
from shared.clock import StatedTimeRefused
from shared.contracts.types import Identifier, IdentifierPath, VersionPath
from shared.http import ApiError, Responses, require
from shared.whoami import whoami_router

ReaderKey = Annotated[Principal, Depends(require(Role.OPS, Role.RM))]
RmKey = Annotated[Principal, Depends(require(Role.RM))]
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
RmId = Annotated[
    Identifier | None,
    Header(
        alias="X-RM-Id",
        description="The RM an admin key acts for, with that RM's rights (an identifier, 422"
        " otherwise); ignored for keys bound to an RM",
    ),
]


async def _acting_rm(key: RmKey, rm_id: RmId = None) -> Actor:
    """Who a request to move an item acts as; an unbound rm key is refused before anything else."""
    try:
        return acting(key.key_id, admin=key.is_admin, bound_rm=key.rm_id, named_rm=rm_id)
    except ActorUnknown as exc:
        raise ApiError(403, str(exc)) from None


ActingRm = Annotated[Actor, Depends(_acting_rm)]
ActedAt = Annotated[
    AwareDatetime | None,
    Query(
        description="When the RM acted, for simulations and replays: accepted only when engagement"
        " runs on the event or fixed clock (422 on the wall clock); absent, the action is engagement's now"
    ),
]
_ITEM_ERRORS: Responses = {
    404: {"description": "Unknown item"},
    409: {"description": "Transition not allowed"},
    422: {"description": "Invalid body, or `at` stated on the wall clock or before the item's last step"},
}
_UNKNOWN_VERSION: Responses = {404: {"description": "Unknown version"}}


def build_router(engine: AsyncEngine, engagement: Engagement) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["engagement"])

    async def load(item_id: UUID, key: Principal) -> OutreachItemPublic:
        """The item, if the key sees its branch: one of another branch is not there for it."""
        async with engine.connect() as db:
            row = await views.item(db, str(item_id))
        if row is None or not key.sees(row["branch_id"]):
            raise ApiError(404, f"unknown outreach item {str(item_id)!r}")
        return OutreachItemPublic.from_row(row)

    async def moved(
        item_id: UUID, key: Principal, transition: Callable[[], Awaitable[None]]
    ) -> OutreachItemPublic:
        # An item's branch never changes, so a key that sees it now sees it when it moves.
        await load(item_id, key)
        try:
            await transition()
        except UnknownItem:
            raise ApiError(404, f"unknown outreach item {str(item_id)!r}") from None
        except TransitionRefused as exc:
            raise ApiError(409, str(exc)) from None
        except (StatedTimeRefused, ActedBeforeItem) as exc:
            raise ApiError(422, str(exc)) from None
        return await load(item_id, key)

    @router.get("/outreach")
    async def list_outreach(
        key: ReaderKey,
        customer_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        branch_id: Annotated[str | None, Query(max_length=128)] = None,
        assigned_to: Annotated[str | None, Query(max_length=128)] = None,
        priority: Annotated[str | None, Query(max_length=16)] = None,
        action: Annotated[str | None, Query(max_length=32)] = None,
        household_id: Annotated[str | None, Query(max_length=128)] = None,
        due_before: AwareDatetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[OutreachItemPublic]:
        """Outreach items, soonest due first, filtered by customer, branch, RM, status, priority,
        action or the household whose contacts (and the members' items they cover) they are.

        A key scoped to branches sees their items only."""
        filters = {
            "customer_id": customer_id, "status": status, "assigned_to": assigned_to,
            "priority": priority, "kind": action, "household_id": household_id,
        }  # fmt: skip
        async with engine.connect() as db:
            rows = await views.items(db, filters, key.branch_scope(branch_id), due_before, limit)
        return [OutreachItemPublic.from_row(row) for row in rows]

    @router.get("/outreach/stats")
    async def outreach_stats(
        key: ReaderKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
    ) -> list[OutcomeStats]:
        """Reach, conversion and time to first contact against SLA, by tier, action and channel, of
        the items of the branches the key sees."""
        async with engine.connect() as db:
            rows = await views.outcome_stats(db, start, end, key.branch_scope(None))
        return [_outcome_stats(row) for row in rows]

    @router.get("/outreach/queue")
    async def outreach_queue(
        key: ReaderKey, branch_id: Annotated[str | None, Query(max_length=128)] = None
    ) -> list[QueueCell]:
        """Open items counted by action, RM (`null`: not yet assigned) and status."""
        async with engine.connect() as db:
            cells = await views.queue(db, key.branch_scope(branch_id))
        return [QueueCell(action=a, assigned_to=r, status=s, items=n) for a, r, s, n in cells]

    @router.get("/outreach/{item_id}", responses=_ITEM_ERRORS)
    async def get_outreach(item_id: UUID, key: ReaderKey) -> OutreachItemPublic:
        """One outreach item (404 for a key that does not see its branch)."""
        return await load(item_id, key)

    @router.post("/outreach/{item_id}/claim", responses=_ITEM_ERRORS)
    async def claim(item_id: UUID, key: RmKey, actor: ActingRm, at: ActedAt = None) -> OutreachItemPublic:
        """Take an unassigned item (or confirm one assigned to you)."""
        return await moved(item_id, key, lambda: engagement.claim(str(item_id), actor, at))

    @router.post("/outreach/{item_id}/start", responses=_ITEM_ERRORS)
    async def start(item_id: UUID, key: RmKey, actor: ActingRm, at: ActedAt = None) -> OutreachItemPublic:
        """Begin working an item you hold; the first contact time is recorded."""
        return await moved(item_id, key, lambda: engagement.start(str(item_id), actor, at))

    @router.post("/outreach/{item_id}/complete", responses=_ITEM_ERRORS)
    async def complete(
        item_id: UUID, body: CompletionCreate, key: RmKey, actor: ActingRm, at: ActedAt = None
    ) -> OutreachItemPublic:
        """Close an item you are working with its outcome; optionally ask feedback for a survey."""

        def completion() -> Awaitable[None]:
            return engagement.complete(str(item_id), actor, body.outcome, body.note, body.request_survey, at)

        return await moved(item_id, key, completion)

    @router.post("/outreach/{item_id}/cancel", responses=_ITEM_ERRORS)
    async def cancel(
        item_id: UUID, body: CancellationCreate, key: RmKey, actor: ActingRm, at: ActedAt = None
    ) -> OutreachItemPublic:
        """Cancel an open item (yours or unassigned, or any as admin), with the reason."""
        return await moved(item_id, key, lambda: engagement.cancel(str(item_id), actor, body.reason, at))

    @router.post("/outreach/{item_id}/reassign", responses=_ITEM_ERRORS)
    async def reassign(item_id: UUID, body: ReassignmentCreate, key: AdminKey) -> OutreachItemPublic:
        """Give an open item to another RM."""
        actor = acting(key.key_id, admin=True, bound_rm=None, named_rm=None)
        return await moved(item_id, key, lambda: engagement.reassign(str(item_id), actor, body.rm_id))

    @router.put("/rms/{rm_id}")
    async def put_rm(rm_id: IdentifierPath, body: RmUpdate, _key: AdminKey) -> RmWorkload:
        """Register or update an RM: branch and capacity (open items they can hold)."""
        await engagement.put_rm(rm_id, body.branch_id, body.capacity, body.active)
        async with engine.connect() as db:
            rows = await views.workloads(db, rm_id, await engagement.now())
        return RmWorkload.model_validate(rows[0])

    @router.get("/rms")
    async def list_rms(
        key: ReaderKey, branch_id: Annotated[str | None, Query(max_length=128)] = None
    ) -> list[RmWorkload]:
        """RMs with their open and overdue items against capacity."""
        async with engine.connect() as db:
            rows = await views.workloads(db, None, await engagement.now(), key.branch_scope(branch_id))
        return [RmWorkload.model_validate(row) for row in rows]

    @router.get("/playbooks")
    async def list_playbooks(_key: ReaderKey) -> list[PlaybookSummary]:
        """Every stored playbook version; one is active."""
        async with engine.connect() as db:
            return [PlaybookSummary.model_validate(row) for row in await views.playbooks(db)]

    @router.get("/playbooks/{version}", responses=_UNKNOWN_VERSION)
    async def get_playbook(version: VersionPath, _key: ReaderKey) -> dict[str, Any]:
        """The playbook document, as stored."""
        async with engine.connect() as db:
            document = await views.playbook_document(db, version)
        if document is None:
            raise ApiError(404, f"unknown playbook version {version!r}")
        return document

    @router.post("/playbooks", status_code=201, responses={409: {"description": "Exists"}})
    async def create_playbook(request: Request, key: AdminKey) -> PlaybookSummary:
        """Store a new playbook version (JSON or YAML); versions are immutable, inactive until activated."""
        playbook = await read_document(request, load_playbook, "playbook")
        try:
            await engagement.install_playbook(playbook, key.key_id)
        except IntegrityError:
            raise ApiError(409, f"playbook version {playbook.version!r} exists") from None
        return await summary(playbook.version)

    @router.post("/playbooks/{version}/activate", responses=_UNKNOWN_VERSION)
    async def activate_playbook(version: VersionPath, _key: AdminKey) -> PlaybookSummary:
        """Make a stored version the one new tier changes are planned with."""
        if not await engagement.activate_playbook(version):
            raise ApiError(404, f"unknown playbook version {version!r}")
        return await summary(version)

    async def summary(version: str) -> PlaybookSummary:
        async with engine.connect() as db:
            stored = next(p for p in await views.playbooks(db) if p["version"] == version)
        return PlaybookSummary.model_validate(stored)

    router.include_router(whoami_router())
    return router


def _outcome_stats(row: dict[str, Any]) -> OutcomeStats:
    counts = OutcomeCounts(row["completed"], row["reached"], row["converted"])
    hours, within = row["hours_to_first_contact"], row["within_sla"]
    return OutcomeStats(
        tier=row["tier"],
        action=row["action"],
        channel=row["channel"],
        items=row["items"],
        held_out=row["held_out"],
        completed=counts.completed,
        reached=counts.reached,
        converted=counts.converted,
        reach_rate=counts.reach_rate,
        conversion_rate=counts.conversion_rate,
        avg_hours_to_first_contact=None if hours is None else round(float(hours), 2),
        first_contact_within_sla_rate=None if within is None else round(float(within), 3),
        first_contact_within_sla=row["contacted_within_sla"],
    )
