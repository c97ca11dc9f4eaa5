"""A consumer worker on the real broker and database, applying records whose effects can be counted."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from shared.consumer import Backoff, ConsumerWorker, Delivered, PoisonMessage
from shared.db import consumer_transaction, create_engine, is_reachable
from shared.kafka import LazyProducer, Record
from shared.settings import Settings
from shared.topics import BANK_EVENTS, Topics
from tests.infra import Infra, create_topics
from tests.kafka_reader import Message, read_messages

Value = dict[str, Any]


def decode(record: ConsumerRecord[bytes, bytes]) -> Value:
    try:
        value = json.loads(record.value or b"")
    except ValueError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    # Unforeseen shapes fail here as in a careless decoder: a JSON list raises TypeError.
    return {**value, "id": str(value["id"])}


class Ledger:
    """Applies each record by appending its id and tier to a table, one transaction per batch.

    Deliberately without deduplication: a record applied twice shows up twice. A record without
    a `tier` raises `KeyError` inside the transaction, as a handler reading a raw dict would.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Reads go around the worker's pool, so they neither add to it nor wait for it.
        self._reader = create_async_engine(engine.url, poolclass=NullPool)
        self.table = f"ledger_{uuid.uuid4().hex[:10]}"
        self.calls = 0

    async def create_table(self) -> None:
        async with self.engine.begin() as db:
            await db.execute(
                text(f"CREATE TABLE {self.table} (seq bigserial PRIMARY KEY, id text NOT NULL, tier text)")
            )

    async def handle(self, batch: Sequence[Delivered[Value]]) -> None:
        self.calls += 1
        insert = text(f"INSERT INTO {self.table} (id, tier) VALUES (:id, :tier)")  # noqa: S608
        async with consumer_transaction(self.engine) as db:
            for item in batch:
                if item.value.get("tier") == "slow":
                    # A statement that always outlasts the server's timeout (SQLSTATE 57014).
                    await db.execute(text("SET LOCAL statement_timeout = '100ms'"))
                    await db.execute(text("SELECT pg_sleep(1)"))
                await db.execute(insert, {"id": item.value["id"], "tier": item.value["tier"]})

    async def holds(self, count: int) -> bool:
        return len(await self.applied()) >= count

    async def applied(self) -> list[str]:
        async with self._reader.connect() as db:
            rows = await db.execute(text(f"SELECT id FROM {self.table} ORDER BY seq"))  # noqa: S608
            return [row[0] for row in rows]


@dataclass
class WorkerBox:
    """Topics with a prefix of their own and a database of its own, so tests share nothing."""

    infra: Infra
    name: str
    settings: Settings

    @classmethod
    async def create(cls, infra: Infra, **overrides: str) -> WorkerBox:
        name = f"w{uuid.uuid4().hex[:10]}"
        url = await scratch_database(infra, name)
        settings = infra.settings(DATABASE_URL=url, TIERFLOW_TOPIC_PREFIX=f"{name}.", **overrides)
        await asyncio.to_thread(create_topics, settings)
        return cls(infra, name, settings)

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    def reached_at(self, port: int) -> WorkerBox:
        """The same database reached at another port (a proxy in front of it)."""
        url = make_url(self.settings.database_url.get_secret_value()).set(port=port)
        database_url = SecretStr(url.render_as_string(hide_password=False))
        return replace(self, settings=self.settings.model_copy(update={"database_url": database_url}))

    async def ledger(self) -> Ledger:
        """A ledger on an engine made as the services make theirs (close it with the test)."""
        ledger = Ledger(create_engine(self.settings))
        await ledger.create_table()
        return ledger

    @property
    def group(self) -> str:
        return f"{self.name}-group"

    @asynccontextmanager
    async def running(self, ledger: Ledger) -> AsyncIterator[asyncio.Task[None]]:
        """A worker applying to `ledger`, run as a service runs it minus the restart: a crash fails."""
        topics = self.topics
        producer = LazyProducer(self.settings)
        worker = ConsumerWorker(
            self.settings,
            topics=[topics.bank_events],
            group_id=self.group,
            decode=decode,
            handle=ledger.handle,
            dead_letter_topic=lambda _topic: topics.dlq(BANK_EVENTS),
            producer=producer,
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            reachable=lambda: is_reachable(ledger.engine),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield task
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            finally:
                await producer.close()

    async def publish(self, values: Sequence[Value | bytes], key: bytes = b"C1") -> None:
        """One key by default: one partition, so the order of the records is defined."""
        producer = LazyProducer(self.settings)
        try:
            await producer.publish(
                [
                    Record(
                        self.topics.bank_events, key, v if isinstance(v, bytes) else json.dumps(v).encode()
                    )
                    for v in values
                ]
            )
        finally:
            await producer.close()

    async def dead_letters(self, expected: int | None = None) -> list[Message]:
        dlq = self.topics.dlq(BANK_EVENTS)
        return await asyncio.to_thread(read_messages, self.infra.bootstrap_servers, dlq, expected)

    async def read_only(self, on: bool) -> None:
        """What a failover to a standby looks like to new sessions: every write refused (25006)."""
        setting = "on" if on else "off"
        await admin_execute(
            self.infra, f'ALTER DATABASE "{self.name}" SET default_transaction_read_only = {setting}'
        )


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    worker: asyncio.Task[None] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker is not None and worker.done():
            worker.result()  # re-raises what stopped it
            raise AssertionError(f"the worker stopped before {what}")
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


async def scratch_database(infra: Infra, name: str) -> str:
    """An empty database on the test server, for tables a test makes itself."""
    await admin_execute(infra, f'CREATE DATABASE "{name}"')
    return make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)


async def admin_execute(infra: Infra, statement: str) -> None:
    url = make_url(infra.database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
