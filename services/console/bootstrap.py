"""Wires the console: settings, the services' client, sessions, pages, static files, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.console.api import TEMPLATES, CsrfRefused, SignInRequired, build_router
from services.console.client import Upstream, UpstreamError
from services.console.i18n import Formatter, negotiate
from services.console.sessions import Expiry, SessionStore
from shared.http import create_app
from shared.settings import Settings

DESCRIPTION = """The web workspace of TierFlow for operations staff and RMs: it reads and acts only
through the four services' APIs, with the signed-in user's own key."""
# No script or style from anywhere but the console itself, and nothing inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
STATIC = Path(__file__).parent / "static"


def build_app(settings: Settings, clock: Callable[[], datetime] | None = None) -> FastAPI:
    upstream = Upstream(settings)
    expiry = Expiry(
        idle=timedelta(seconds=settings.console_session_idle_s),
        absolute=timedelta(seconds=settings.console_session_max_s),
    )
    sessions = SessionStore(expiry)
    now = clock or (lambda: datetime.now(UTC))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstream.close()

    async def scoring_reachable() -> bool:
        return await upstream.healthy("scoring")

    app = create_app(
        service="console",
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"scoring": scoring_reachable},
        routers=[],
        description=DESCRIPTION,
        retry_after_s=settings.retry_after_s,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(build_router(upstream, sessions, settings.base_currency, now))
    _install_page_errors(app, settings.base_currency)
    _install_security_headers(app)
    return app


def _install_page_errors(app: FastAPI, currency: str) -> None:
    def problem(request: Request, status: int, message_key: str, detail: str) -> Response:
        fmt = Formatter(
            negotiate(request.headers.get("accept-language"), request.cookies.get("tierflow_lang")), currency
        )
        context = {**fmt.globals(), "session": None, "identity": None, "path": request.url.path, "query": "",
                   "message_key": message_key, "detail": detail}  # fmt: skip
        return TEMPLATES.TemplateResponse(request, "problem.html", context, status_code=status)

    @app.exception_handler(SignInRequired)
    async def sign_in(_request: Request, _exc: SignInRequired) -> Response:
        return RedirectResponse("/", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf(request: Request, _exc: CsrfRefused) -> Response:
        return problem(request, 403, "error.csrf", "")

    @app.exception_handler(UpstreamError)
    async def upstream(request: Request, exc: UpstreamError) -> Response:
        return problem(request, exc.status if exc.status in (403, 404) else 502, "unavailable", exc.detail)


def _install_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response
