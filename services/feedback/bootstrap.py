"""Wires feedback: intake API, the consumer of tier changes and survey requests, the outbox relay."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.feedback.api import build_router
from services.feedback.handlers import Feedback, event_decoder
from services.feedback.store import expire
from shared.settings import Settings
from shared.topics import FEEDBACK_EVENTS, Topics
from shared.worker_app import Resources, worker_app

DESCRIPTION = """Takes survey answers and complaints, folds them back into tiers (through
`feedback.events.v1`) and reports satisfaction, complaints and outreach effectiveness."""


def build_app(settings: Settings) -> FastAPI:
    resources = Resources.create(settings)
    engine = resources.engine
    feedback = Feedback(
        engine, Topics.from_settings(settings).name(FEEDBACK_EVENTS), settings.clock_of("feedback")
    )
    worker = resources.consumer(
        "feedback",
        settings.feedback_group,
        event_decoder(settings),
        feedback.apply_batch,
        settings.feedback_batch_size,
    )
    relay = resources.outbox_relay("feedback")

    async def consume(stop: asyncio.Event) -> None:
        await resources.prepare_markers("feedback")
        await worker.run(stop)

    return worker_app(
        "feedback",
        resources,
        loops={
            "consumer": consume,
            "outbox-relay": relay.run,
            "maintenance": resources.maintenance("feedback", expire),
        },
        routers=[build_router(settings, engine, feedback)],
        description=DESCRIPTION,
    )
