"""Wires scoring: engine, producer, the consumer worker, the review loop, the outbox relay, the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka.errors import KafkaError
from fastapi import FastAPI

from services.scoring import metrics
from services.scoring.api import build_router
from services.scoring.domain.events import ScoringEvent
from services.scoring.handlers import Scoring, event_decoder
from services.scoring.household_stage import HouseholdStage, contribution_decoder
from services.scoring.replay import current_generation, group_id
from services.scoring.store import StateCache, expire
from shared.clock import ClockMode
from shared.consumer import Delivered
from shared.kafka import group_lag
from shared.logs import get_logger
from shared.settings import Settings
from shared.tasks import every
from shared.topics import TIER_CHANGES, Topics
from shared.worker_app import Resources, worker_app

log = get_logger(__name__)
LAG_READ_EVERY_S = 5.0
DESCRIPTION = """Recomputes each customer's value tier and lifecycle stage on every event,
explains every decision, and publishes tier changes to `customer.tier-changes.v1`."""


async def lagging_partitions(settings: Settings, group: str, topic: str) -> frozenset[int] | None:
    """The partitions of `topic` more than `TIERFLOW_REVIEW_MAX_LAG` records behind for `group`,
    or None when the brokers cannot tell (then every review waits: a lag not seen is not no lag)."""
    try:
        lags = await group_lag(settings, group, [topic])
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("consumer lag unknown; reviews wait", group=group, error=str(exc))
        return None
    lagging = frozenset(p.partition for p, lag in lags.items() if lag > settings.review_max_lag)
    if lagging:
        log.info("reviews wait for lagging partitions", topic=topic, partitions=sorted(lagging))
    return lagging


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

    relay = resources.outbox_relay("scoring")

    async def handle(batch: Sequence[Delivered[ScoringEvent]]) -> None:
        started = time.perf_counter()
        await scoring.apply_batch(batch)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        relay.nudge()

    stage = HouseholdStage(engine, settings.household_max_members)

    async def fold_households(stop: asyncio.Event) -> None:
        worker = resources.consumer(
            "households",
            settings.household_group,
            contribution_decoder(),
            stage.apply_batch,
            settings.household_batch_size,
        )
        await worker.run(stop)

    async def consume(stop: asyncio.Event) -> None:
        await scoring.ensure_policy()
        await resources.prepare_markers("scoring")
        group = group_id(settings.scoring_group, await current_generation(engine))
        # One transaction per poll: the partitions' records are applied one partition after
        # another, in the order a transaction per partition would apply them.
        worker = resources.consumer(
            "scoring",
            group,
            event_decoder(settings),
            handle,
            settings.scoring_batch_size,
            across_partitions=True,
        )
        await worker.run(stop)

    async def review(stop: asyncio.Event) -> None:
        last_lag_reading: list[tuple[float, frozenset[int]]] = []

        async def lagging_now() -> frozenset[int] | None:
            """Read from the brokers at most every LAG_READ_EVERY_S: a reading is a client round trip."""
            if last_lag_reading and time.monotonic() - last_lag_reading[0][0] < LAG_READ_EVERY_S:
                return last_lag_reading[0][1]
            group = group_id(settings.scoring_group, await current_generation(engine))
            reading = await lagging_partitions(settings, group, scoring.events_topic)
            last_lag_reading[:] = [] if reading is None else [(time.monotonic(), reading)]
            return reading

        async def review_all_due() -> None:
            lagging: frozenset[int] = frozenset()
            if scoring.clock_mode is ClockMode.WALL:
                measured = await lagging_now()
                if measured is None:
                    return
                lagging = measured
            while await scoring.review_due(settings.review_batch_size, lagging) == settings.review_batch_size:
                if stop.is_set():
                    return

        await every(settings.review_poll_s, review_all_due, stop)

    return worker_app(
        "scoring",
        resources,
        loops={
            "consumer": consume,
            "review": review,
            "households": fold_households,
            "outbox-relay": relay.run,
            "maintenance": resources.maintenance("scoring", expire),
        },
        routers=[build_router(engine, scoring)],
        description=DESCRIPTION,
    )
