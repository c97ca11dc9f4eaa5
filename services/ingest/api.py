"""HTTP entrypoint of ingest: validate, publish, answer. No business rules live here."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.ingest.admission import Admission
from services.ingest.domain.intake import BatchRejected, BatchTooLarge, accept_batch
from services.ingest.metrics import EVENTS_ACCEPTED, REQUESTS_REJECTED
from services.ingest.publisher import to_records
from shared.auth import Principal, Role
from shared.bodies import read_json
from shared.contracts.envelope import CloudEvent, ValidationRules, ValidEvent
from shared.contracts.inbound import CUSTOMER, INBOUND_DATA_MODELS, CustomerData
from shared.contracts.types import CustomerIdPath
from shared.http import ApiError, require
from shared.kafka import LazyProducer
from shared.settings import Settings
from shared.topics import Topics

IngestKey = Annotated[Principal, Depends(require(Role.INGEST))]
PROFILE_BODY_BYTES = 64 * 1024


class Accepted(BaseModel):
    accepted: int
    topic: str
    ids: list[str]


def _json_body(schema: dict[str, object]) -> dict[str, object]:
    content = {"schema": schema}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


_EVENT_SCHEMA = CloudEvent.model_json_schema()
_EVENTS_BODY = _json_body({"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]})
_PROFILE_BODY = _json_body(CustomerData.model_json_schema())

_ERRORS = {
    400: {"description": "The body is not JSON"},
    401: {"description": "No valid API key"},
    403: {"description": "The key lacks the ingest role"},
    413: {"description": "The body or batch is over the size limit"},
    415: {"description": "The content type is not JSON"},
    422: {"description": "At least one event is invalid; nothing was published"},
    429: {"description": "Ingest is at its limit of requests or memory in flight; retry after Retry-After"},
    503: {"description": "The broker cannot take the events now; retry after Retry-After"},
}


def build_router(settings: Settings, producer: LazyProducer) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])
    topic = Topics.from_settings(settings).bank_events
    admission = Admission(
        settings.ingest_max_in_flight,
        settings.ingest_memory_budget_bytes,
        settings.DECODED_BYTES_PER_BODY_BYTE,
        settings.retry_after_s,
    )

    def rules() -> ValidationRules:
        return ValidationRules(
            now=datetime.now(UTC),
            max_future_skew=timedelta(seconds=settings.max_future_skew_s),
            accepts_currency=settings.accepts_currency,
            data_models=INBOUND_DATA_MODELS,
        )

    def accept(body: object) -> list[ValidEvent]:
        """The batch's events, or its refusal. A refusal is answered after the request's memory
        charge is released, so it is raised only once nothing refers to the decoded body."""
        try:
            return accept_batch(body, rules(), settings.max_batch_events)
        except BatchTooLarge as exc:
            REQUESTS_REJECTED.labels(reason="batch_too_large").inc()
            refusal = ApiError(413, str(exc))
        except BatchRejected as exc:
            REQUESTS_REJECTED.labels(reason="invalid_event").inc()
            errors = [{"index": e.index, "field": e.field, "message": e.message} for e in exc.errors]
            refusal = ApiError(422, f"{exc.total} problems found; nothing was published", errors=errors)
        del body
        raise refusal

    async def publish(events: list[ValidEvent]) -> Accepted:
        records = to_records(events, topic)
        accepted = Counter(event.envelope.type for event in events)
        ids = [event.envelope.id for event in events]
        # Only the encoded records wait for the broker; the validated events cost ten times more.
        del events
        await producer.publish(records)
        for event_type, count in accepted.items():
            EVENTS_ACCEPTED.labels(type=event_type).inc(count)
        return Accepted(accepted=len(ids), topic=topic, ids=ids)

    @router.post(
        "/events",
        status_code=202,
        responses=_ERRORS,  # type: ignore[arg-type]
        openapi_extra=_EVENTS_BODY,
        dependencies=[Depends(admission.for_bodies_up_to(settings.max_body_bytes))],
    )
    async def post_events(request: Request, _key: IngestKey) -> Accepted:
        """Publish one CloudEvent or a JSON array of up to 5,000, all or nothing.

        202 means the broker acknowledged every event (acks=all). On 503 some events may
        already be on the topic: resend the same batch; events with an id already seen
        are never counted twice.
        """
        return await publish(accept(await read_json(request, settings.max_body_bytes)))

    @router.put(
        "/customers/{customer_id}/profile",
        status_code=202,
        responses=_ERRORS,  # type: ignore[arg-type]
        openapi_extra=_PROFILE_BODY,
        dependencies=[Depends(admission.for_bodies_up_to(PROFILE_BODY_BYTES))],
    )
    async def put_profile(customer_id: CustomerIdPath, request: Request, _key: IngestKey) -> Accepted:
        """Upsert a customer profile without writing a CloudEvent: it is published as `bank.customer.v1`."""
        body = await read_json(request, PROFILE_BODY_BYTES)
        if not isinstance(body, dict):
            raise ApiError(422, "the profile must be a JSON object", errors=[])
        event = {
            "specversion": "1.0",
            "id": f"profile-{uuid.uuid4()}",
            "source": "tierflow/ingest/profile",
            "type": CUSTOMER,
            "time": datetime.now(UTC).isoformat(),
            "subject": customer_id,
            "data": {**body, "customer_id": customer_id},
        }
        try:
            events = accept_batch(event, rules(), 1)
        except BatchRejected as exc:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            raise ApiError(422, "the profile is invalid; nothing was published", errors=errors) from None
        return await publish(events)

    return router
