"""What every TierFlow HTTP service shares: probes, metrics, errors and API-key auth."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import ApiKeyring, Principal, Role
from shared.db import is_data_error, is_transient
from shared.errors import TierFlowError
from shared.logs import get_logger
from shared.metrics import AUTH_FAILURES, HTTP_LATENCY, HTTP_REQUESTS
from shared.settings import Settings
from shared.throttle import FailureWindows, KeyRates

ReadinessCheck = Callable[[], Awaitable[bool]]
# A dependency that admits a key or refuses the request (401, 403, 429).
KeyCheck = Callable[..., Awaitable[Principal]]
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


@dataclass(frozen=True)
class Period:
    """A report's `from` and `to` query parameters: both with a time zone, `to` not before `from`."""

    start: datetime
    end: datetime


def _period(
    start: Annotated[AwareDatetime, Query(alias="from")], end: Annotated[AwareDatetime, Query(alias="to")]
) -> Period:
    if end < start:
        raise ApiError(422, "to must not be before from", errors=[])
    return Period(start, end)


PeriodQuery = Annotated[Period, Depends(_period)]


@dataclass(frozen=True)
class HttpLimits:
    """How a service guards its door: failed authentications per client address and window, and
    how long a readiness answer is reused."""

    auth_failure_limit: int = 100
    auth_failure_window_s: float = 60.0
    readiness_cache_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(settings.auth_failure_limit, settings.auth_failure_window_s, settings.readiness_cache_s)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def authenticated(request: Request, credentials: Credentials) -> Principal:
    """A dependency admitting any valid key. Failed attempts are counted per client address; an
    address with too many in a window gets 429 for every request without a valid key, so guessing
    keys costs a window per few attempts, while the valid keys of others behind the same address
    (a proxy, the console, NAT) keep working. (Async, like the checks built on it, so that the
    counts are kept on the event loop rather than from worker threads at once.)"""
    failures: FailureWindows = request.app.state.auth_failures
    keyring: ApiKeyring = request.app.state.keyring
    principal = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        principal = keyring.authenticate(credentials.credentials)
    if principal is not None:
        request.state.principal = principal
        return principal
    address = request.client.host if request.client else "unknown"
    now = time.monotonic()
    wait = failures.refused_for(address, now)
    if wait is not None:
        AUTH_FAILURES.labels("throttled").inc()
        retry = {"Retry-After": str(math.ceil(wait))}
        raise ApiError(429, "too many failed authentications from this address; retry later", headers=retry)
    failures.failed(address, now)
    if credentials is None or credentials.scheme.lower() != "bearer":
        AUTH_FAILURES.labels("missing").inc()
        raise ApiError(401, "missing API key: send Authorization: Bearer <key>", headers=_CHALLENGE)
    AUTH_FAILURES.labels("invalid").inc()
    raise ApiError(401, "invalid API key", headers=_CHALLENGE)


Authenticated = Annotated[Principal, Depends(authenticated)]


def require(role: Role, *alternatives: Role) -> KeyCheck:
    """A dependency admitting keys that hold `role` or an alternative (admin holds every role)."""

    async def check(principal: Authenticated) -> Principal:
        if not any(principal.may(r) for r in (role, *alternatives)):
            wanted = " or ".join(repr(r.value) for r in (role, *alternatives))
            raise ApiError(403, f"this key lacks the {wanted} role")
        return principal

    return check


def require_branch_reader(role: Role) -> KeyCheck:
    """A dependency admitting keys with `role` and RM keys bound to a branch, which read the
    records of their branch; the route narrows what it answers to `Principal.branches`."""

    async def check(principal: Authenticated) -> Principal:
        if principal.may(role) or principal.rm_id is not None:
            return principal
        if principal.may(Role.RM):
            raise ApiError(
                403, "an rm key reads customers only when bound to an RM and branch (KEY=rm:RM_ID@BRANCH)"
            )
        raise ApiError(403, f"this key lacks the {role.value!r} role, and is not an rm key bound to a branch")

    return check


def require_whole_bank(role: Role, what: str) -> KeyCheck:
    """A dependency admitting keys with `role` that see the whole bank: `what` compares across
    branches, so it cannot be narrowed to some."""
    allowed = Depends(require(role))

    async def check(principal: Principal = allowed) -> Principal:
        if principal.branches is not None:
            raise ApiError(403, f"{what} compares across the bank; this key sees some branches only")
        return principal

    return check


def within_rate(limits: KeyRates, role: Role, retry_hint: str) -> KeyCheck:
    """A dependency admitting keys with `role` while they stay within their request rate;
    beyond it, 429 with the seconds until the key may send again."""
    # A local dependency: annotations are resolved in the module, so it is a default, not Annotated.
    allowed = Depends(require(role))

    async def check(principal: Principal = allowed) -> Principal:
        wait = limits.take(principal.key_id, time.monotonic())
        if wait is not None:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))}
            raise ApiError(429, f"this key is over its request rate ({retry_hint})", headers=retry)
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
    limits: HttpLimits | None = None,
) -> FastAPI:
    app = _TierFlowApi(
        title=f"TierFlow {service}",
        version="1.0.0",
        description=description,
        lifespan=lifespan,
    )
    limits = limits or HttpLimits()
    app.state.keyring = keyring
    app.state.auth_failures = FailureWindows(limits.auth_failure_limit, limits.auth_failure_window_s)
    app.include_router(_probes(service, readiness, limits.readiness_cache_s))
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


def _probes(service: str, readiness: Mapping[str, ReadinessCheck], cache_s: float) -> APIRouter:
    router = APIRouter(tags=["operations"])
    answered = _CachedReadiness(readiness, cache_s)

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/readyz",
        summary="Its database and broker are reachable",
        responses={503: {"description": "A dependency is unreachable"}},
    )
    async def readyz() -> JSONResponse:
        checks = await answered.checks()
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "service": service, "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class _CachedReadiness:
    """The checks run at most once per `cache_s`, together, however many probes ask: a probe
    storm costs the database and the broker one round trip a second, not one per probe."""

    def __init__(self, readiness: Mapping[str, ReadinessCheck], cache_s: float) -> None:
        self._readiness = readiness
        self._cache_s = cache_s
        self._lock = asyncio.Lock()
        self._answer: dict[str, bool] = {}
        self._fresh_until = float("-inf")

    async def checks(self) -> dict[str, bool]:
        async with self._lock:
            if time.monotonic() >= self._fresh_until:
                names = list(self._readiness)
                results = await asyncio.gather(*(self._readiness[name]() for name in names))
                self._answer = dict(zip(names, results, strict=True))
                self._fresh_until = time.monotonic() + self._cache_s
            return self._answer


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
