"""Wires scoring: engine, producer, the consumer worker, the review loop, the outbox relay, the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.scoring import metrics
from services.scoring.api import build_router
from services.scoring.domain.events import ScoringEvent
from services.scoring.handlers import ClockMode, Scoring, event_decoder
from services.scoring.replay import group_id
from shared.consumer import ConsumerWorker, Delivered
from shared.db import create_engine, is_reachable
from shared.http import create_app
from shared.kafka import LazyProducer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.tasks import every, supervise
from shared.topics import BANK_EVENTS, FEEDBACK_EVENTS, TIER_CHANGES, Topics

DESCRIPTION = """Recomputes each customer's value tier and lifecycle stage on every event,
explains every decision, and publishes tier changes to `customer.tier-changes.v1`."""


def build_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    producer = LazyProducer(settings)
    topics = Topics.from_settings(settings)
    scoring = Scoring(engine, settings, topics.name(TIER_CHANGES), ClockMode(settings.scoring_clock))

    async def handle(batch: Sequence[Delivered[ScoringEvent]]) -> None:
        started = time.perf_counter()
        await scoring.apply_batch(batch)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    relay = OutboxRelay(engine, producer, "scoring")

    async def consume(stop: asyncio.Event) -> None:
        await scoring.ensure_policy()
        worker = ConsumerWorker(
            settings,
            topics=[topics.name(BANK_EVENTS), topics.name(FEEDBACK_EVENTS)],
            group_id=group_id(settings.scoring_group, await scoring.replay_generation()),
            decode=event_decoder(settings),
            handle=handle,
            dead_letter_topic=lambda topic: f"{topic}.dlq",
            producer=producer,
            max_records=settings.scoring_batch_size,
        )
        await worker.run(stop)

    async def review(stop: asyncio.Event) -> None:
        async def review_all_due() -> None:
            while await scoring.review_due(settings.review_batch_size) == settings.review_batch_size:
                if stop.is_set():
                    return

        await every(settings.review_poll_s, review_all_due, stop)

    async def backlog(stop: asyncio.Event) -> None:
        await every(5, relay.measure_backlog, stop)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loops = {"consumer": consume, "review": review, "outbox-relay": relay.run, "outbox-backlog": backlog}
        tasks = [asyncio.create_task(supervise(name, loop, stop)) for name, loop in loops.items()]
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=30)
            await producer.close()
            await engine.dispose()

    async def database_reachable() -> bool:
        return await is_reachable(engine)

    return create_app(
        service="scoring",
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"database": database_reachable, "broker": producer.is_reachable},
        routers=[build_router(engine, scoring)],
        description=DESCRIPTION,
        retry_after_s=settings.retry_after_s,
    )
