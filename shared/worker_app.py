"""A service process with a database, a broker and background loops beside its HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.consumer import ConsumerWorker, Decoder, Handler
from shared.db import create_engine, is_reachable
from shared.http import HttpLimits, create_app
from shared.kafka import LazyProducer
from shared.outbox import OutboxRelay
from shared.retention import Expire, maintain_all_markers, maintenance_loop
from shared.settings import Settings
from shared.tasks import supervise
from shared.topics import Topics
from shared.worker_status import worker_status_router

T = TypeVar("T")
Loop = Callable[[asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class Resources:
    """Made once per process at start-up, closed at shutdown."""

    settings: Settings
    engine: AsyncEngine
    producer: LazyProducer

    @classmethod
    def create(cls, settings: Settings) -> Resources:
        return cls(settings, create_engine(settings), LazyProducer(settings))

    def consumer(
        self,
        service: str,
        group_id: str,
        decode: Decoder[T],
        handle: Handler[T],
        batch_size: int,
        *,
        across_partitions: bool = False,
    ) -> ConsumerWorker[T]:
        """The worker for the topics `service` consumes; unusable records go to their dead-letter
        topics. With `across_partitions` one handler call takes what a poll fetched from all of them."""
        topics = Topics.from_settings(self.settings)
        return ConsumerWorker(
            self.settings,
            topics=topics.consumed_by(service),
            group_id=group_id,
            decode=decode,
            handle=handle,
            dead_letter_topic=topics.dead_letter_of,
            producer=self.producer,
            max_records=batch_size,
            reachable=lambda: is_reachable(self.engine),
            across_partitions=across_partitions,
        )

    async def prepare_markers(self, schema: str) -> None:
        """Partitions for every event time a consumer accepts, before it consumes: the settings
        may call for more than `tierflow migrate` made, and the maintenance loop runs beside it."""
        await maintain_all_markers(self.engine, [schema], self.settings)

    def maintenance(self, schema: str, expire: Expire) -> Loop:
        """The loop that keeps `schema`'s storage bounded: marker partitions and retention."""
        return maintenance_loop(self.engine, schema, expire, self.settings)

    def outbox_relay(self, schema: str) -> OutboxRelay:
        return OutboxRelay(
            self.engine,
            self.producer,
            schema,
            self.settings.outbox_batch_size,
            max_attempts=self.settings.outbox_max_attempts,
        )


def worker_app(
    service: str,
    resources: Resources,
    *,
    loops: Mapping[str, Loop],
    routers: list[APIRouter],
    description: str,
) -> FastAPI:
    """The API plus supervised loops; shutdown stops the loops, then the producer and the pool.

    `TIERFLOW_LOOPS` picks some of the loops, so a relay or a consumer can run (and be scaled
    or restarted) as a process of its own.
    """
    wanted = resources.settings.loops
    unknown = wanted - set(loops)
    if wanted and unknown == wanted:
        named = ", ".join(sorted(unknown))
        raise ValueError(f"{service} has no loop named {named}; it has {', '.join(loops)}")
    running = {name: loop for name, loop in loops.items() if not wanted or name in wanted}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(supervise(name, loop, stop)) for name, loop in running.items()]
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=30)
            await resources.producer.close()
            await resources.engine.dispose()

    async def database_reachable() -> bool:
        return await is_reachable(resources.engine)

    return create_app(
        service=service,
        keyring=resources.settings.api_keys,
        lifespan=lifespan,
        readiness={"database": database_reachable, "broker": resources.producer.is_reachable},
        routers=[*routers, worker_status_router(service)],
        description=description,
        retry_after_s=resources.settings.retry_after_s,
        limits=HttpLimits.from_settings(resources.settings),
    )
