"""Reads of the household stage's tables for the API (no locks, no writes)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.domain.household import Household, MemberRow, aggregates, roles
from services.scoring.household_messages import stored_contribution
from services.scoring.household_schemas import HouseholdMemberPublic, HouseholdPublic
from services.scoring.schemas import money
from shared.db import branch_list

_HOUSEHOLD = text(
    """
    SELECT updated_at FROM scoring.households
    WHERE household_id = :id AND members > 0
      AND (CAST(:branches AS text[]) IS NULL OR branch_id = ANY(CAST(:branches AS text[])))
    """
)
_MEMBERS = text(
    "SELECT member_id, sequence, contribution FROM scoring.household_members WHERE household_id = :id"
)


async def household(
    db: AsyncConnection, household_id: str, branches: frozenset[str] | None
) -> HouseholdPublic | None:
    """The household with members, if its primary's branch is among `branches` (None: any)."""
    updated_at = await db.scalar(_HOUSEHOLD, {"id": household_id, "branches": branch_list(branches)})
    if updated_at is None:
        return None
    rows = await db.execute(_MEMBERS, {"id": household_id})
    folded = Household(
        household_id,
        {m: MemberRow(int(seq), stored_contribution(household_id, m, body)) for m, seq, body in rows},
    )
    summary = aggregates(folded)
    members = folded.members
    effective = roles(members)
    return HouseholdPublic(
        household_id=household_id,
        members_count=summary.members,
        tier=summary.tier,
        aum=money(summary.aum),
        aum_avg_30d=money(summary.aum_avg_30d),
        aum_avg_90d=money(summary.aum_avg_90d),
        products=list(summary.products),
        primary_id=summary.primary_id,
        rm_id=summary.rm_id,
        branch_id=summary.branch_id,
        members=[
            HouseholdMemberPublic(
                customer_id=member,
                role=effective[member],
                declared_role=c.role,
                tier=c.tier,
                aum=money(c.aum),
                aum_avg_30d=money(c.aum_avg_30d),
                aum_avg_90d=money(c.aum_avg_90d),
                products=list(c.products),
            )
            for member, c in members.items()
        ],
        updated_at=updated_at,
    )
