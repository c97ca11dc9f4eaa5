"""Wires engagement: the tier-change consumer, the expiry timer, the outbox relay, the API."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.engagement.api import build_router
from services.engagement.handlers import Engagement, decode_change
from shared.consumer import ConsumerWorker
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.tasks import every
from shared.topics import OUTREACH, Topics
from shared.worker_app import Resources, worker_app

DESCRIPTION = """Turns tier and stage changes into tier-specific outreach (playbooks with
consent, frequency, quiet-hour, complaint and suitability guardrails) and runs the RM queue."""


def build_app(settings: Settings) -> FastAPI:
    resources = Resources.create(settings)
    engine, producer = resources.engine, resources.producer
    topics = Topics.from_settings(settings)
    engagement = Engagement(engine, topics.name(OUTREACH))
    worker = ConsumerWorker(
        settings,
        topics=topics.consumed_by("engagement"),
        group_id=settings.engagement_group,
        decode=decode_change,
        handle=engagement.apply_batch,
        dead_letter_topic=lambda topic: f"{topic}.dlq",
        producer=producer,
        max_records=500,
    )
    relay = OutboxRelay(engine, producer, "engagement", max_attempts=settings.outbox_max_attempts)

    async def consume(stop: asyncio.Event) -> None:
        await engagement.ensure_playbook()
        await worker.run(stop)

    async def expire(stop: asyncio.Event) -> None:
        await every(settings.review_poll_s, engagement.expire_due, stop)

    return worker_app(
        "engagement",
        resources,
        loops={"consumer": consume, "expiry": expire, "outbox-relay": relay.run},
        routers=[build_router(engine, engagement)],
        description=DESCRIPTION,
    )
