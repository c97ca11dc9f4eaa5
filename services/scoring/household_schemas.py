"""Typed response bodies of the household API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.contracts.types import HouseholdRole, Tier


class HouseholdMemberPublic(BaseModel):
    customer_id: str
    role: HouseholdRole = Field(description="The role in the household: a superseded primary is `other`")
    declared_role: HouseholdRole = Field(description="The role the member's profile declares")
    tier: Tier | None
    aum: str
    aum_avg_30d: str
    aum_avg_90d: str
    products: list[str]


class HouseholdPublic(BaseModel):
    household_id: str
    members_count: int
    tier: Tier | None = Field(description="The highest tier among the members")
    aum: str = Field(description="Total current AUM of the members")
    aum_avg_30d: str = Field(description="Sum of the members' 30-day time-weighted average AUM")
    aum_avg_90d: str = Field(description="Sum of the members' 90-day time-weighted average AUM")
    products: list[str] = Field(description="Products held by any member")
    primary_id: str | None
    rm_id: str | None = Field(description="The primary's relationship manager")
    branch_id: str | None = Field(description="The primary's branch")
    members: list[HouseholdMemberPublic]
    updated_at: datetime


class CustomerHousehold(BaseModel):
    """The household a customer view names: `GET /v1/households/{household_id}` has the rest."""

    household_id: str
    role: HouseholdRole


def customer_household(profile: Mapping[str, Any]) -> CustomerHousehold | None:
    household_id = profile.get("household_id")
    if not isinstance(household_id, str):
        return None
    return CustomerHousehold(
        household_id=household_id, role=profile.get("household_role", HouseholdRole.OTHER)
    )
