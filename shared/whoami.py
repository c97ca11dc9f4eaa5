"""`GET /v1/me` on every service: who the presented key acts as, so a client can shape its screens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from shared.auth import Principal, Role
from shared.http import require

AnyKey = Annotated[Principal, Depends(require(Role.INGEST, Role.OPS, Role.RM))]


class WhoAmI(BaseModel):
    key_id: str = Field(description="The first 8 hex digits of the key's SHA-256, never the key")
    roles: list[Role]
    rm_id: str | None = Field(description="The RM a bound key acts as; null for an unbound key")
    branches: list[str] | None = Field(description="The branches a bound key reads; null: every branch")


def whoami_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["operations"])

    @router.get("/me")
    async def me(key: AnyKey) -> WhoAmI:
        """The roles of the key presented, and the RM and branches it is bound to."""
        return WhoAmI(key_id=key.key_id, roles=sorted(key.roles), rm_id=None, branches=None)

    return router
