"""HTTP entrypoint of ingest: read the body, hand it to the service layer, answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.ingest.admission import Admission, BodyCharge
from services.ingest.domain.intake import BatchRejected, ProfileRejected
from services.ingest.handlers import Ingest
from services.ingest.schemas import Accepted
from shared.auth import Principal, Role
from shared.batches import BatchRefused
from shared.bodies import read_json, refused_batch
from shared.contracts.envelope import CloudEvent
from shared.contracts.inbound import CustomerData
from shared.contracts.types import CustomerIdPath
from shared.http import ApiError, Responses, within_rate
from shared.throttle import KeyRates
from shared.whoami import whoami_router

PROFILE_BODY_BYTES = 64 * 1024


def _json_body(schema: dict[str, object]) -> dict[str, object]:
    content = {"schema": schema}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


_EVENT_SCHEMA = CloudEvent.model_json_schema()
_EVENTS_BODY = _json_body({"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]})
_PROFILE_BODY = _json_body(CustomerData.model_json_schema())

_ERRORS: Responses = {
    400: {"description": "The body is not JSON, or nests more than 16 deep"},
    401: {"description": "No valid API key"},
    403: {"description": "The key lacks the ingest role"},
    408: {"description": "The body did not arrive within TIERFLOW_INGEST_BODY_TIMEOUT_S"},
    413: {"description": "The body or batch is over the size limit"},
    415: {"description": "The content type is not JSON"},
    422: {"description": "At least one event is invalid; nothing was published"},
    429: {
        "description": "Ingest is at its limit of requests or memory in flight, or the key over its"
        " request rate; retry after Retry-After"
    },
    503: {"description": "The broker cannot take the events now; retry after Retry-After"},
}


def build_router(ingest: Ingest) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])
    settings = ingest.settings
    admission = Admission(
        settings.ingest_max_in_flight,
        settings.ingest_memory_budget_bytes,
        settings.DECODED_BYTES_PER_BODY_BYTE,
        settings.retry_after_s,
    )
    # A local dependency: annotations are resolved in the module, so it is a default, not Annotated.
    admitted = Depends(admission.admit)
    key_rates = KeyRates(settings.ingest_key_rate_per_s, settings.ingest_key_burst)
    rate = f"{settings.ingest_key_rate_per_s:g} requests a second, {settings.ingest_key_burst} at once"
    within_key_rate = Depends(within_rate(key_rates, Role.INGEST, rate))
    body_timeout_s = settings.ingest_body_timeout_s

    @router.post(
        "/events",
        status_code=202,
        responses=_ERRORS,
        openapi_extra=_EVENTS_BODY,
    )
    async def post_events(
        request: Request, _key: Principal = within_key_rate, charge: BodyCharge = admitted
    ) -> Accepted:
        """Publish one CloudEvent or a JSON array of up to 5,000, all or nothing.

        202 means the broker acknowledged every event (acks=all). On 503 some events may
        already be on the topic: resend the same batch; events with an id already seen
        are never counted twice.
        """
        # The decoded body is handed on, not kept here: the service layer lets go of it early.
        try:
            ids = await ingest.publish_events(
                await read_json(
                    request, settings.max_body_bytes, on_received=charge.received, timeout_s=body_timeout_s
                )
            )
        except BatchRefused as exc:
            raise refused_batch(exc, "published") from None
        return Accepted(accepted=len(ids), topic=ingest.topic, ids=ids)

    @router.put(
        "/customers/{customer_id}/profile",
        status_code=202,
        responses=_ERRORS,
        openapi_extra=_PROFILE_BODY,
    )
    async def put_profile(
        customer_id: CustomerIdPath,
        request: Request,
        _key: Principal = within_key_rate,
        charge: BodyCharge = admitted,
    ) -> Accepted:
        """Upsert a customer profile without writing a CloudEvent: it is published as `bank.customer.v1`."""
        body = await read_json(
            request, PROFILE_BODY_BYTES, on_received=charge.received, timeout_s=body_timeout_s
        )
        try:
            ids = await ingest.publish_profile(customer_id, body)
        except ProfileRejected as exc:
            raise ApiError(422, str(exc), errors=[]) from None
        except BatchRejected as exc:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            raise ApiError(422, "the profile is invalid; nothing was published", errors=errors) from None
        return Accepted(accepted=len(ids), topic=ingest.topic, ids=ids)

    router.include_router(whoami_router())
    return router
