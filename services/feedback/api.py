"""HTTP entrypoint of feedback: survey and complaint intake, complaint lifecycle, reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback import reports
from services.feedback.domain.complaints import ComplaintRefused
from services.feedback.handlers import Feedback, UnknownComplaint
from shared.auth import Principal, Role
from shared.batches import BatchRejected, BatchTooLarge, ItemInvalid, accept_all
from shared.bodies import read_json
from shared.contracts.envelope import field_errors
from shared.contracts.outbound import ComplaintData, ComplaintStatus, SurveyData
from shared.contracts.types import IdentifierPath, TimeBounds
from shared.http import ApiError, require
from shared.settings import Settings

IngestKey = Annotated[Principal, Depends(require(Role.INGEST))]
OpsKey = Annotated[Principal, Depends(require(Role.OPS))]
M = TypeVar("M", bound=BaseModel)
_INTAKE_ERRORS = {
    413: {"description": "Over the size limit"},
    415: {"description": "Not JSON"},
    422: {"description": "At least one item is invalid; nothing was stored"},
}


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


def _body(model: type[BaseModel]) -> dict[str, object]:
    schema = model.model_json_schema()
    content = {"schema": {"oneOf": [schema, {"type": "array", "items": schema}]}}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def _validator(model: type[M], bounds: TimeBounds) -> Any:
    def validate(item: object) -> M:
        try:
            return model.model_validate(item, context=bounds.context())
        except ValidationError as exc:
            raise ItemInvalid([(e.field, e.message) for e in field_errors(exc)]) from None

    return validate


def build_router(settings: Settings, engine: AsyncEngine, feedback: Feedback) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["feedback"])

    async def intake(request: Request, model: type[M]) -> list[M]:
        body = await read_json(request, settings.max_body_bytes)
        try:
            bounds = TimeBounds(datetime.now(UTC), timedelta(seconds=settings.max_future_skew_s))
            return accept_all(body, _validator(model, bounds), settings.max_batch_events)
        except BatchTooLarge as exc:
            raise ApiError(413, str(exc)) from None
        except BatchRejected as exc:
            errors = [{"index": e.index, "field": e.field, "message": e.message} for e in exc.errors]
            raise ApiError(422, f"{exc.total} problems found; nothing was stored", errors=errors) from None

    @router.post("/surveys", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(SurveyData))  # type: ignore[arg-type]
    async def post_surveys(request: Request, _key: IngestKey) -> Accepted:
        """One survey answer or a JSON array, all or nothing; a resent survey id is stored once.

        An answer is linked to the outreach it follows: `outreach_id`, or the customer's open
        follow-up invitation. It is published to `feedback.events.v1` for scoring.
        """
        surveys = await intake(request, SurveyData)
        return Accepted(accepted=len(surveys), new=await feedback.record_surveys(surveys))

    @router.post("/complaints", status_code=202, responses=_INTAKE_ERRORS, openapi_extra=_body(ComplaintData))  # type: ignore[arg-type]
    async def post_complaints(request: Request, key: IngestKey) -> Accepted:
        """One complaint or a JSON array, all or nothing; published to `feedback.events.v1`."""
        complaints = await intake(request, ComplaintData)
        return Accepted(
            accepted=len(complaints), new=await feedback.record_complaints(complaints, key.key_id)
        )

    @router.patch("/complaints/{complaint_id}", responses={404: {}, 409: {}})
    async def patch_complaint(
        complaint_id: IdentifierPath, body: ComplaintUpdate, key: IngestKey
    ) -> ComplaintPublic:
        """Move a complaint along: open -> in_progress -> resolved (resolution time recorded)."""
        try:
            row = await feedback.update_complaint(complaint_id, body.status, key.key_id)
        except UnknownComplaint:
            raise ApiError(404, f"unknown complaint {complaint_id!r}") from None
        except ComplaintRefused as exc:
            raise ApiError(409, str(exc)) from None
        return _complaint(row)

    @router.get("/complaints/{complaint_id}", responses={404: {}})
    async def get_complaint(complaint_id: IdentifierPath, _key: OpsKey) -> ComplaintPublic:
        """One complaint and its resolution time."""
        async with engine.connect() as db:
            row = await feedback.store(db).complaint(complaint_id)
        if row is None:
            raise ApiError(404, f"unknown complaint {complaint_id!r}")
        return _complaint(row)

    @router.get("/reports/satisfaction")
    async def satisfaction(
        _key: OpsKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
        by: Literal["tier", "stage", "branch", "channel"] = "tier",
    ) -> list[dict[str, Any]]:
        """NPS (promoters % - detractors %) and CSAT average by tier, stage, branch or channel."""
        async with engine.connect() as db:
            return await reports.satisfaction(db, start, end, by)

    @router.get("/reports/complaints")
    async def complaint_report(
        _key: OpsKey,
        start: Annotated[AwareDatetime, Query(alias="from")],
        end: Annotated[AwareDatetime, Query(alias="to")],
    ) -> list[dict[str, Any]]:
        """Complaint volume, open count and average resolution time by tier and severity."""
        async with engine.connect() as db:
            return await reports.complaints(db, start, end)

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
            return await reports.effectiveness(db, start, end, days)

    return router


def _complaint(row: dict[str, Any]) -> ComplaintPublic:
    hours = None
    if row["resolved_at"] is not None:
        hours = round((row["resolved_at"] - row["opened_at"]).total_seconds() / 3600, 2)
    return ComplaintPublic(
        **{k: row[k] for k in ComplaintPublic.model_fields if k in row}, resolution_hours=hours
    )
