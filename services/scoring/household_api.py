"""HTTP entrypoint of households on scoring: `GET /v1/households/{household_id}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import household_views
from services.scoring.household_schemas import HouseholdPublic
from shared.auth import Principal, Role
from shared.contracts.types import IdentifierPath
from shared.http import ApiError, Responses, require_branch_reader

# As for customers: ops keys, and RM keys bound to a branch, here the branch of the primary.
HouseholdReader = Annotated[Principal, Depends(require_branch_reader(Role.OPS))]
_NOT_FOUND: Responses = {
    404: {
        "description": "Unknown household, one without members, or one whose primary's branch"
        " the key does not see"
    }
}


def household_router(engine: AsyncEngine) -> APIRouter:
    # Included in scoring's router, which carries the /v1 prefix.
    router = APIRouter(tags=["scoring"])

    @router.get("/households/{household_id}", responses=_NOT_FOUND)
    async def get_household(household_id: IdentifierPath, key: HouseholdReader) -> HouseholdPublic:
        """The household's members with their roles and tiers, and its aggregates: member count,
        total and 30/90-day average AUM (sums of the members' exact figures), products held, the
        highest member tier, the primary's RM and branch."""
        async with engine.connect() as db:
            found = await household_views.household(db, household_id, key.branches)
        if found is None:
            raise ApiError(404, f"unknown household {household_id!r}")
        return found

    return router
