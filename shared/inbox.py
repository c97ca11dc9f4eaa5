"""The inbox: which consumed events a service has already applied.

A service marks an event in the same transaction as the state it derives from it, so a
redelivered event finds its mark and changes nothing. An event is known by its CloudEvents
`source` and `id` together, as the spec defines uniqueness: the same id from two sources
is two events. Markers are partitioned by the event's `time`, which a resend keeps, so the
resend meets its marker (see shared/retention.py for how long markers are kept).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

# The source of markers written before markers recorded one (see the migrations): such a
# marker stands for its id from any source, so an event applied then is not applied again.
LEGACY_SOURCE = ""


async def claim_event(
    connection: AsyncConnection, schema: str, source: str, event_id: str, event_time: datetime
) -> bool:
    """Mark the event applied in `<schema>.applied_events`; False when it already was."""
    inserted = await connection.scalar(
        _claim(schema), {"source": source, "id": event_id, "time": event_time, "legacy": LEGACY_SOURCE}
    )
    return inserted is not None


@cache
def _claim(schema: str) -> TextClause:
    # An event is known by source and id, whatever time a resend states: the marker is looked for
    # in every partition (the primary key's leading columns serve it). Markers from before
    # partitioning carry no event time: they are looked up apart.
    return text(
        f"INSERT INTO {schema}.applied_events (source, event_id, event_time) "  # noqa: S608 - a service's own schema name
        "SELECT :source, :id, :time WHERE NOT EXISTS ("
        f"SELECT 1 FROM {schema}.applied_events WHERE source = :source AND event_id = :id) "
        "AND NOT EXISTS ("
        f"SELECT 1 FROM {schema}.applied_events_legacy "
        "WHERE source IN (:source, :legacy) AND event_id = :id) "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    )
