"""Wires feedback: intake API, the consumer of tier changes and survey requests, the outbox relay."""

from __future__ import annotations

from fastapi import FastAPI

from services.feedback.api import build_router
from services.feedback.handlers import Feedback, decode_event
from shared.consumer import ConsumerWorker
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.topics import FEEDBACK_EVENTS, Topics
from shared.worker_app import Resources, worker_app

DESCRIPTION = """Takes survey answers and complaints, folds them back into tiers (through
`feedback.events.v1`) and reports satisfaction, complaints and outreach effectiveness."""


def build_app(settings: Settings) -> FastAPI:
    resources = Resources.create(settings)
    engine, producer = resources.engine, resources.producer
    topics = Topics.from_settings(settings)
    feedback = Feedback(engine, topics.name(FEEDBACK_EVENTS))
    worker = ConsumerWorker(
        settings,
        topics=topics.consumed_by("feedback"),
        group_id=settings.feedback_group,
        decode=decode_event,
        handle=feedback.apply_batch,
        dead_letter_topic=lambda topic: f"{topic}.dlq",
        producer=producer,
        max_records=1000,
    )
    relay = OutboxRelay(engine, producer, "feedback", max_attempts=settings.outbox_max_attempts)

    return worker_app(
        "feedback",
        resources,
        loops={"consumer": worker.run, "outbox-relay": relay.run},
        routers=[build_router(settings, engine, feedback)],
        description=DESCRIPTION,
    )
