"""Outbound CloudEvents and the outbox rows that carry them.

A service writes its events into `<schema>.outbox` in the same transaction as the state
they announce; `shared.outbox.OutboxRelay` moves the committed rows onto Kafka.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

# `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` without a new encoder per event:
# for what orjson refuses (an integer beyond 64 bits, a key that is not a string).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# Times and dataclasses orjson would write in its own way go to the standard encoder, which refuses them.
_REFUSED_AS_BEFORE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@dataclass(frozen=True)
class OutboxMessage:
    key: bytes
    value: bytes


def customer_event(
    *, event_id: str, source: str, event_type: str, time: datetime, customer_id: str, data: Mapping[str, Any]
) -> OutboxMessage:
    """A structured-mode CloudEvent about a customer as compact UTF-8 JSON, keyed by the customer
    so that subscribers see one customer's events in order."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time.isoformat(),
        "subject": customer_id,
        "datacontenttype": "application/json",
        "data": data,
    }
    return OutboxMessage(customer_id.encode(), compact_json(event))


def compact_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` means
    it (numbers may be spelled otherwise, `1e-05` as `0.00001`), written by orjson: several times
    faster, and scoring writes an event for a third of the events it applies. A value orjson
    refuses goes to the standard encoder, which writes it or names what is wrong as before. A
    float that is not finite comes out as `null` where the standard encoder wrote `NaN`, which is
    no JSON: scoring stores no such score (see `services.scoring.store._state_json`)."""
    try:
        return orjson.dumps(value, option=_REFUSED_AS_BEFORE)
    except orjson.JSONEncodeError:
        return _COMPACT_JSON.encode(value).encode()


@dataclass(frozen=True)
class EventSource:
    """A service as the source of events whose ids are derived from what they are about, so an
    event built again (a retried transaction, a replay) carries the id subscribers have seen."""

    source: str
    id_namespace: uuid.UUID

    def event(
        self, seed: str, event_type: str, time: datetime, customer_id: str, data: Mapping[str, Any]
    ) -> OutboxMessage:
        event_id = str(uuid.uuid5(self.id_namespace, seed))
        return customer_event(
            event_id=event_id,
            source=self.source,
            event_type=event_type,
            time=time,
            customer_id=customer_id,
            data=data,
        )


async def enqueue(
    connection: AsyncConnection, schema: str, topic: str, messages: Sequence[OutboxMessage]
) -> None:
    """Outbox rows for `topic`, in the caller's transaction and in the order given."""
    if messages:
        # Driver-level SQL: the keys and values skip SQLAlchemy's per-element binding.
        await connection.exec_driver_sql(
            _insert(schema), (topic, [m.key for m in messages], [m.value for m in messages])
        )


@cache
def _insert(schema: str) -> str:
    return (
        f"INSERT INTO {schema}.outbox (topic, key, value)"  # noqa: S608 - a service's own schema name
        " SELECT $1::text, * FROM unnest($2::bytea[], $3::bytea[])"
    )
