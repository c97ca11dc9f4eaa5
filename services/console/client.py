"""The console's only way to TierFlow's data: the four services' HTTP APIs, with the user's own key.

Authorisation therefore stays in the services; the console shows what a key may see.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import Settings

SERVICES = ("ingest", "scoring", "engagement", "feedback")
TIMEOUT_S = 15.0


class UpstreamError(Exception):
    """A service refused or failed; `status` is its HTTP status (503 when it was unreachable)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Upstream:
    """One pooled HTTP client per service, opened at start-up and closed at shutdown."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._clients = {
            name: httpx.AsyncClient(base_url=settings.url_of(name), timeout=TIMEOUT_S, transport=transport)
            for name in SERVICES
        }

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def healthy(self, service: str) -> bool:
        try:
            response = await self._clients[service].get("/healthz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def as_user(self, api_key: str, rm_id: str | None = None) -> UserClient:
        return UserClient(self._clients, api_key, rm_id)


class UserClient:
    """Requests on behalf of one signed-in user."""

    def __init__(self, clients: dict[str, httpx.AsyncClient], api_key: str, rm_id: str | None) -> None:
        self._clients = clients
        self._headers = {"Authorization": f"Bearer {api_key}"}
        if rm_id is not None:
            self._headers["X-RM-Id"] = rm_id

    def __repr__(self) -> str:
        return "UserClient()"

    async def get(self, service: str, path: str, **params: str | int | None) -> Any:
        shown = {name: value for name, value in params.items() if value is not None and value != ""}
        return await self._send(service, "GET", path, params=shown)

    async def post(self, service: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        if isinstance(body, str):
            headers = {"Content-Type": content_type or "application/yaml"}
            return await self._send(service, "POST", path, content=body.encode(), headers=headers)
        return await self._send(service, "POST", path, json=body)

    async def put(self, service: str, path: str, body: Any) -> Any:
        return await self._send(service, "PUT", path, json=body)

    async def delete(self, service: str, path: str) -> Any:
        return await self._send(service, "DELETE", path)

    async def _send(self, service: str, method: str, path: str, **options: Any) -> Any:
        headers = {**self._headers, **options.pop("headers", {})}
        try:
            response = await self._clients[service].request(method, path, headers=headers, **options)
        except httpx.TransportError as exc:
            raise UpstreamError(503, f"{service} is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise UpstreamError(response.status_code, _detail(response))
        return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        detail = str(body.get("detail", ""))
        errors = body.get("errors") or []
        extra = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        return f"{detail} ({extra})" if extra else detail
    return str(body)[:300]
