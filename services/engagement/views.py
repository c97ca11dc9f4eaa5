"""Read models for the engagement API: plain queries; the statuses they count come from the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.domain.lifecycle import HELD_STATES, OPEN_STATES, ItemStatus
from services.engagement.store import ITEM_COLUMNS
from shared.contracts.outbound import REACHED_OUTCOMES, OutreachOutcome
from shared.db import branch_list, in_branches

ITEM_FILTERS = ("customer_id", "status", "assigned_to", "priority", "kind", "household_id")


async def item(db: AsyncConnection, item_id: str) -> dict[str, Any] | None:
    row = (
        await db.execute(
            text(f"SELECT {ITEM_COLUMNS} FROM engagement.items WHERE id = CAST(:id AS uuid)"),  # noqa: S608
            {"id": item_id},
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def items(
    db: AsyncConnection,
    filters: dict[str, str | None],
    branches: frozenset[str] | None,
    due_before: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Items of `branches` soonest due first; `filters` holds values for the columns of ITEM_FILTERS."""
    params: dict[str, Any] = {name: filters[name] for name in ITEM_FILTERS if filters.get(name) is not None}
    clauses = [f"{name} = :{name}" for name in params] + [in_branches()]
    params["branches"] = branch_list(branches)
    if due_before is not None:
        clauses.append("due_at <= :due_before")
        params["due_before"] = due_before
    where = " AND ".join(clauses)
    rows = await db.execute(
        text(
            f"SELECT {ITEM_COLUMNS} FROM engagement.items WHERE {where} ORDER BY due_at, id LIMIT :limit"  # noqa: S608 - only fixed column names are interpolated
        ),
        {**params, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def outcome_stats(
    db: AsyncConnection, start: datetime, end: datetime, branches: frozenset[str] | None
) -> list[dict[str, Any]]:
    """Items of `branches` created in [start, end) that were neither cancelled nor covered by a
    household's contact (counted there), by tier, action and channel; the held-out ones are
    counted apart, since nobody was meant to make them."""
    rows = await db.execute(
        text(
            f"""
            SELECT context_tier AS tier, kind AS action, channel,
                count(*) FILTER (WHERE status <> :held_out) AS items,
                count(*) FILTER (WHERE status = :held_out) AS held_out,
                count(*) FILTER (WHERE status = :completed) AS completed,
                count(*) FILTER (WHERE outcome = ANY(:reached)) AS reached,
                count(*) FILTER (WHERE outcome = :converted) AS converted,
                avg(extract(epoch FROM first_contact_at - created_at) / 3600) AS hours_to_first_contact,
                avg(CASE WHEN first_contact_at IS NULL THEN NULL
                         WHEN first_contact_at <= sla_due_at THEN 1.0 ELSE 0.0 END) AS within_sla,
                count(*) FILTER (WHERE first_contact_at <= sla_due_at) AS contacted_within_sla
            FROM engagement.items
            WHERE created_at >= :start AND created_at < :end AND status <> ALL(:not_made)
                AND {in_branches()}
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """  # noqa: S608 - only a fixed condition is interpolated
        ),
        {
            "branches": branch_list(branches),
            "start": start,
            "end": end,
            "completed": ItemStatus.COMPLETED.value,
            "not_made": [ItemStatus.CANCELLED.value, ItemStatus.COVERED.value],
            "held_out": ItemStatus.HELD_OUT.value,
            "reached": sorted(outcome.value for outcome in REACHED_OUTCOMES),
            "converted": OutreachOutcome.CONVERTED.value,
        },
    )
    return [dict(row._mapping) for row in rows]


async def queue(
    db: AsyncConnection, branches: frozenset[str] | None
) -> list[tuple[str, str | None, str, int]]:
    """Open items of `branches` counted by action, RM and status."""
    rows = await db.execute(
        text(
            f"""
            SELECT kind, assigned_to, status, count(*) FROM engagement.items
            WHERE status = ANY(:open)
                AND {in_branches()}
            GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS FIRST, 3
            """  # noqa: S608 - only a fixed condition is interpolated
        ),
        {"branches": branch_list(branches), "open": sorted(status.value for status in OPEN_STATES)},
    )
    return [(kind, rm, status, int(count)) for kind, rm, status, count in rows]


async def workloads(
    db: AsyncConnection, rm_id: str | None, now: datetime, branches: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Every RM (or one, or those of `branches`) with the items they hold and how many are past
    their SLA."""
    rows = await db.execute(
        text(
            f"""
            SELECT r.rm_id, r.branch_id, r.capacity, r.active,
                count(i.id) FILTER (WHERE i.status = ANY(:held)) AS open_items,
                count(i.id) FILTER (WHERE i.status = ANY(:held) AND i.sla_due_at < :now) AS overdue_items,
                CAST(:now AS timestamptz) AS as_of
            FROM engagement.rms r LEFT JOIN engagement.items i ON i.assigned_to = r.rm_id
            WHERE (CAST(:rm AS text) IS NULL OR r.rm_id = :rm)
                AND {in_branches("r.branch_id")}
            GROUP BY r.rm_id, r.branch_id, r.capacity, r.active ORDER BY r.rm_id
            """  # noqa: S608 - only a fixed condition is interpolated
        ),
        {
            "rm": rm_id,
            "branches": branch_list(branches),
            "held": sorted(status.value for status in HELD_STATES),
            "now": now,
        },
    )
    return [dict(row._mapping) for row in rows]


async def playbooks(db: AsyncConnection) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT version, created_at, created_by, active FROM engagement.playbooks "
            "ORDER BY created_at DESC"
        )
    )
    return [dict(row._mapping) for row in rows]


async def playbook_document(db: AsyncConnection, version: str) -> dict[str, Any] | None:
    document: dict[str, Any] | None = await db.scalar(
        text("SELECT document FROM engagement.playbooks WHERE version = :v"), {"v": version}
    )
    return document
