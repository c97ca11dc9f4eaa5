"""Wires engagement: the tier-change consumer, the expiry timer, the outbox relay, the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.engagement.api import build_router
from services.engagement.handlers import Engagement, decode_change
from shared.consumer import ConsumerWorker
from shared.db import create_engine, is_reachable
from shared.http import create_app
from shared.kafka import LazyProducer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.tasks import every, supervise
from shared.topics import OUTREACH, TIER_CHANGES, Topics

DESCRIPTION = """Turns tier and stage changes into tier-specific outreach (playbooks with
consent, frequency, quiet-hour, complaint and suitability guardrails) and runs the RM queue."""


def build_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    producer = LazyProducer(settings)
    topics = Topics.from_settings(settings)
    engagement = Engagement(engine, topics.name(OUTREACH))
    worker = ConsumerWorker(
        settings,
        topics=[topics.name(TIER_CHANGES)],
        group_id=settings.engagement_group,
        decode=decode_change,
        handle=engagement.apply_batch,
        dead_letter_topic=lambda topic: f"{topic}.dlq",
        producer=producer,
        max_records=500,
    )
    relay = OutboxRelay(engine, producer, "engagement")

    async def consume(stop: asyncio.Event) -> None:
        await engagement.ensure_playbook()
        await worker.run(stop)

    async def expire(stop: asyncio.Event) -> None:
        await every(settings.review_poll_s, engagement.expire_due, stop)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loops = {"consumer": consume, "expiry": expire, "outbox-relay": relay.run}
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
        service="engagement",
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"database": database_reachable, "broker": producer.is_reachable},
        routers=[build_router(engine, engagement)],
        description=DESCRIPTION,
        retry_after_s=settings.retry_after_s,
    )
