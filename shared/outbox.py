"""The outbox relay: moves committed rows of `<schema>.outbox` onto Kafka, in order.

Delivery semantics: at-least-once. Rows are deleted in the same transaction that read
them, after the broker acknowledged them; a crash in between publishes them again with
the same CloudEvent ids. A transaction-scoped advisory lock lets one relay run at a time
per schema, which keeps per-key order across instances.

A record the broker refuses for good (too large, say) would block every record behind it: after
a bounded number of tries it is moved to `<schema>.outbox_rejected` with the reason, and the
relay goes on. An unreachable broker is waited out, however long: rows keep accumulating (the
services go on committing state), `tierflow_outbox_backlog` and `tierflow_outbox_oldest_age_seconds`
say how far behind subscribers are, and the relay drains them in order once the broker is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import NamedTuple

from aiokafka.errors import (
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from prometheus_client import Counter, Gauge
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import BigInteger

from shared.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE
from shared.errors import TierFlowError
from shared.kafka import CONTENT_TYPE_HEADER, BrokerUnavailable, LazyProducer, Record
from shared.logs import get_logger
from shared.metrics import OUTBOX_SET_ASIDE
from shared.tasks import pause

log = get_logger(__name__)
PUBLISHED = Counter("tierflow_outbox_published", "Outbox rows relayed to Kafka", ["schema"])
BACKLOG = Gauge("tierflow_outbox_backlog", "Outbox rows waiting to be relayed", ["schema"])
# The alert metric: how long the oldest waiting change has not reached subscribers.
BACKLOG_AGE = Gauge(
    "tierflow_outbox_oldest_age_seconds", "Age of the oldest outbox row waiting to be relayed", ["schema"]
)
_HEADERS = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]
# Produce errors about the record itself, answered again however long one waits. Not "any error
# aiokafka calls non-retriable": that includes its timeouts, which an outage causes; nor refused
# authorisation, which refuses every record alike until someone fixes it.
_REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTimestampError,
    InvalidTopicError,
    UnsupportedForMessageFormatError,
)


class RecordRefused(TierFlowError):
    """The broker refused an outbox record; it is tried again a few times, then set aside."""


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        producer: LazyProducer,
        schema: str,
        batch_size: int = 1000,
        max_attempts: int = 5,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._schema = schema
        self._written = asyncio.Event()
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        # Refusals of the row at the head of the outbox, by outbox id (this process's count).
        self._refusals: dict[int, int] = {}
        self._select = text(f"SELECT id, topic, key, value FROM {schema}.outbox ORDER BY id LIMIT :n")  # noqa: S608
        self._delete = text(f"DELETE FROM {schema}.outbox WHERE id = ANY(:ids)").bindparams(  # noqa: S608
            bindparam("ids", type_=ARRAY(BigInteger))
        )
        self._count = text(
            f"SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM {schema}.outbox"  # noqa: S608
        )
        self._set_aside = text(
            f"WITH moved AS (DELETE FROM {schema}.outbox WHERE id = :id"  # noqa: S608
            " RETURNING id, topic, key, value, created_at)"
            f" INSERT INTO {schema}.outbox_rejected (id, topic, key, value, created_at, attempts, reason)"
            " SELECT id, topic, key, value, created_at, :attempts, :reason FROM moved"
        )
        self._count_set_aside = text(f"SELECT count(*) FROM {schema}.outbox_rejected")  # noqa: S608

    async def relay_once(self) -> int:
        refused: RecordRefused | None = None
        async with self._engine.begin() as connection:
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": f"{self._schema}.outbox"}
            )
            if not locked:
                return 0
            rows = [
                _Pending(row_id, topic, bytes(key), bytes(value))
                for row_id, topic, key, value in await connection.execute(
                    self._select, {"n": self._batch_size}
                )
            ]
            if not rows:
                BACKLOG.labels(self._schema).set(0)
                BACKLOG_AGE.labels(self._schema).set(0)
                return 0
            try:
                await self._producer.publish([row.record() for row in rows])
                done = [row.id for row in rows]
                self._refusals.clear()
            except BrokerUnavailable as exc:
                if not isinstance(exc.__cause__, _REFUSED_FOR_GOOD):
                    raise
                done, refused = await self._publish_up_to_the_refused(connection, rows)
            await connection.execute(self._delete, {"ids": done})
        PUBLISHED.labels(self._schema).inc(len(done))
        if refused is not None:
            raise refused
        return len(done)

    async def _publish_up_to_the_refused(
        self, connection: AsyncConnection, rows: Sequence[_Pending]
    ) -> tuple[list[int], RecordRefused | None]:
        """Publishes one row at a time up to the one refused; sets that one aside after its last try.

        Returns the ids published, and the refusal to back off from if the row is to be tried again.
        """
        published: list[int] = []
        for row in rows:
            try:
                await self._producer.publish([row.record()])
            except BrokerUnavailable as exc:
                if not isinstance(exc.__cause__, _REFUSED_FOR_GOOD):
                    raise
                attempts = self._refusals.pop(row.id, 0) + 1
                reason = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
                if attempts < self._max_attempts:
                    self._refusals[row.id] = attempts
                    return published, RecordRefused(f"outbox row {row.id} refused ({attempts}): {reason}")
                await connection.execute(
                    self._set_aside, {"id": row.id, "attempts": attempts, "reason": reason}
                )
                OUTBOX_SET_ASIDE.labels(self._schema).inc()
                log.error(
                    "outbox record refused for good, set aside",
                    schema=self._schema, outbox_id=row.id, topic=row.topic, attempts=attempts, reason=reason,
                )  # fmt: skip
                return published, None
            self._refusals.pop(row.id, None)
            published.append(row.id)
        return published, None

    def nudge(self) -> None:
        """Rows were just committed: relay them now rather than at the end of the idle pause.
        (A relay in another process, or rows written elsewhere, wait for that pause.)"""
        self._written.set()

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Pause until `seconds` pass, a nudge comes or the process stops."""
        waits = [asyncio.ensure_future(self._written.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def run(self, stop: asyncio.Event, idle_s: float = 0.05, measure_every_s: float = 5.0) -> None:
        failures = 0
        measured = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - measured > measure_every_s:
                    await self.measure_backlog()
                    measured = time.monotonic()
                # Cleared before reading: a nudge for rows committed after the read is kept.
                self._written.clear()
                relayed = await self.relay_once()
                failures = 0
            except (BrokerUnavailable, RecordRefused, SQLAlchemyError, OSError) as exc:
                failures += 1
                log.warning("outbox relay failed, will retry", schema=self._schema, error=str(exc))
                await pause(stop, min(10.0, 0.2 * 2**failures))
                continue
            if relayed < self._batch_size:
                await self._idle(stop, idle_s)

    async def measure_backlog(self) -> int:
        async with self._engine.connect() as connection:
            count, age_s = (await connection.execute(self._count)).one()
            backlog = int(count)
            set_aside = int(await connection.scalar(self._count_set_aside) or 0)
        BACKLOG.labels(self._schema).set(backlog)
        BACKLOG_AGE.labels(self._schema).set(float(age_s))
        OUTBOX_SET_ASIDE.labels(self._schema).set(set_aside)
        return backlog


class _Pending(NamedTuple):
    """An outbox row waiting to be relayed (a tuple: one is made per row relayed)."""

    id: int
    topic: str
    key: bytes
    value: bytes

    def record(self) -> Record:
        return Record(self.topic, self.key, self.value, _HEADERS)
