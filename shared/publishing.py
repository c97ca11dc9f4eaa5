"""Outbound CloudEvents and the outbox rows that carry them.

A service writes its events into `<schema>.outbox` in the same transaction as the state
they announce; `shared.outbox.OutboxRelay` moves the committed rows onto Kafka.
"""

from __future__ import annotations

import json
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


def cloudevent(
    *, event_id: str, source: str, event_type: str, time: datetime, subject: str, data: Mapping[str, Any]
) -> bytes:
    """A structured-mode CloudEvent as compact UTF-8 JSON, the bytes an outbox row holds."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time.isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class OutboxMessage:
    key: bytes
    value: bytes


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
