"""Wires feedback: intake API, the consumer of tier changes and survey requests, the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.feedback.api import build_router
from services.feedback.handlers import Feedback, decode_event
from shared.consumer import ConsumerWorker
from shared.db import create_engine, is_reachable
from shared.http import create_app
from shared.kafka import LazyProducer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.tasks import supervise
from shared.topics import FEEDBACK_EVENTS, OUTREACH, TIER_CHANGES, Topics

DESCRIPTION = """Takes survey answers and complaints, folds them back into tiers (through
`feedback.events.v1`) and reports satisfaction, complaints and outreach effectiveness."""


def build_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    producer = LazyProducer(settings)
    topics = Topics.from_settings(settings)
    feedback = Feedback(engine, topics.name(FEEDBACK_EVENTS))
    worker = ConsumerWorker(
        settings,
        topics=[topics.name(TIER_CHANGES), topics.name(OUTREACH)],
        group_id=settings.feedback_group,
        decode=decode_event,
        handle=feedback.apply_batch,
        dead_letter_topic=lambda topic: f"{topic}.dlq",
        producer=producer,
        max_records=1000,
    )
    relay = OutboxRelay(engine, producer, "feedback")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loops = {"consumer": worker.run, "outbox-relay": relay.run}
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
        service="feedback",
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"database": database_reachable, "broker": producer.is_reachable},
        routers=[build_router(settings, engine, feedback)],
        description=DESCRIPTION,
        retry_after_s=settings.retry_after_s,
    )
