"""HTTP entrypoint of feedback: survey and complaint intake, complaint lifecycle, reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback import views
from services.feedback.domain.complaints import ComplaintRefused
from services.feedback.handlers import Feedback, UnknownComplaint
from services.feedback.schemas import (
    Accepted,
    ComplaintPublic,
    ComplaintUpdate,
    CustomerFeedback,
    SurveyPublic,
)
from shared.auth import Principal, Role
from shared.batches import BatchRefused, accept_all, model_validator
from shared.bodies import read_json, refused_batch
from shared.contracts.outbound import ComplaintData, SurveyData
from shared.contracts.types import CustomerIdPath, IdentifierPath, TimeBounds
from shared.http import ApiError, PeriodQuery, Responses, require, require_branch_reader, require_whole_bank
from shared.settings import Settings
from shared.whoami import whoami_router

IngestKey = Annotated[Principal, Depends(require(Role.INGEST))]
OpsKey = Annotated[Principal, Depends(require(Role.OPS))]
# Ops keys, and RM keys bound to a branch: each reads the complaints of the branches it sees.
CustomerReader = Annotated[Principal, Depends(require_branch_reader(Role.OPS))]
BankWideOpsKey = Annotated[Principal, Depends(require_whole_bank(Role.OPS, "the effectiveness report"))]
M = TypeVar("M", bound=BaseModel)
_INTAKE_ERRORS: Responses = {
    413: {"description": "Over the size limit"},
    415: {"description": "Not JSON"},
    422: {"description": "At least one item is invalid; nothing was stored"},
}
_COMPLAINT_ERRORS: Responses = {404: {}, 409: {}}


def _body(model: type[BaseModel]) -> dict[str, object]:
    schema = model.model_json_schema()
    content = {"schema": {"oneOf": [schema, {"type": "array", "items": schema}]}}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def build_router(settings: Settings, engine: AsyncEngine, feedback: Feedback) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["feedback"])

    async def intake(request: Request, model: type[M]) -> list[M]:
        body = await read_json(request, settings.max_body_bytes)
        try:
            bounds = TimeBounds(datetime.now(UTC), settings.max_future_skew)
            return accept_all(body, model_validator(model, bounds), settings.max_batch_events)
        except BatchRefused as exc:
            raise refused_batch(exc, "stored") from None

    async def load_complaint(complaint_id: str, key: Principal) -> ComplaintPublic:
        """The complaint, if the key sees its branch: one of another branch is not there for it."""
        async with engine.connect() as db:
            row = await views.complaint(db, complaint_id)
        if row is None or not key.sees(row["branch_id"]):
            raise ApiError(404, f"unknown complaint {complaint_id!r}")
        return ComplaintPublic.from_row(row)

    @router.post("/surveys", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(SurveyData))
    async def post_surveys(request: Request, _key: IngestKey) -> Accepted:
        """One survey answer or a JSON array, all or nothing; a resent survey id is stored once.

        An answer is linked to the outreach it follows: `outreach_id`, or the customer's open
        follow-up invitation. It is published to `feedback.events.v1` for scoring.
        """
        surveys = await intake(request, SurveyData)
        try:
            return Accepted(accepted=len(surveys), new=await feedback.record_surveys(surveys))
        except BatchRefused as exc:  # an item about an erased customer
            raise refused_batch(exc, "stored") from None

    @router.post("/complaints", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(ComplaintData))
    async def post_complaints(request: Request, key: IngestKey) -> Accepted:
        """One complaint or a JSON array, all or nothing; published to `feedback.events.v1`."""
        complaints = await intake(request, ComplaintData)
        try:
            new = await feedback.record_complaints(complaints, key.key_id)
        except BatchRefused as exc:  # an item about an erased customer
            raise refused_batch(exc, "stored") from None
        return Accepted(accepted=len(complaints), new=new)

    @router.patch("/complaints/{complaint_id}", responses=_COMPLAINT_ERRORS)
    async def patch_complaint(
        complaint_id: IdentifierPath, body: ComplaintUpdate, key: IngestKey
    ) -> ComplaintPublic:
        """Move a complaint along: open -> in_progress -> resolved (resolution time recorded)."""
        try:
            await feedback.update_complaint(complaint_id, body.status, key.key_id)
        except UnknownComplaint:
            raise ApiError(404, f"unknown complaint {complaint_id!r}") from None
        except ComplaintRefused as exc:
            raise ApiError(409, str(exc)) from None
        return await load_complaint(complaint_id, key)

    @router.get("/complaints/{complaint_id}", responses={404: {}})
    async def get_complaint(complaint_id: IdentifierPath, key: CustomerReader) -> ComplaintPublic:
        """One complaint and its resolution time (404 for a key that does not see its branch)."""
        return await load_complaint(complaint_id, key)

    @router.get("/customers/{customer_id}/feedback")
    async def customer_feedback(
        customer_id: CustomerIdPath, key: CustomerReader, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> CustomerFeedback:
        """The customer's survey answers and complaints, newest first (empty lists when none); a
        key scoped to branches sees only customers last seen in one of them."""
        async with engine.connect() as db:
            if key.branches is not None and not key.sees(await views.customer_branch(db, customer_id)):
                raise ApiError(404, f"unknown customer {customer_id!r}")
            surveys = await views.customer_surveys(db, customer_id, limit)
            complaints = await views.customer_complaints(db, customer_id, limit)
        return CustomerFeedback(
            customer_id=customer_id,
            surveys=[SurveyPublic.model_validate(row) for row in surveys],
            complaints=[ComplaintPublic.from_row(row) for row in complaints],
        )

    @router.get("/reports/satisfaction")
    async def satisfaction(
        key: OpsKey,
        period: PeriodQuery,
        by: Literal["tier", "stage", "branch", "channel"] = "tier",
    ) -> list[dict[str, Any]]:
        """NPS (promoters % - detractors %) and CSAT average by tier, stage, branch or channel."""
        async with engine.connect() as db:
            return await views.satisfaction(db, period.start, period.end, by, key.branch_scope(None))

    @router.get("/reports/complaints")
    async def complaint_report(key: OpsKey, period: PeriodQuery) -> list[dict[str, Any]]:
        """Complaint volume, open count and average resolution time by tier and severity."""
        async with engine.connect() as db:
            return await views.complaints(db, period.start, period.end, key.branch_scope(None))

    @router.get("/reports/effectiveness")
    async def effectiveness(
        _key: BankWideOpsKey,
        period: PeriodQuery,
        days: Annotated[int, Query(ge=1, le=365)] = 30,
    ) -> dict[str, Any]:
        """Per action and tier: reach, conversion, satisfaction after contact, and tier movement
        within `days` against customers who were not contacted (observational); and `holdouts`:
        per experiment, tier and action, treated against randomly held-out customers on tier
        movement and later NPS, each difference with its 95% interval and conclusion..
        It compares across the bank, so a key scoped to branches may not read it."""
        async with engine.connect() as db:
            return await views.effectiveness(db, period.start, period.end, days)

    router.include_router(whoami_router())
    return router
