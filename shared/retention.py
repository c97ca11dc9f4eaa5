"""Bounded storage: duplicate markers partitioned by event time, and the maintenance loop.

A service's duplicate markers (`<schema>.applied_events`) are range-partitioned by the event's
own `time`, which a resend keeps, so a resend meets its marker in the same partition. Consumers
refuse events older than the horizon (see `shared.event_rules.refuse_beyond_horizon`), so once a
whole partition lies before the horizon no event that could find a marker there is applied any
more, and the partition is dropped whole. Partitions are created ahead of time by the same loop.

The other kinds of record (tier history, audits, closed outreach, surveys, complaints) are
deleted by age, in bounded batches, by one function of each service's store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.logs import get_logger
from shared.settings import Settings
from shared.tasks import pause

log = get_logger(__name__)
MARKERS = "applied_events"
# Markers written before the table was partitioned: kept apart until the horizon has passed them.
LEGACY_MARKERS = "applied_events_legacy"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Partitions made ahead of the clock, in partition widths: an event may be stamped up to the
# future-skew bound ahead, and the loop may be down for a while.
PARTITIONS_AHEAD = 2
_PARTITION_NAME = re.compile(rf"^{MARKERS}_(\d+)_(\d+)$")

EXPIRED = Counter("tierflow_retention_deleted", "Rows deleted past their retention", ["table"])
MARKER_PARTITIONS = Gauge("tierflow_applied_events_partitions", "Partitions of duplicate markers", ["schema"])


@dataclass(frozen=True, order=True)
class Span:
    """One partition's range of event times, [start, end)."""

    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"{MARKERS}_{_seconds(self.start)}_{_seconds(self.end)}"

    @classmethod
    def parse(cls, name: str) -> Span | None:
        match = _PARTITION_NAME.match(name)
        if match is None:
            return None
        start, end = (EPOCH + timedelta(seconds=int(group)) for group in match.groups())
        return cls(start, end)


@dataclass(frozen=True)
class PartitionPlan:
    create: list[Span]
    drop: list[Span]


def plan_partitions(
    existing: Sequence[Span], now: datetime, horizon: timedelta, width: timedelta, slack: timedelta
) -> PartitionPlan:
    """Which partitions to drop and create so that [now - horizon, now + ahead) is covered.

    A partition is dropped once it ends `slack` before the horizon: a consumer whose clock runs
    behind by up to `slack` still finds the partition of any event it accepts. New partitions
    follow a grid of `width` from the epoch; where the width changed, the parts of a grid cell
    that existing partitions do not cover are created, so partitions never overlap.
    """
    drop_before = now - horizon - slack
    drop = [span for span in existing if span.end <= drop_before]
    kept = sorted(span for span in existing if span.end > drop_before)
    first = _grid_floor(now - horizon - slack, width)
    last = _grid_floor(now, width) + PARTITIONS_AHEAD * width
    create: list[Span] = []
    cell = first
    while cell <= last:
        create += _uncovered(Span(cell, cell + width), kept)
        cell += width
    return PartitionPlan(create, drop)


def _uncovered(cell: Span, covered: Sequence[Span]) -> list[Span]:
    gaps: list[Span] = []
    start = cell.start
    for span in covered:
        if span.end <= start or span.start >= cell.end:
            continue
        if span.start > start:
            gaps.append(Span(start, span.start))
        start = max(start, span.end)
    if start < cell.end:
        gaps.append(Span(start, cell.end))
    return gaps


def _grid_floor(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + width * ((moment - EPOCH) // width)


def _seconds(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


async def maintain_markers(
    connection: AsyncConnection, schema: str, now: datetime, settings: Settings
) -> PartitionPlan:
    """Create the partitions of `<schema>.applied_events` ahead of time and drop the expired ones."""
    # Every instance of a service runs this loop: one at a time changes the partitions.
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{schema}.markers"}
    )
    existing = await marker_partitions(connection, schema)
    plan = plan_partitions(
        existing,
        now,
        settings.applied_events_horizon,
        settings.applied_events_partition,
        slack=timedelta(seconds=settings.consumer_clock_tolerance_s),
    )
    for span in plan.drop:
        await connection.execute(text(f"DROP TABLE IF EXISTS {schema}.{span.name}"))
    for span in plan.create:
        await connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {schema}.{span.name} PARTITION OF {schema}.{MARKERS} "
                f"FOR VALUES FROM ('{span.start.isoformat()}') TO ('{span.end.isoformat()}')"
            )
        )
    # A legacy marker's event may be stamped up to the future-skew bound after it was applied.
    legacy_before = now - settings.applied_events_horizon - settings.consumer_max_future_skew
    await _forget_legacy_markers(connection, schema, legacy_before)
    MARKER_PARTITIONS.labels(schema).set(len(existing) - len(plan.drop) + len(plan.create))
    if plan.drop or plan.create:
        log.info(
            "duplicate-marker partitions maintained",
            schema=schema, dropped=len(plan.drop), created=len(plan.create),
        )  # fmt: skip
    return plan


async def marker_partitions(connection: AsyncConnection, schema: str) -> list[Span]:
    rows = await connection.execute(
        text(
            """
            SELECT child.relname FROM pg_inherits AS i
            JOIN pg_class AS child ON child.oid = i.inhrelid
            JOIN pg_class AS parent ON parent.oid = i.inhparent
            JOIN pg_namespace AS n ON n.oid = parent.relnamespace
            WHERE n.nspname = :schema AND parent.relname = :table
            """
        ),
        {"schema": schema, "table": MARKERS},
    )
    return sorted(span for (name,) in rows if (span := Span.parse(name)) is not None)


async def _forget_legacy_markers(connection: AsyncConnection, schema: str, before: datetime) -> None:
    """Markers from before partitioning record when they were applied, not the event's time: once
    even the latest was applied before `before`, no event they stand for is accepted any more, and
    all go at once."""
    latest = await connection.scalar(text(f"SELECT max(applied_at) FROM {schema}.{LEGACY_MARKERS}"))  # noqa: S608
    if latest is not None and latest < before:
        await connection.execute(text(f"TRUNCATE {schema}.{LEGACY_MARKERS}"))


async def maintain_all_markers(engine: AsyncEngine, schemas: Sequence[str], settings: Settings) -> None:
    for schema in schemas:
        async with engine.begin() as connection:
            await maintain_markers(connection, schema, datetime.now(UTC), settings)


@dataclass(frozen=True)
class Cutoffs:
    """Records older than these instants are past their retention."""

    tier_history: datetime
    audits: datetime
    closed_outreach: datetime
    surveys: datetime
    complaints: datetime

    @classmethod
    def at(cls, now: datetime, settings: Settings) -> Cutoffs:
        return cls(
            tier_history=now - settings.tier_history_retention,
            audits=now - settings.audit_retention,
            closed_outreach=now - settings.closed_outreach_retention,
            surveys=now - settings.survey_retention,
            complaints=now - settings.complaint_retention,
        )


# One service store's retention: deletes up to `limit` rows past their cutoff per table, in the
# caller's transaction, and says how many it deleted from each.
Expire = Callable[[AsyncConnection, Cutoffs, int], Awaitable[Mapping[str, int]]]


@dataclass(frozen=True)
class Expiry:
    """Rows of `table` whose `column` is before `cutoff` (and for which `where` holds) are expired."""

    table: str
    column: str
    cutoff: datetime
    where: str = "TRUE"


async def delete_expired(
    connection: AsyncConnection, expiries: Sequence[Expiry], limit: int
) -> dict[str, int]:
    """Delete up to `limit` expired rows of each table; returns how many went from each."""
    deleted: dict[str, int] = {}
    for expiry in expiries:
        result = await connection.execute(
            text(
                f"DELETE FROM {expiry.table} WHERE ctid = ANY(ARRAY("  # noqa: S608 - a store's own tables
                f"SELECT ctid FROM {expiry.table} WHERE {expiry.column} < :cutoff AND ({expiry.where})"
                " LIMIT :limit))"
            ),
            {"cutoff": expiry.cutoff, "limit": limit},
        )
        deleted[expiry.table] = int(result.rowcount or 0)
    return deleted


async def maintain_once(
    engine: AsyncEngine, schema: str, expire: Expire, settings: Settings
) -> dict[str, int]:
    """One pass: marker partitions, then every kind of record in batches until none is left over."""
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await maintain_markers(connection, schema, now, settings)
    cutoffs = Cutoffs.at(now, settings)
    total: dict[str, int] = {}
    while True:
        async with engine.begin() as connection:
            deleted = await expire(connection, cutoffs, settings.retention_batch_size)
        for table, count in deleted.items():
            total[table] = total.get(table, 0) + count
            EXPIRED.labels(table).inc(count)
        if all(count < settings.retention_batch_size for count in deleted.values()):
            return total


def maintenance_loop(
    engine: AsyncEngine, schema: str, expire: Expire, settings: Settings
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """The `maintenance` loop of a service: `maintain_once` every `maintenance_interval_s`."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            deleted = await maintain_once(engine, schema, expire, settings)
            if any(deleted.values()):
                log.info("records past their retention deleted", schema=schema, **deleted)
            await pause(stop, settings.maintenance_interval_s)

    return run
