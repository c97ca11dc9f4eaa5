"""Rebuild scoring's state from the topics: forget derived state, rewind the consumer group.

Run it with the scoring workers stopped; they consume from the start when started again.
Overrides are operators' decisions, not derived
from events, so active ones are kept. Tier changes recomputed by the replay carry the same
ids as before when the same events produce them (with `TIERFLOW_SCORING_CLOCK=event`, the
same decisions), so subscribers can recognise repeats.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring.domain.codec import decode, encode
from services.scoring.domain.customer import CustomerState
from services.scoring.domain.features import Features
from shared.db import create_engine
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
DERIVED_TABLES = ("customers", "applied_events", "tier_history", "outbox", "partition_clock")


async def replay(settings: Settings) -> dict[str, int]:
    kept = await _reset_state(settings)
    generation = await _next_generation(settings)
    return {"overrides_kept": kept, "generation": generation}


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


async def _next_generation(settings: Settings) -> int:
    """Offsets cannot be rewound reliably while a stopped member lingers in the group, so a
    replay gives scoring a fresh consumer group that starts from the earliest offsets."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as db:
            generation = int(
                await db.scalar(
                    text(
                        "INSERT INTO scoring.replays (generation) "
                        "SELECT coalesce(max(generation), 0) + 1 FROM scoring.replays RETURNING generation"
                    )
                )
                or 0
            )
        log.info("scoring will consume from the start", group=group_id(settings.scoring_group, generation))
        return generation
    finally:
        await engine.dispose()


async def current_generation(engine: AsyncEngine) -> int:
    """How many replays there have been: scoring consumes as group `group_id(base, generation)`."""
    async with engine.connect() as connection:
        generation = await connection.scalar(text("SELECT coalesce(max(generation), 0) FROM scoring.replays"))
        return int(generation or 0)


def group_id(base: str, generation: int) -> str:
    return base if generation == 0 else f"{base}-replay{generation}"
