"""Scoring's household tables, in the caller's transaction (see migration 0010_households)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.domain.household import Household, MemberRow, Membership, Published, aggregates
from services.scoring.household_messages import contribution_event, contribution_json, stored_contribution
from shared.contracts.types import HouseholdRole
from shared.erasure import erased_among
from shared.publishing import enqueue

_MEMBERSHIPS = text(
    "SELECT customer_id, household_id, sequence, contribution FROM scoring.household_memberships"
    " WHERE customer_id = ANY(:ids)"
)
_SAVE_MEMBERSHIPS = text(
    """
    INSERT INTO scoring.household_memberships (customer_id, household_id, sequence, contribution)
    SELECT u.customer_id, u.household_id, u.sequence, u.contribution::jsonb
    FROM unnest(CAST(:ids AS text[]), CAST(:households AS text[]), CAST(:sequences AS bigint[]),
                CAST(:contributions AS text[]))
        AS u(customer_id, household_id, sequence, contribution)
    ON CONFLICT (customer_id) DO UPDATE
    SET household_id = excluded.household_id, sequence = excluded.sequence,
        contribution = excluded.contribution
    """
)
# A household's row is created empty on its first message, then locked: the stage's instances
# share nothing but these rows, and take them in id order.
_PLACE_HOUSEHOLDS = text(
    """
    INSERT INTO scoring.households
        (household_id, members, aum, aum_avg_30d, aum_avg_90d, products, updated_at)
    SELECT id, 0, 0, 0, 0, '{}', now() FROM unnest(CAST(:ids AS text[])) AS id
    ON CONFLICT (household_id) DO NOTHING
    """
)
_LOCK_HOUSEHOLDS = text(
    "SELECT household_id FROM scoring.households WHERE household_id = ANY(:ids)"
    " ORDER BY household_id FOR UPDATE"
)
_MEMBER_ROWS = text(
    "SELECT household_id, member_id, sequence, contribution FROM scoring.household_members"
    " WHERE household_id = ANY(:ids)"
)
_SAVE_MEMBER_ROWS = text(
    """
    INSERT INTO scoring.household_members (household_id, member_id, sequence, contribution, updated_at)
    SELECT u.household_id, u.member_id, u.sequence, u.contribution::jsonb, :now
    FROM unnest(CAST(:households AS text[]), CAST(:members AS text[]), CAST(:sequences AS bigint[]),
                CAST(:contributions AS text[]))
        AS u(household_id, member_id, sequence, contribution)
    ON CONFLICT (household_id, member_id) DO UPDATE
    SET sequence = excluded.sequence, contribution = excluded.contribution, updated_at = excluded.updated_at
    WHERE scoring.household_members.sequence < excluded.sequence
    """
)
_SAVE_AGGREGATES = text(
    """
    UPDATE scoring.households AS h
    SET members = u.members, aum = u.aum, aum_avg_30d = u.avg_30d, aum_avg_90d = u.avg_90d,
        products = string_to_array(u.products, ','), tier = u.tier, primary_id = u.primary_id,
        rm_id = u.rm_id, branch_id = u.branch_id, updated_at = :now
    FROM unnest(CAST(:ids AS text[]), CAST(:members AS integer[]), CAST(:aum AS numeric[]),
                CAST(:avg_30d AS numeric[]), CAST(:avg_90d AS numeric[]), CAST(:products AS text[]),
                CAST(:tiers AS text[]), CAST(:primaries AS text[]), CAST(:rms AS text[]),
                CAST(:branches AS text[]))
        AS u(household_id, members, aum, avg_30d, avg_90d, products, tier, primary_id, rm_id, branch_id)
    WHERE h.household_id = u.household_id
    """
)
_AUDIT = text(
    """
    INSERT INTO scoring.household_audit (household_id, member_id, from_role, to_role, note, at)
    SELECT u.*, :at FROM unnest(CAST(:households AS text[]), CAST(:members AS text[]),
                                CAST(:from_roles AS text[]), CAST(:to_roles AS text[]),
                                CAST(:notes AS text[])) AS u
    """
)


_FORGET_AUDIT = text("DELETE FROM scoring.household_audit WHERE member_id = :id")


@dataclass(frozen=True)
class RoleAudit:
    household_id: str
    member_id: str
    from_role: HouseholdRole
    to_role: HouseholdRole
    note: str


class HouseholdStore:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def memberships(self, customer_ids: Collection[str]) -> dict[str, Membership]:
        """The last publication of each of these customers that ever was in a household."""
        if not customer_ids:
            return {}
        rows = await self._db.execute(_MEMBERSHIPS, {"ids": sorted(customer_ids)})
        return {
            cid: Membership(int(sequence), stored_contribution(household_id, cid, contribution))
            for cid, household_id, sequence, contribution in rows
        }

    async def save_memberships(
        self, changed: Mapping[str, Membership], published: Sequence[Published], topic: str
    ) -> None:
        """The members' new memberships and their contributions in the outbox, keyed by household."""
        if not changed:
            return
        ids = sorted(changed)
        contributions = [changed[cid].contribution for cid in ids]
        await self._db.execute(
            _SAVE_MEMBERSHIPS,
            {
                "ids": ids,
                "households": [c.household_id if c else None for c in contributions],
                "sequences": [changed[cid].sequence for cid in ids],
                "contributions": [json.dumps(contribution_json(c)) if c else None for c in contributions],
            },
        )
        await enqueue(self._db, "scoring", topic, [contribution_event(p) for p in published])

    async def lock_households(self, household_ids: Collection[str]) -> dict[str, Household]:
        """These households (created empty if new), locked in id order, with their member rows."""
        ids = sorted(household_ids)
        if not ids:
            return {}
        await self._db.execute(_PLACE_HOUSEHOLDS, {"ids": ids})
        await self._db.execute(_LOCK_HOUSEHOLDS, {"ids": ids})
        rows: dict[str, dict[str, MemberRow]] = {hid: {} for hid in ids}
        for hid, member, sequence, contribution in await self._db.execute(_MEMBER_ROWS, {"ids": ids}):
            rows[hid][member] = MemberRow(int(sequence), stored_contribution(hid, member, contribution))
        return {hid: Household(hid, members) for hid, members in rows.items()}

    async def save_households(
        self, changed: Sequence[Household], before: Mapping[str, Household], now: datetime
    ) -> None:
        """Member rows that moved on and every changed household's aggregates."""
        if not changed:
            return
        moved = [
            (h.household_id, member, row)
            for h in changed
            for member, row in h.rows.items()
            if before[h.household_id].rows.get(member) != row
        ]
        await self._db.execute(
            _SAVE_MEMBER_ROWS,
            {
                "households": [hid for hid, _, _ in moved],
                "members": [member for _, member, _ in moved],
                "sequences": [row.sequence for _, _, row in moved],
                "contributions": [
                    json.dumps(contribution_json(row.contribution)) if row.contribution else None
                    for _, _, row in moved
                ],
                "now": now,
            },
        )
        summaries = [(h.household_id, aggregates(h)) for h in changed]
        await self._db.execute(
            _SAVE_AGGREGATES,
            {
                "ids": [hid for hid, _ in summaries],
                "members": [a.members for _, a in summaries],
                "aum": [a.aum for _, a in summaries],
                "avg_30d": [a.aum_avg_30d for _, a in summaries],
                "avg_90d": [a.aum_avg_90d for _, a in summaries],
                "products": [",".join(a.products) for _, a in summaries],
                "tiers": [a.tier.value if a.tier else None for _, a in summaries],
                "primaries": [a.primary_id for _, a in summaries],
                "rms": [a.rm_id for _, a in summaries],
                "branches": [a.branch_id for _, a in summaries],
                "now": now,
            },
        )

    async def forget_audit(self, member_id: str) -> int:
        """Remove an erased member's role history; how many rows."""
        result = await self._db.execute(_FORGET_AUDIT, {"id": member_id})
        return result.rowcount

    async def audit_roles(self, audits: Sequence[RoleAudit], at: datetime) -> None:
        """Record role changes, but none of a member erased meanwhile: their contribution may
        still be on its way out of the household when a later primary demotes them."""
        erased = await erased_among(self._db, "scoring", {a.member_id for a in audits})
        audits = [a for a in audits if a.member_id not in erased]
        if not audits:
            return
        await self._db.execute(
            _AUDIT,
            {
                "households": [a.household_id for a in audits],
                "members": [a.member_id for a in audits],
                "from_roles": [a.from_role.value for a in audits],
                "to_roles": [a.to_role.value for a in audits],
                "notes": [a.note for a in audits],
                "at": at,
            },
        )
