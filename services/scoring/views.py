"""Read models for the ops API: plain queries, no business rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.domain.codec import decode
from services.scoring.domain.customer import CustomerState
from shared.db import branch_list, in_branches

_FILTERS = ("tier", "stage", "segment", "region")
# A current member (a member who left keeps a row with no contribution) of a household whose
# tier, the highest of its members', is the one asked for.
_IN_HOUSEHOLD_OF_TIER = """customer_id IN (
    SELECT m.member_id FROM scoring.household_members AS m
    JOIN scoring.households AS h USING (household_id)
    WHERE m.contribution IS NOT NULL AND h.tier = :household_tier)"""
_ONE_VISIBLE = f"WHERE customer_id = :id AND tier IS NOT NULL AND {in_branches()}"


def _where(filters: dict[str, str | None], branches: frozenset[str] | None) -> tuple[str, dict[str, Any]]:
    """Decided customers of `branches` (None: the bank) matching the `_FILTERS` values given."""
    clauses = ["tier IS NOT NULL", in_branches()]
    params: dict[str, Any] = {"branches": branch_list(branches)}
    for name in _FILTERS:
        value = filters.get(name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    label = filters.get("label")
    if label is not None:
        clauses.append("labels @> ARRAY[CAST(:label AS text)]")  # the form the GIN index serves
        params["label"] = label
    household_tier = filters.get("household_tier")
    if household_tier is not None:
        clauses.append(_IN_HOUSEHOLD_OF_TIER)
        params["household_tier"] = household_tier
    return " AND ".join(clauses), params


async def customer(
    db: AsyncConnection, customer_id: str, branches: frozenset[str] | None
) -> tuple[CustomerState, datetime] | None:
    """The decided customer, if they belong to `branches` (None: any)."""
    row = (
        await db.execute(
            text(f"SELECT state, updated_at FROM scoring.customers {_ONE_VISIBLE}"),  # noqa: S608
            {"id": customer_id, "branches": branch_list(branches)},
        )
    ).first()
    return None if row is None else (decode(customer_id, row[0]), row[1])


async def visible(db: AsyncConnection, customer_id: str, branches: frozenset[str] | None) -> bool:
    """Whether the customer is decided and belongs to `branches` (None: any)."""
    found = await db.scalar(
        text(f"SELECT 1 FROM scoring.customers {_ONE_VISIBLE}"),  # noqa: S608
        {"id": customer_id, "branches": branch_list(branches)},
    )
    return found is not None


async def tier_history(db: AsyncConnection, customer_id: str, limit: int) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            """
            SELECT change_id::text AS change_id, at, previous_tier, tier, previous_stage, stage,
                   direction, score, policy_version, reasons, caused_by, trigger, labels,
                   labels_entered, labels_left
            FROM scoring.tier_history WHERE customer_id = :id
            ORDER BY at DESC, id DESC LIMIT :limit
            """
        ),
        {"id": customer_id, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def customers(
    db: AsyncConnection,
    filters: dict[str, str | None],
    branches: frozenset[str] | None,
    after: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    where, params = _where(filters, branches)
    if after is not None:
        where += " AND customer_id > :after"
        params["after"] = after
    rows = await db.execute(
        text(
            f"""
            SELECT customer_id, tier, stage, score, policy_version, tier_since, branch_id, segment,
                   region, labels, updated_at
            FROM scoring.customers WHERE {where} ORDER BY customer_id LIMIT :limit
            """  # noqa: S608 - only fixed column names are interpolated
        ),
        {**params, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def distribution(
    db: AsyncConnection, filters: dict[str, str | None], branches: frozenset[str] | None
) -> list[tuple[str, str, int]]:
    where, params = _where(filters, branches)
    rows = await db.execute(
        text(f"SELECT tier, stage, count(*) FROM scoring.customers WHERE {where} GROUP BY tier, stage"),  # noqa: S608
        params,
    )
    return [(row[0], row[1], int(row[2])) for row in rows]


async def label_counts(
    db: AsyncConnection, filters: dict[str, str | None], branches: frozenset[str] | None
) -> dict[str, int]:
    where, params = _where(filters, branches)
    query = f"SELECT label, count(*) FROM scoring.customers, unnest(labels) AS label WHERE {where} GROUP BY 1"  # noqa: S608
    rows = await db.execute(text(query), params)
    return {row[0]: int(row[1]) for row in rows}


# Customers now in the bound `:branches` (NULL: the bank), for reports over history.
_NOW_IN_BRANCHES = f"""(CAST(:branches AS text[]) IS NULL OR customer_id IN
    (SELECT customer_id FROM scoring.customers WHERE {in_branches()}))"""  # noqa: S608 - a fixed condition


def _as_of(column: str, moment: str) -> str:
    """Each customer's `column` in their latest history row at or before the bound `:moment`."""
    return f"""SELECT DISTINCT ON (customer_id) customer_id, {column} FROM scoring.tier_history
        WHERE at <= :{moment} AND {_NOW_IN_BRANCHES} ORDER BY customer_id, at DESC, id DESC"""  # noqa: S608


def _span(start: datetime, end: datetime, branches: frozenset[str] | None) -> dict[str, Any]:
    return {"start": start, "end": end, "branches": branch_list(branches)}


async def label_flows(
    db: AsyncConnection, start: datetime, end: datetime, branches: frozenset[str] | None
) -> list[tuple[str, str, int]]:
    """Per label, customers (now in `branches`; None: the bank) who entered, left or held it
    between `start` and `end`, from history."""
    rows = await db.execute(
        text(
            f"""
            WITH at_start AS ({_as_of("labels", "start")}), at_end AS ({_as_of("labels", "end")}),
            flows AS (
                SELECT label, CASE WHEN label = ANY(coalesce(s.labels, '{{}}')) THEN 'held' ELSE 'entered' END
                    AS flow
                FROM at_end e LEFT JOIN at_start s USING (customer_id), unnest(e.labels) AS label
                UNION ALL
                SELECT label, 'left' FROM at_end e JOIN at_start s USING (customer_id),
                    unnest(s.labels) AS label
                WHERE NOT label = ANY(e.labels)
            )
            SELECT label, flow, count(*) FROM flows GROUP BY 1, 2
            """  # noqa: S608 - only fixed conditions are interpolated
        ),
        _span(start, end, branches),
    )
    return [(row[0], row[1], int(row[2])) for row in rows]


async def migrations(
    db: AsyncConnection, start: datetime, end: datetime, branches: frozenset[str] | None
) -> list[tuple[str, str, int]]:
    """Tier at `start` against tier at `end` of the customers now in `branches` (None: the bank)."""
    rows = await db.execute(
        text(
            f"""
            WITH at_start AS ({_as_of("tier", "start")}), at_end AS ({_as_of("tier", "end")})
            SELECT coalesce(s.tier, 'none'), e.tier, count(*)
            FROM at_end e LEFT JOIN at_start s USING (customer_id)
            GROUP BY 1, 2
            """  # noqa: S608 - only fixed conditions are interpolated
        ),
        _span(start, end, branches),
    )
    return [(row[0], row[1], int(row[2])) for row in rows]


async def changes_per_day(
    db: AsyncConnection, start: datetime, end: datetime, branches: frozenset[str] | None
) -> list[tuple[Any, str, int]]:
    """Changes per UTC day and direction, of the customers now in `branches` (None: the bank)."""
    rows = await db.execute(
        text(
            f"""
            SELECT (at AT TIME ZONE 'UTC')::date AS day, direction, count(*)
            FROM scoring.tier_history WHERE at >= :start AND at < :end AND {_NOW_IN_BRANCHES}
            GROUP BY 1, 2 ORDER BY 1, 2
            """  # noqa: S608 - only a fixed condition is interpolated
        ),
        _span(start, end, branches),
    )
    return [(row[0], row[1], int(row[2])) for row in rows]


async def policies(db: AsyncConnection) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT version, created_at, created_by, activated_at, active FROM scoring.policies "
            "ORDER BY created_at DESC"
        )
    )
    return [dict(row._mapping) for row in rows]


async def policy_document(db: AsyncConnection, version: str) -> dict[str, Any] | None:
    document: dict[str, Any] | None = await db.scalar(
        text("SELECT document FROM scoring.policies WHERE version = :v"), {"v": version}
    )
    return document


async def all_states(
    db: AsyncConnection, chunk: int = 1000
) -> AsyncIterator[list[tuple[CustomerState, int | None]]]:
    """Every decided customer with the events-topic partition that holds it (None before its
    first event from that topic), a chunk at a time (memory stays bounded)."""
    after = ""
    while True:
        rows = (
            await db.execute(
                text(
                    "SELECT customer_id, state, clock_partition FROM scoring.customers "
                    "WHERE tier IS NOT NULL AND customer_id > :after ORDER BY customer_id LIMIT :n"
                ),
                {"after": after, "n": chunk},
            )
        ).all()
        if not rows:
            return
        yield [(decode(cid, state), partition) for cid, state, partition in rows]
        after = rows[-1][0]
