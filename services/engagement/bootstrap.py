"""Wires engagement: the tier-change consumer, the expiry timer, the outbox relay, the API."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import FastAPI

from services.engagement import store
from services.engagement.api import build_router
from services.engagement.handlers import Engagement, change_decoder
from shared.settings import Settings
from shared.tasks import every
from shared.topics import OUTREACH, TIER_CHANGES, Topics
from shared.worker_app import Resources, worker_app

DESCRIPTION = """Turns tier and stage changes into tier-specific outreach (playbooks with
consent, frequency, quiet-hour, complaint and suitability guardrails) and runs the RM queue."""


def build_app(settings: Settings) -> FastAPI:
    resources = Resources.create(settings)
    engine = resources.engine
    topics = Topics.from_settings(settings)
    engagement = Engagement(
        engine,
        topics.name(OUTREACH),
        settings.clock_of("engagement"),
        changes_topic=topics.name(TIER_CHANGES),
    )
    worker = resources.consumer(
        "engagement",
        settings.engagement_group,
        change_decoder(settings),
        engagement.apply_batch,
        settings.engagement_batch_size,
    )
    relay = resources.outbox_relay("engagement")

    async def consume(stop: asyncio.Event) -> None:
        await engagement.ensure_playbook()
        await resources.prepare_markers("engagement")
        await worker.run(stop)

    async def expire(stop: asyncio.Event) -> None:
        await every(settings.review_poll_s, partial(engagement.expire_due, settings.expiry_batch_size), stop)

    return worker_app(
        "engagement",
        resources,
        loops={
            "consumer": consume,
            "expiry": expire,
            "outbox-relay": relay.run,
            "maintenance": resources.maintenance("engagement", store.expire),
        },
        routers=[build_router(engine, engagement)],
        description=DESCRIPTION,
    )
