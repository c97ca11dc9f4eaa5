"""The outbox relay: moves committed rows of `<schema>.outbox` onto Kafka, in order.

Delivery semantics: at-least-once. Rows are deleted in the same transaction that read
them, after the broker acknowledged them; a crash in between publishes them again with
the same CloudEvent ids. A transaction-scoped advisory lock lets one relay run at a time
per schema, which keeps per-key order across instances.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Counter, Gauge
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import BigInteger

from shared.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE
from shared.kafka import CONTENT_TYPE_HEADER, BrokerUnavailable, LazyProducer, Record
from shared.logs import get_logger
from shared.tasks import pause

log = get_logger(__name__)
PUBLISHED = Counter("tierflow_outbox_published", "Outbox rows relayed to Kafka", ["schema"])
BACKLOG = Gauge("tierflow_outbox_backlog", "Outbox rows waiting to be relayed", ["schema"])
_HEADERS = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]


class OutboxRelay:
    def __init__(
        self, engine: AsyncEngine, producer: LazyProducer, schema: str, batch_size: int = 1000
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._select = text(f"SELECT id, topic, key, value FROM {schema}.outbox ORDER BY id LIMIT :n")  # noqa: S608
        self._delete = text(f"DELETE FROM {schema}.outbox WHERE id = ANY(:ids)").bindparams(  # noqa: S608
            bindparam("ids", type_=ARRAY(BigInteger))
        )
        self._count = text(f"SELECT count(*) FROM {schema}.outbox")  # noqa: S608

    async def relay_once(self) -> int:
        async with self._engine.begin() as connection:
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": f"{self._schema}.outbox"}
            )
            if not locked:
                return 0
            rows = (await connection.execute(self._select, {"n": self._batch_size})).all()
            if not rows:
                BACKLOG.labels(self._schema).set(0)
                return 0
            await self._producer.publish(
                [Record(topic, bytes(key), bytes(value), _HEADERS) for _, topic, key, value in rows]
            )
            await connection.execute(self._delete, {"ids": [row[0] for row in rows]})
        PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)

    async def run(self, stop: asyncio.Event, idle_s: float = 0.05, measure_every_s: float = 5.0) -> None:
        failures = 0
        measured = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - measured > measure_every_s:
                    await self.measure_backlog()
                    measured = time.monotonic()
                relayed = await self.relay_once()
                failures = 0
            except (BrokerUnavailable, SQLAlchemyError, OSError) as exc:
                failures += 1
                log.warning("outbox relay failed, will retry", schema=self._schema, error=str(exc))
                await pause(stop, min(10.0, 0.2 * 2**failures))
                continue
            if relayed < self._batch_size:
                await pause(stop, idle_s)

    async def measure_backlog(self) -> int:
        async with self._engine.connect() as connection:
            backlog = int(await connection.scalar(self._count) or 0)
        BACKLOG.labels(self._schema).set(backlog)
        return backlog
