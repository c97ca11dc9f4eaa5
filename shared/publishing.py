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

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import LargeBinary

_BYTES = ARRAY(LargeBinary)
# `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` without a new encoder per event.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


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
    value = _COMPACT_JSON.encode(event).encode()
    return OutboxMessage(customer_id.encode(), value)


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
        await connection.execute(
            _insert(schema),
            {"topic": topic, "keys": [m.key for m in messages], "values": [m.value for m in messages]},
        )


@cache
def _insert(schema: str) -> TextClause:
    return text(
        f"INSERT INTO {schema}.outbox (topic, key, value) SELECT :topic, * FROM unnest(:keys, :values)"  # noqa: S608 - a service's own schema name
    ).bindparams(bindparam("keys", type_=_BYTES), bindparam("values", type_=_BYTES))
