"""HTTP entrypoint of the console: pages, forms and sign-in; each route only translates.

No `from __future__ import annotations` here: FastAPI reads the dependency aliases defined
inside `build_router` from the annotations, which must therefore be evaluated at once.
"""

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import views
from services.console.client import Upstream, UpstreamError, UserClient
from services.console.i18n import LANGUAGES, Formatter, negotiate
from services.console.sessions import Identity, Session, SessionStore
from shared.contracts.types import Stage, Tier

SESSION_COOKIE = "tierflow_session"
SIGNIN_COOKIE = "tierflow_signin"
LANGUAGE_COOKIE = "tierflow_lang"
MAX_POLICY_BYTES = 512 * 1024
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
# `{% if panel is failed %}`: a panel whose service refused or failed shows why, the page stays up.
TEMPLATES.env.tests["failed"] = lambda value: isinstance(value, UpstreamError)
Clock = Callable[[], datetime]


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class CsrfRefused(Exception):
    """A state-changing form came without this session's token."""


def build_router(upstream: Upstream, sessions: SessionStore, currency: str, clock: Clock) -> APIRouter:
    router = APIRouter()

    def formatter(request: Request) -> Formatter:
        chosen = request.cookies.get(LANGUAGE_COOKIE)
        return Formatter(negotiate(request.headers.get("accept-language"), chosen), currency)

    def current(request: Request) -> Session:
        session = sessions.touch(request.cookies.get(SESSION_COOKIE), clock())
        if session is None:
            raise SignInRequired
        return session

    async def checked(request: Request) -> Session:
        session = current(request)
        form = await request.form()
        token = form.get("csrf_token")
        if not session.csrf_matches(token if isinstance(token, str) else None):
            raise CsrfRefused
        return session

    SessionDep = Annotated[Session, Depends(current)]
    FormSession = Annotated[Session, Depends(checked)]

    def page(
        request: Request, template: str, session: Session | None, status: int = 200, **values: Any
    ) -> Response:
        fmt = formatter(request)
        context = {
            **fmt.globals(), "session": session, "identity": session.identity if session else None,
            "path": request.url.path, "query": request.url.query, **values,
        }  # fmt: skip
        return TEMPLATES.TemplateResponse(request, template, context, status_code=status)

    def user(session: Session) -> UserClient:
        return upstream.as_user(session.api_key, session.identity.rm_id)

    async def shown(
        request: Request, session: Session, template: str, load: Awaitable[dict[str, Any]], **values: Any
    ) -> Response:
        try:
            loaded = await load
        except UpstreamError as exc:
            return problem(request, session, exc)
        return page(request, template, session, **loaded, **values)

    def problem(request: Request, session: Session | None, exc: UpstreamError) -> Response:
        key = {403: "not_permitted", 404: "not_found"}.get(exc.status, "unavailable")
        status = exc.status if exc.status in (403, 404, 409, 422) else 502
        return page(request, "problem.html", session, status=status, message_key=key, detail=exc.detail)

    # -- Sign-in ------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request, start: str | None = None, end: str | None = None,
                   branch: str | None = None) -> Response:  # fmt: skip
        session = sessions.touch(request.cookies.get(SESSION_COOKIE), clock())
        if session is None:
            return signin_page(request)
        if not session.identity.reads_operations:
            return RedirectResponse("/queue", status_code=303)
        fmt = formatter(request)
        first, last = views.window(start, end, clock())
        loaded = views.overview(user(session), fmt, first, last, branch or None)
        shown_end = (last - timedelta(days=1)).date().isoformat()
        return await shown(
            request, session, "overview.html", loaded, start=first.date().isoformat(), end=shown_end,
            branch=branch or "",
        )  # fmt: skip

    def signin_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)
        response = page(request, "signin.html", None, status=status, signin_token=token, error=error)
        _cookie(request, response, SIGNIN_COOKIE, token, max_age=3600)
        return response

    @router.post("/signin")
    async def signin(
        request: Request, api_key: Annotated[str, Form(max_length=512)],
        csrf_token: Annotated[str, Form(max_length=128)],
    ) -> Response:  # fmt: skip
        expected = request.cookies.get(SIGNIN_COOKIE)
        if not expected or not secrets.compare_digest(expected, csrf_token):
            raise CsrfRefused
        try:
            me = await upstream.as_user(api_key.strip()).get("scoring", "/v1/me")
        except UpstreamError as exc:
            error = "signin.invalid" if exc.status in (401, 403) else "signin.unavailable"
            return signin_page(request, status=401 if exc.status in (401, 403) else 503, error=error)
        session = sessions.open(api_key.strip(), Identity.from_me(me), clock())
        response = RedirectResponse("/", status_code=303)
        _cookie(request, response, SESSION_COOKIE, session.session_id, max_age=None)
        response.delete_cookie(SIGNIN_COOKIE, path="/")
        return response

    @router.post("/signout")
    async def signout(session: FormSession) -> Response:
        sessions.close(session.session_id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/language/{code}")
    async def language(request: Request, code: str, back: str = "/") -> Response:
        target = back if back.startswith("/") and not back.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        if code in LANGUAGES:
            _cookie(request, response, LANGUAGE_COOKIE, code, max_age=365 * 86_400, http_only=False)
        return response

    # -- Customers ----------------------------------------------------------------------------

    @router.get("/customers", response_class=HTMLResponse)
    async def customer_list(
        request: Request, session: SessionDep, q: str = "", tier: str = "", stage: str = "",
        branch: str = "", after: str = "",
    ) -> Response:  # fmt: skip
        if q.strip():
            return RedirectResponse(f"/customers/{quote(q.strip(), safe='')}", status_code=303)
        filters = {"tier": tier or None, "stage": stage or None, "branch_id": branch or None}
        return await shown(
            request, session, "customers.html", views.customers(user(session), filters, after or None),
            tier=tier, stage=stage, branch=branch, tiers=list(Tier), stages=list(Stage),
        )  # fmt: skip

    @router.get("/customers/{customer_id}", response_class=HTMLResponse)
    async def customer(request: Request, customer_id: str, session: SessionDep, done: str = "") -> Response:
        fmt = formatter(request)
        default_expiry = (clock() + timedelta(days=30)).date().isoformat()
        return await shown(
            request, session, "customer.html", views.customer(user(session), fmt, customer_id),
            tiers=list(Tier), default_expiry=default_expiry, done=done,
        )  # fmt: skip

    @router.post("/customers/{customer_id}/override")
    async def set_override(
        request: Request, customer_id: str, session: FormSession, tier: Annotated[Tier, Form()],
        reason: Annotated[str, Form(max_length=500)], expires_on: Annotated[str, Form(max_length=10)],
    ) -> Response:  # fmt: skip
        expires_at = datetime.fromisoformat(expires_on).replace(tzinfo=UTC) + timedelta(days=1)
        body = {"tier": tier.value, "reason": reason, "expires_at": expires_at.isoformat()}
        call = user(session).put("scoring", f"/v1/customers/{customer_id}/override", body)
        return await acted(request, session, call, f"/customers/{quote(customer_id, safe='')}")

    @router.post("/customers/{customer_id}/override/clear")
    async def clear_override(request: Request, customer_id: str, session: FormSession) -> Response:
        call = user(session).delete("scoring", f"/v1/customers/{customer_id}/override")
        return await acted(request, session, call, f"/customers/{quote(customer_id, safe='')}")

    async def acted(request: Request, session: Session, call: Awaitable[Any], back: str) -> Response:
        try:
            await call
        except UpstreamError as exc:
            return problem(request, session, exc)
        return RedirectResponse(f"{back}?done=1", status_code=303)

    # -- My queue -----------------------------------------------------------------------------

    @router.get("/queue", response_class=HTMLResponse)
    async def my_queue(request: Request, session: SessionDep, done: str = "") -> Response:
        rm_id = session.identity.rm_id
        if rm_id is None:
            return page(request, "queue.html", session, unbound=True, items=[], me=None, unassigned=[])
        return await shown(request, session, "queue.html", views.queue(user(session), rm_id, clock()),
                           unbound=False, done=done)  # fmt: skip

    @router.post("/queue/{item_id}/{step}")
    async def queue_step(
        request: Request, item_id: str, step: str, session: FormSession,
        outcome: Annotated[str, Form(max_length=32)] = "", note: Annotated[str, Form(max_length=1000)] = "",
        request_survey: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:  # fmt: skip
        if step not in ("claim", "start", "complete"):
            return problem(request, session, UpstreamError(404, f"no step {step!r}"))
        body = None
        if step == "complete":
            body = {"outcome": outcome, "note": note or None, "request_survey": bool(request_survey)}
        call = user(session).post("engagement", f"/v1/outreach/{quote(item_id, safe='')}/{step}", body)
        return await acted(request, session, call, "/queue")

    # -- Policies and playbooks ---------------------------------------------------------------

    @router.get("/policies", response_class=HTMLResponse)
    async def policy_list(request: Request, session: SessionDep, done: str = "") -> Response:
        async def load() -> dict[str, Any]:
            return {"versions": await views.policies(user(session))}

        return await shown(request, session, "versions.html", load(), kind="policies", done=done)

    @router.get("/playbooks", response_class=HTMLResponse)
    async def playbook_list(request: Request, session: SessionDep, done: str = "") -> Response:
        async def load() -> dict[str, Any]:
            return {"versions": await user(session).get("engagement", "/v1/playbooks")}

        return await shown(request, session, "versions.html", load(), kind="playbooks", done=done)

    @router.get("/{kind}/compare", response_class=HTMLResponse)
    async def compare(request: Request, kind: str, session: SessionDep, older: str, newer: str) -> Response:
        service = _owner(kind)

        async def load() -> dict[str, Any]:
            return {"lines": await views.diff(user(session), service, kind, older, newer)}

        return await shown(request, session, "diff.html", load(), kind=kind, older=older, newer=newer)

    @router.get("/{kind}/{version}", response_class=HTMLResponse)
    async def version_page(request: Request, kind: str, version: str, session: SessionDep,
                           confirm: str = "") -> Response:  # fmt: skip
        service = _owner(kind)

        async def load() -> dict[str, Any]:
            return {"document": await views.document_yaml(user(session), service, f"/v1/{kind}/{version}")}

        return await shown(request, session, "version.html", load(), kind=kind, version=version,
                           confirm=bool(confirm))  # fmt: skip

    @router.post("/{kind}/{version}/activate")
    async def activate(request: Request, kind: str, version: str, session: FormSession) -> Response:
        call = user(session).post(_owner(kind), f"/v1/{kind}/{quote(version, safe='')}/activate")
        return await acted(request, session, call, f"/{kind}")

    @router.post("/policies/simulate", response_class=HTMLResponse)
    async def simulate(
        request: Request, session: FormSession,
        candidate: Annotated[str, Form(max_length=MAX_POLICY_BYTES)] = "",
        upload: UploadFile | None = None,
    ) -> Response:  # fmt: skip
        text = candidate
        if upload is not None and upload.filename:
            text = (await upload.read(MAX_POLICY_BYTES + 1)).decode("utf-8", errors="replace")
        fmt = formatter(request)

        async def load() -> dict[str, Any]:
            result = await user(session).post("scoring", "/v1/policies/simulate", text, "application/yaml")
            return views.simulation(fmt, result)

        try:
            versions = await views.policies(user(session))
        except UpstreamError as exc:
            return problem(request, session, exc)
        return await shown(request, session, "versions.html", load(), kind="policies", versions=versions,
                           candidate=text)  # fmt: skip

    # -- Reports ------------------------------------------------------------------------------

    @router.get("/reports", response_class=HTMLResponse)
    async def report_page(request: Request, session: SessionDep, start: str | None = None,
                          end: str | None = None, by: str = "tier") -> Response:  # fmt: skip
        grouping = by if by in ("tier", "stage", "branch", "channel") else "tier"
        first, last = views.window(start, end, clock(), days=90)
        shown_end = (last - timedelta(days=1)).date().isoformat()
        loaded = views.reports(user(session), first, last, grouping)
        return await shown(request, session, "reports.html", loaded,
                           start=first.date().isoformat(), end=shown_end, by=grouping)  # fmt: skip

    return router


def _owner(kind: str) -> str:
    if kind == "policies":
        return "scoring"
    if kind == "playbooks":
        return "engagement"
    raise UpstreamError(404, f"no page {kind!r}")


def _cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=http_only, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
