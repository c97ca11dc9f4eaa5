"""What every TierFlow HTTP service shares: probes, metrics, errors and API-key auth."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import ApiKeyring, Principal, Role
from shared.errors import TierFlowError
from shared.logs import get_logger
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

ReadinessCheck = Callable[[], Awaitable[bool]]
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
    app = FastAPI(
        title=f"TierFlow {service}",
        version="1.0.0",
        description=description,
        lifespan=lifespan,
    )
    app.state.keyring = keyring
    app.include_router(_probes(service, readiness))
    for router in routers:
        app.include_router(router)
    _install_error_handlers(app, retry_after_s)
    _install_metrics_middleware(app)
    return app


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

    @app.exception_handler(TierFlowError)
    async def tierflow_error(_request: Request, exc: TierFlowError) -> JSONResponse:
        if exc.retriable:
            headers = {"Retry-After": str(retry_after_s)}
            return ApiError(503, f"temporarily unavailable: {exc}", headers=headers).response()
        log.error("unhandled TierFlow error", error=str(exc))
        return ApiError(500, "internal error").response()


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
