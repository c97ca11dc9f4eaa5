"""`GET /v1/me`: who the caller's key is, so a client (the console) knows what to show."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from shared.http import Authenticated


class Identity(BaseModel):
    key_id: str = Field(description="The first 8 hex digits of the key's SHA-256, as audit trails name it")
    roles: list[str]
    rm_id: str | None = Field(description="The RM a bound rm key acts as")
    branches: list[str] | None = Field(description="The branches the key sees; null: the whole bank")


def whoami_router() -> APIRouter:
    """The `/me` route, for a service's `/v1` router to include."""
    router = APIRouter(tags=["identity"])

    @router.get("/me")
    async def me(key: Authenticated) -> Identity:
        """The calling key's id, roles, bound RM and branches."""
        return Identity(
            key_id=key.key_id,
            roles=sorted(role.value for role in key.roles),
            rm_id=key.rm_id,
            branches=None if key.branches is None else sorted(key.branches),
        )

    return router
