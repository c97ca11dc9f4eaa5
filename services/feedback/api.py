"""HTTP entrypoint of feedback: survey and complaint intake, complaint lifecycle, reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel
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
from shared.http import ApiError, Responses, require
from shared.settings import Settings

IngestKey = Annotated[Principal, Depends(require(Role.INGEST))]
OpsKey = Annotated[Principal, Depends(require(Role.OPS))]
ReaderKey = Annotated[Principal, Depends(require(Role.OPS, Role.RM))]
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

    async def load_complaint(complaint_id: str) -> ComplaintPublic:
        async with engine.connect() as db:
            row = await views.complaint(db, complaint_id)
        if row is None:
            raise ApiError(404, f"unknown complaint {complaint_id!r}")
        return ComplaintPublic.from_row(row)

    @router.post("/surveys", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(SurveyData))
    async def post_surveys(request: Request, _key: IngestKey) -> Accepted:
        """One survey answer or a JSON array, all or nothing; a resent survey id is stored once.

        An answer is linked to the outreach it follows: `outreach_id`, or the customer's open
        follow-up invitation. It is published to `feedback.events.v1` for scoring.
        """
        surveys = await intake(request, SurveyData)
        return Accepted(accepted=len(surveys), new=await feedback.record_surveys(surveys))

    @router.post("/complaints", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(ComplaintData))
    async def post_complaints(request: Request, key: IngestKey) -> Accepted:
        """One complaint or a JSON array, all or nothing; published to `feedback.events.v1`."""
        complaints = await intake(request, ComplaintData)
        return Accepted(
            accepted=len(complaints), new=await feedback.record_complaints(complaints, key.key_id)
        )

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
        return await load_complaint(complaint_id)

    @router.get("/complaints/{complaint_id}", responses={404: {}})
    async def get_complaint(complaint_id: IdentifierPath, _key: OpsKey) -> ComplaintPublic:
        """One complaint and its resolution time."""
        return await load_complaint(complaint_id)

    @router.get("/customers/{customer_id}/feedback")
    async def customer_feedback(
        customer_id: CustomerIdPath, _key: ReaderKey, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> CustomerFeedback:
        """The customer's survey answers and complaints, newest first (empty lists when none)."""
        async with engine.connect() as db:
            surveys = await views.customer_surveys(db, customer_id, limit)
            complaints = await views.customer_complaints(db, customer_id, limit)
        return CustomerFeedback(
            customer_id=customer_id,
            surveys=[SurveyPublic.model_validate(row) for row in surveys],
            complaints=[ComplaintPublic.from_row(row) for row in complaints],
        )

    @router.get("/reports/satisfaction")
    async def satisfaction(
        _key: OpsKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
        by: Literal["tier", "stage", "branch", "channel"] = "tier",
    ) -> list[dict[str, Any]]:
        """NPS (promoters % - detractors %) and CSAT average by tier, stage, branch or channel."""
        async with engine.connect() as db:
            return await views.satisfaction(db, start, end, by)

    @router.get("/reports/complaints")
    async def complaint_report(
        _key: OpsKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
    ) -> list[dict[str, Any]]:
        """Complaint volume, open count and average resolution time by tier and severity."""
        async with engine.connect() as db:
            return await views.complaints(db, start, end)

    @router.get("/reports/effectiveness")
    async def effectiveness(
        _key: OpsKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
        days: Annotated[int, Query(ge=1, le=365)] = 30,
    ) -> dict[str, Any]:
        """Per action and tier: reach, conversion, satisfaction after contact, and tier movement
        within `days` against comparable customers who were not contacted."""
        async with engine.connect() as db:
            return await views.effectiveness(db, start, end, days)

    return router
