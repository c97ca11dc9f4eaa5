"""Wires scoring: engine, producer, the consumer worker, the review loop, the outbox relay, the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from fastapi import FastAPI

from services.scoring import metrics
from services.scoring.api import build_router
from services.scoring.domain.events import ScoringEvent
from services.scoring.handlers import Scoring, event_decoder
from services.scoring.replay import current_generation, group_id
from services.scoring.store import StateCache
from shared.clock import ClockMode
from shared.consumer import Delivered
from shared.settings import Settings
from shared.tasks import every
from shared.topics import TIER_CHANGES, Topics
from shared.worker_app import Resources, worker_app

DESCRIPTION = """Recomputes each customer's value tier and lifecycle stage on every event,
explains every decision, and publishes tier changes to `customer.tier-changes.v1`."""


def build_app(settings: Settings) -> FastAPI:
    resources = Resources.create(settings)
    engine = resources.engine
    topics = Topics.from_settings(settings)
    scoring = Scoring(
        engine,
        settings,
        topics.name(TIER_CHANGES),
        ClockMode(settings.scoring_clock),
        settings.scoring_as_of,
        StateCache(settings.scoring_state_cache_size),
    )

    async def handle(batch: Sequence[Delivered[ScoringEvent]]) -> None:
        started = time.perf_counter()
        await scoring.apply_batch(batch)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    relay = resources.outbox_relay("scoring")

    async def consume(stop: asyncio.Event) -> None:
        await scoring.ensure_policy()
        group = group_id(settings.scoring_group, await current_generation(engine))
        worker = resources.consumer(
            "scoring", group, event_decoder(settings), handle, settings.scoring_batch_size
        )
        await worker.run(stop)

    async def review(stop: asyncio.Event) -> None:
        async def review_all_due() -> None:
            while await scoring.review_due(settings.review_batch_size) == settings.review_batch_size:
                if stop.is_set():
                    return

        await every(settings.review_poll_s, review_all_due, stop)

    return worker_app(
        "scoring",
        resources,
        loops={"consumer": consume, "review": review, "outbox-relay": relay.run},
        routers=[build_router(engine, scoring)],
        description=DESCRIPTION,
    )
