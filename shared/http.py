"""What every TierFlow HTTP service shares: probes, metrics, errors and API-key auth."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import ApiKeyring, Principal, Role
from shared.db import is_data_error, is_transient
from shared.errors import TierFlowError
from shared.logs import get_logger
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

ReadinessCheck = Callable[[], Awaitable[bool]]
# What a route may answer besides success, by status code, as `responses=` takes it.
Responses = dict[int | str, dict[str, Any]]
log = get_logger(__name__)
_bearer = HTTPBearer(auto_error=False, description="An API key from TIERFLOW_API_KEYS")


class ApiError(Exception):
    """An error answered with a specific status and a human-readable `detail`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def require(role: Role, *alternatives: Role) -> Callable[..., Principal]:
    """A dependency admitting keys that hold `role` or an alternative (admin holds every role)."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        keyring: ApiKeyring = request.app.state.keyring
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "missing API key: send Authorization: Bearer <key>", headers=_CHALLENGE)
        principal = keyring.authenticate(credentials.credentials)
        if principal is None:
            raise ApiError(401, "invalid API key", headers=_CHALLENGE)
        if not any(principal.may(r) for r in (role, *alternatives)):
            wanted = " or ".join(repr(r.value) for r in (role, *alternatives))
            raise ApiError(403, f"this key lacks the {wanted} role")
        request.state.principal = principal
        return principal

    return check


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def create_app(
    *,
    service: str,
    keyring: ApiKeyring,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    readiness: Mapping[str, ReadinessCheck],
    routers: list[APIRouter],
    description: str,
    retry_after_s: int = 5,
) -> FastAPI:
    app = _TierFlowApi(
        title=f"TierFlow {service}",
        version="1.0.0",
        description=description,
        lifespan=lifespan,
    )
    app.state.keyring = keyring
    app.include_router(_probes(service, readiness))
    app.include_router(whoami_router())
    for router in routers:
        app.include_router(router)
    _install_error_handlers(app, retry_after_s)
    _install_nul_guard(app)
    _install_metrics_middleware(app)
    return app


# Every 4xx/5xx TierFlow answers has this shape, the 422 of request validation included.
_PROBLEM = {
    "title": "Problem",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
}
_PROBLEM_ITEM = {
    "title": "Problem item",
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "index": {"type": "integer", "description": "position in a batch"},
        "field": {"type": "string"},
        "message": {"type": "string"},
    },
}


class _TierFlowApi(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """The generated document, made true to the API: TierFlow's error shape instead of FastAPI's
        default, and definitions of hand-written request bodies hoisted where references resolve."""
        if self.openapi_schema:
            return self.openapi_schema
        document = get_openapi(
            title=self.title, version=self.version, description=self.description, routes=self.routes
        )
        components: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        _hoist_definitions(document.get("paths", {}), components)
        components["HTTPValidationError"] = _PROBLEM
        components["ValidationError"] = _PROBLEM_ITEM
        self.openapi_schema = document
        return document


def _hoist_definitions(node: Any, components: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            _hoist_definitions(definition, components)
            components.setdefault(name, definition)
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + reference.removeprefix("#/$defs/")
        for value in node.values():
            _hoist_definitions(value, components)
    elif isinstance(node, list):
        for item in node:
            _hoist_definitions(item, components)


def _probes(service: str, readiness: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/readyz",
        summary="Its database and broker are reachable",
        responses={503: {"description": "A dependency is unreachable"}},
    )
    async def readyz() -> JSONResponse:
        checks = {name: await check() for name, check in readiness.items()}
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "service": service, "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def whoami_router() -> APIRouter:
    # Imported here: shared.whoami builds on `require` from this module.
    from shared.whoami import whoami_router as build

    return build()


def _install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return ApiError(422, "the request is invalid", errors=errors).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), headers=exc.headers).response()

    @app.exception_handler(DBAPIError)
    async def database_refused(_request: Request, exc: DBAPIError) -> JSONResponse:
        # Input the database cannot store (a NUL character, an invalid byte sequence) is the
        # client's problem; a lost connection is temporary; anything else is ours.
        if is_data_error(exc):
            return ApiError(422, "the request holds values the database cannot store").response()
        if is_transient(exc):
            headers = {"Retry-After": str(retry_after_s)}
            return ApiError(503, "the database is unavailable", headers=headers).response()
        log.error("database error", error_class=type(exc.orig).__name__)
        return ApiError(500, "internal error").response()

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", error_class=type(exc).__name__)
        return ApiError(500, "internal error").response()

    @app.exception_handler(TierFlowError)
    async def tierflow_error(_request: Request, exc: TierFlowError) -> JSONResponse:
        if exc.retriable:
            headers = {"Retry-After": str(retry_after_s)}
            return ApiError(503, f"temporarily unavailable: {exc}", headers=headers).response()
        log.error("unhandled TierFlow error", error=str(exc))
        return ApiError(500, "internal error").response()


_NUL = ApiError(400, "NUL characters are not allowed in the path or query")


def _install_nul_guard(app: FastAPI) -> None:
    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # PostgreSQL text cannot hold NUL: refuse it at the door rather than deep in a query.
        if "\x00" in request.url.path or "%00" in request.url.query:
            return _NUL.response()
        return await call_next(request)


def _install_metrics_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, path).observe(time.perf_counter() - started)
        return response
