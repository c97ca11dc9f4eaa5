"""Households: what each member contributes, and the household folded from its members.

A member's contribution is published keyed by household with a sequence of the member's own
(never reset, across households), so the fold replaces a member's row by a newer one, ignores
an older or repeated one, and a removal (the member left) takes the contribution away. Every
aggregate is a function of the current member rows alone: however contributions interleave or
repeat, the same rows give the same household.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.scoring.domain.customer import CustomerState
from services.scoring.domain.features import (
    ZERO,
    aum_at,
    average_daily_balance,
    day_of,
    held_products,
)
from shared.contracts.outbound import TIER_RANK
from shared.contracts.types import MONEY_CONTEXT, HouseholdRole, Tier
from shared.errors import TierFlowError


@dataclass(frozen=True)
class Contribution:
    """What one member brings to their household, as of their latest decision."""

    household_id: str
    member_id: str
    role: HouseholdRole
    # When the member last declared their role here: the latest primary declaration wins.
    role_since: datetime
    aum: Decimal
    aum_avg_30d: Decimal
    aum_avg_90d: Decimal
    products: tuple[str, ...]
    tier: Tier | None
    rm_id: str | None
    branch_id: str | None


@dataclass(frozen=True)
class Membership:
    """The contribution last published for a member and its sequence (the member's own counter)."""

    sequence: int = 0
    contribution: Contribution | None = None


@dataclass(frozen=True)
class Published:
    """A member's contribution to `household_id`, or their removal from it (`contribution` None)."""

    household_id: str
    member_id: str
    sequence: int
    as_of: datetime
    contribution: Contribution | None


def contribution_of(state: CustomerState, last: Contribution | None) -> Contribution | None:
    """The member's contribution as of their latest decision; None outside any household."""
    profile = state.features.profile
    household_id = profile.get("household_id")
    if not isinstance(household_id, str) or state.decision is None:
        return None
    now = state.decision.evaluated_at
    role = HouseholdRole(profile.get("household_role", HouseholdRole.OTHER))
    same_role = last is not None and (last.household_id, last.role) == (household_id, role)
    features = state.features
    return Contribution(
        household_id=household_id,
        member_id=state.customer_id,
        role=role,
        role_since=last.role_since if same_role and last is not None else now,
        aum=aum_at(features, now),
        aum_avg_30d=average_daily_balance(features, now, 30),
        aum_avg_90d=average_daily_balance(features, now, 90),
        products=held_products(features, day_of(now)),
        tier=state.decision.tier,
        rm_id=_text(profile.get("rm_id")),
        branch_id=_text(profile.get("branch_id")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def publications(
    member_id: str, last: Membership, current: Contribution | None, as_of: datetime
) -> tuple[Membership, list[Published]]:
    """What to publish for a member whose state changed: nothing if their contribution did not,
    a removal from the household they left, their contribution to the one they are in."""
    if current == last.contribution:
        return last, []
    sequence = last.sequence
    published: list[Published] = []
    left = last.contribution is not None and (
        current is None or current.household_id != last.contribution.household_id
    )
    if left and last.contribution is not None:
        sequence += 1
        published.append(Published(last.contribution.household_id, member_id, sequence, as_of, None))
    if current is not None:
        sequence += 1
        published.append(Published(current.household_id, member_id, sequence, as_of, current))
    return Membership(sequence, current), published


@dataclass(frozen=True)
class MemberRow:
    """A member's latest known contribution; a removal is kept (contribution None) so that an
    older contribution arriving after it is recognised as stale."""

    sequence: int
    contribution: Contribution | None


@dataclass(frozen=True)
class Household:
    household_id: str
    rows: dict[str, MemberRow]

    @classmethod
    def new(cls, household_id: str) -> Household:
        return cls(household_id, {})

    @property
    def members(self) -> dict[str, Contribution]:
        return {m: row.contribution for m, row in sorted(self.rows.items()) if row.contribution is not None}


class HouseholdFull(TierFlowError):
    """A member would join a household that has the most members one may have: a feed that puts
    a branch's customers in one household must not make every fold of it load thousands of rows.
    The message is dead-lettered; the member joins once the household has room again."""


DEFAULT_MAX_MEMBERS = 50


def fold(
    household: Household, message: Published, max_members: int = DEFAULT_MAX_MEMBERS
) -> Household | None:
    """The household with `message` folded in, or None if it is stale or a repeat (the member's
    row already has this sequence or a later one). `HouseholdFull` if a new member would make it
    larger than `max_members`."""
    known = household.rows.get(message.member_id)
    if known is not None and known.sequence >= message.sequence:
        return None
    members = household.members
    if message.contribution is not None and message.member_id not in members and len(members) >= max_members:
        raise HouseholdFull(
            f"household {household.household_id} has {len(members)} members, the most one may have"
            " (TIERFLOW_HOUSEHOLD_MAX_MEMBERS): the member is not added"
        )
    rows = {**household.rows, message.member_id: MemberRow(message.sequence, message.contribution)}
    return replace(household, rows=rows)


def primary_of(members: dict[str, Contribution]) -> str | None:
    """The member who declared themselves primary last (ties by id): one primary per household."""
    declared = [(c.role_since, m) for m, c in members.items() if c.role is HouseholdRole.PRIMARY]
    return max(declared)[1] if declared else None


def roles(members: dict[str, Contribution]) -> dict[str, HouseholdRole]:
    """Each member's role in the household: a primary superseded by a later one is `other`."""
    primary = primary_of(members)
    return {
        m: HouseholdRole.OTHER if c.role is HouseholdRole.PRIMARY and m != primary else c.role
        for m, c in members.items()
    }


def demoted(before: Household, after: Household) -> list[str]:
    """Members a new primary made `other` in this fold: each is audited."""
    previous = primary_of(before.members)
    now_roles = roles(after.members)
    if previous is None or previous == primary_of(after.members):
        return []
    return [previous] if now_roles.get(previous) is HouseholdRole.OTHER else []


@dataclass(frozen=True)
class Aggregates:
    members: int
    aum: Decimal
    aum_avg_30d: Decimal
    aum_avg_90d: Decimal
    products: tuple[str, ...]
    tier: Tier | None
    primary_id: str | None
    rm_id: str | None
    branch_id: str | None


def aggregates(household: Household) -> Aggregates:
    """Sums of the members' exact figures, the highest member tier, the primary's RM and branch."""
    members = household.members
    primary_id = primary_of(members)
    primary = members.get(primary_id) if primary_id is not None else None
    tiers = [c.tier for c in members.values() if c.tier is not None]
    return Aggregates(
        members=len(members),
        aum=_sum(c.aum for c in members.values()),
        aum_avg_30d=_sum(c.aum_avg_30d for c in members.values()),
        aum_avg_90d=_sum(c.aum_avg_90d for c in members.values()),
        products=tuple(sorted({p for c in members.values() for p in c.products})),
        tier=max(tiers, key=TIER_RANK.__getitem__) if tiers else None,
        primary_id=primary_id,
        rm_id=primary.rm_id if primary is not None else None,
        branch_id=primary.branch_id if primary is not None else None,
    )


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = MONEY_CONTEXT.add(total, value)
    return total
