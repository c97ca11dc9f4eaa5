"""The inbox: which consumed events a service has already applied.

A service marks an event in the same transaction as the state it derives from it, so a
redelivered event finds its mark and changes nothing.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection


async def claim_event(connection: AsyncConnection, schema: str, event_id: str) -> bool:
    """Mark the event applied in `<schema>.applied_events`; False when it already was."""
    inserted = await connection.scalar(_claim(schema), {"id": event_id})
    return inserted is not None


@cache
def _claim(schema: str) -> TextClause:
    return text(
        f"INSERT INTO {schema}.applied_events (event_id) VALUES (:id) "  # noqa: S608 - a service's own schema name
        "ON CONFLICT DO NOTHING RETURNING event_id"
    )
