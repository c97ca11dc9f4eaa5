"""Erased customers: each service's tombstone list and the record that an erasure happened.

A service keeps, in `<schema>.erasures`, one row per erased customer: when, by whom (an API key
id or the erasure event), why, and what was removed, counted. The row names the customer only
by a reference, `sha256(salt || customer_id)`, with a random salt the service's migration
created and that never leaves its database. The reference lets the service recognise the
customer again, to refuse their later events and to answer a regulator asking whether a given
customer was erased, without the table holding the id itself: a copy of the table alone
cannot be read back into customer ids, and the references of two installations do not match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

from shared.contracts.internal import ErasureNotice
from shared.errors import TierFlowError

# The reason a consuming service records: the request's own reason stays with scoring.
ERASED_BY_EVENT = "customer.erased.v1"
ERASED_REASON = "customer erased (tombstone): events and feedback for this customer are refused"


class CustomerErased(TierFlowError):
    """Something arrived for an erased customer; it is refused, never applied (a dead letter).

    The message names no customer: the dead letter's key already does, and logs must not."""

    def __init__(self) -> None:
        super().__init__(ERASED_REASON)


# Taken by writers that check the tombstones first (shared) and by an erasure (exclusive), so a
# write cannot slip in between an erasure's deletes and its tombstone.
_GUARD = text(
    "SELECT pg_advisory_xact_lock_shared(hashtext('tierflow-erasure:' || id)) "
    "FROM (SELECT DISTINCT unnest(:ids) AS id ORDER BY id) AS customers"
).bindparams(bindparam("ids", type_=ARRAY(Text)))
_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(hashtext('tierflow-erasure:' || :id))")


async def guard_against_erasure(connection: AsyncConnection, customer_ids: Iterable[str]) -> None:
    """Until the transaction ends, no erasure of these customers runs; check tombstones after."""
    await connection.execute(_GUARD, {"ids": sorted(set(customer_ids))})


async def exclude_writers(connection: AsyncConnection, customer_id: str) -> None:
    """Wait for the transactions guarding the customer to end, and keep new ones out until this one does."""
    await connection.execute(_EXCLUSIVE, {"id": customer_id})


def _reference(schema: str, customer: str) -> str:
    return f"sha256((SELECT salt FROM {schema}.erasure_salt) || convert_to({customer}, 'UTF8'))"  # noqa: S608 - a service's own schema


@cache
def _erased_among(schema: str) -> TextClause:
    return text(
        f"SELECT u.customer_id FROM unnest(:ids) AS u(customer_id) WHERE EXISTS ("  # noqa: S608 - a service's own schema
        f"SELECT 1 FROM {schema}.erasures AS e WHERE e.customer_ref = {_reference(schema, 'u.customer_id')})"
    ).bindparams(bindparam("ids", type_=ARRAY(Text)))


@cache
def _record(schema: str) -> TextClause:
    return text(
        f"INSERT INTO {schema}.erasures (customer_ref, erased_at, actor, reason, event_id, removed) "  # noqa: S608
        f"VALUES ({_reference(schema, ':customer')}, :at, :actor, :reason, :event_id, :removed) "
        "ON CONFLICT (customer_ref) DO NOTHING RETURNING erased_at"
    ).bindparams(bindparam("removed", type_=JSONB))


@cache
def _delete_outbox(schema: str, table: str) -> TextClause:
    return text(f"DELETE FROM {schema}.{table} WHERE key = convert_to(:customer, 'UTF8')")  # noqa: S608


async def erased_among(connection: AsyncConnection, schema: str, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers were erased (their tombstone is in `<schema>.erasures`)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    rows = await connection.execute(_erased_among(schema), {"ids": ids})
    return {row[0] for row in rows}


__all__ = [
    "ERASED_BY_EVENT",
    "ERASED_REASON",
    "CustomerErased",
    "ErasureNotice",
    "erased_among",
    "exclude_writers",
    "forget_unsent_events",
    "guard_against_erasure",
    "record_erasure",
    "record_erasure_by_event",
]


async def record_erasure(
    connection: AsyncConnection,
    schema: str,
    customer_id: str,
    *,
    at: datetime,
    actor: str,
    reason: str,
    event_id: str,
    removed: Mapping[str, int],
) -> bool:
    """The tombstone and the erasure record, in the caller's transaction; False if it existed."""
    recorded = await connection.scalar(
        _record(schema),
        {
            "customer": customer_id,
            "at": at,
            "actor": actor,
            "reason": reason,
            "event_id": event_id,
            "removed": dict(removed),
        },
    )
    return recorded is not None


async def record_erasure_by_event(
    connection: AsyncConnection, schema: str, notice: ErasureNotice, removed: Mapping[str, int]
) -> bool:
    """The tombstone and erasure record of a service that erased on consuming `customer.erased.v1`."""
    return await record_erasure(
        connection,
        schema,
        notice.customer_id,
        at=notice.erased_at,
        actor=notice.source,
        reason=ERASED_BY_EVENT,
        event_id=notice.event_id,
        removed=removed,
    )


async def forget_unsent_events(connection: AsyncConnection, schema: str, customer_id: str) -> int:
    """Drop the customer's events not yet on the broker (outbox and set-aside rows, keyed by the
    customer): after an erasure nothing of theirs is published any more."""
    removed = 0
    for table in ("outbox", "outbox_rejected"):
        result = await connection.execute(_delete_outbox(schema, table), {"customer": customer_id})
        removed += result.rowcount
    return removed
