"""One calendar for every service: the wall clock, the event clock or a fixed instant.

With the event clock a service's "now" is the latest event time it has applied (its
watermark, kept in `<schema>.clock`), so a year of simulated or replayed events unfolds on
its own calendar in scoring, engagement and feedback alike. A time stated by a caller (an
RM action or a survey given at a simulated moment) is honoured only off the wall clock:
live, "now" is the wall clock and nobody may say otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

from sqlalchemy import DateTime, Integer, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.errors import TierFlowError

# A stated time may run this far ahead of the wall clock, as an event's time may at ingest.
STATED_TIME_TOLERANCE = timedelta(minutes=5)


class ClockMode(StrEnum):
    WALL = "wall"
    EVENT = "event"
    FIXED = "fixed"


class StatedTimeRefused(TierFlowError):
    """A caller stated the time of an action while the service runs on the wall clock."""


@dataclass(frozen=True)
class Clock:
    """How a service tells the time; `as_of` is the instant of the fixed clock."""

    mode: ClockMode = ClockMode.WALL
    as_of: datetime | None = None

    def now(self, watermark: datetime | None, wall: datetime) -> datetime:
        """The service's now, given its watermark and the wall clock's reading."""
        if self.mode is ClockMode.FIXED and self.as_of is not None:
            return self.as_of
        if self.mode is ClockMode.EVENT and watermark is not None:
            return watermark
        return wall

    def when(self, stated: datetime | None, watermark: datetime | None, wall: datetime) -> datetime:
        """The time of an action: the one its caller stated, where this clock accepts one."""
        if stated is None:
            return self.now(watermark, wall)
        if self.mode is ClockMode.WALL:
            raise StatedTimeRefused(
                "`at` is accepted only when the service runs on the event or fixed clock;"
                " on the wall clock an action happens when it arrives"
            )
        if stated > wall + STATED_TIME_TOLERANCE:
            raise StatedTimeRefused(f"`at` is more than {STATED_TIME_TOLERANCE} ahead of the clock")
        return stated

    @property
    def follows_events(self) -> bool:
        return self.mode is ClockMode.EVENT


async def watermark(db: AsyncConnection, schema: str) -> datetime | None:
    """The latest event time `schema`'s service has applied, if any."""
    value: datetime | None = await db.scalar(_read(schema))
    return value


async def advance_watermark(db: AsyncConnection, schema: str, moment: datetime) -> None:
    """Move the watermark to `moment` if that is later; it never goes back."""
    await db.execute(_advance(schema), {"at": moment})


async def service_now(db: AsyncConnection, schema: str, clock: Clock) -> datetime:
    """The service's now on `clock`, reading the watermark only when the clock needs it."""
    mark = await watermark(db, schema) if clock.follows_events else None
    return clock.now(mark, datetime.now(UTC))


async def partition_watermarks(db: AsyncConnection, schema: str, topic: str) -> dict[int, datetime]:
    """The latest event time `schema`'s service applied from each partition of `topic` that has had one
    (`<schema>.partition_clock`; see `shared.partition_clocks`)."""
    rows = await db.execute(_read_partitions(schema), {"topic": topic})
    return {int(row[0]): row[1] for row in rows}


async def advance_partition_watermarks(
    db: AsyncConnection, schema: str, topic: str, watermarks: Mapping[int, datetime]
) -> None:
    """Move these partitions' clocks forward; a clock never goes back."""
    if not watermarks:
        return
    ordered = sorted(watermarks.items())
    await db.execute(
        _advance_partitions(schema),
        {"topic": topic, "partitions": [p for p, _ in ordered], "times": [t for _, t in ordered]},
    )


@cache
def _read_partitions(schema: str) -> TextClause:
    return text(f"SELECT partition, watermark FROM {schema}.partition_clock WHERE topic = :topic")  # noqa: S608 - a service's own schema name


@cache
def _advance_partitions(schema: str) -> TextClause:
    return text(
        f"INSERT INTO {schema}.partition_clock (topic, partition, watermark) "  # noqa: S608 - a service's own schema name
        "SELECT :topic, u.partition, u.at FROM unnest(:partitions, :times) AS u(partition, at) "
        f"ON CONFLICT (topic, partition) DO UPDATE "
        f"SET watermark = GREATEST({schema}.partition_clock.watermark, EXCLUDED.watermark)"
    ).bindparams(
        bindparam("partitions", type_=ARRAY(Integer)),
        bindparam("times", type_=ARRAY(DateTime(timezone=True))),
    )


@cache
def _read(schema: str) -> TextClause:
    return text(f"SELECT watermark FROM {schema}.clock")  # noqa: S608 - a service's own schema name


@cache
def _advance(schema: str) -> TextClause:
    return text(
        f"INSERT INTO {schema}.clock (id, watermark) VALUES (1, :at) "  # noqa: S608 - a service's own schema name
        f"ON CONFLICT (id) DO UPDATE SET watermark = GREATEST({schema}.clock.watermark, EXCLUDED.watermark)"
    )
