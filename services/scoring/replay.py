"""Rebuild scoring's state from the topics: forget derived state, rewind the consumer group.

Run it with the scoring workers stopped. Overrides are operators' decisions, not derived
from events, so active ones are kept. Tier changes recomputed by the replay carry the same
ids as before when the same events produce them (with `TIERFLOW_SCORING_CLOCK=event`, the
same decisions), so subscribers can recognise repeats.
"""

from __future__ import annotations

import json

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from services.scoring.domain.codec import decode, encode
from services.scoring.domain.customer import CustomerState
from services.scoring.domain.features import Features
from shared.db import create_engine
from shared.kafka import client_options
from shared.logs import get_logger
from shared.settings import Settings
from shared.topics import BANK_EVENTS, FEEDBACK_EVENTS, Topics

log = get_logger(__name__)
DERIVED_TABLES = ("customers", "applied_events", "tier_history", "outbox", "clock")


async def replay(settings: Settings) -> dict[str, int]:
    kept = await _reset_state(settings)
    rewound = await _rewind(settings)
    return {"overrides_kept": kept, "partitions_rewound": rewound}


async def _reset_state(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with engine.begin() as db:
            rows = await db.execute(
                text(
                    "SELECT customer_id, state FROM scoring.customers "
                    "WHERE state->'override' <> 'null'::jsonb"
                )
            )
            overrides = [decode(cid, state) for cid, state in rows]
            await db.execute(text(f"TRUNCATE {', '.join('scoring.' + t for t in DERIVED_TABLES)}"))
            for state in overrides:
                kept = CustomerState(state.customer_id, Features(), None, state.override)
                await db.execute(
                    text(
                        "INSERT INTO scoring.customers (customer_id, state) "
                        "VALUES (:id, CAST(:state AS jsonb))"
                    ),
                    {"id": state.customer_id, "state": json.dumps(encode(kept))},
                )
        return len(overrides)
    finally:
        await engine.dispose()


async def _rewind(settings: Settings) -> int:
    topics = Topics.from_settings(settings)
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.scoring_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in (topics.name(BANK_EVENTS), topics.name(FEEDBACK_EVENTS))
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        await consumer.commit(dict(beginnings))
        log.info(
            "rewound the scoring consumer group", group=settings.scoring_group, partitions=len(partitions)
        )
        return len(partitions)
    finally:
        await consumer.stop()
