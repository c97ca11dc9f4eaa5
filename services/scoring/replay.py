"""Rebuild scoring's state from the topics: forget derived state, rewind the consumer group.

Run it with the scoring workers stopped; they consume from the start when started again.
Overrides are operators' decisions, not derived
from events, so active ones are kept. Tier changes recomputed by the replay carry the same
ids as before when the same events produce them (with `TIERFLOW_SCORING_CLOCK=event`, the
same decisions), so subscribers can recognise repeats.

A replay is refused when the topic no longer holds the history scoring's state was built from
(`TIERFLOW_EVENTS_RETAINED_FROM` later than the earliest event scoring applied): it would
rebuild lifetime totals and windows from part of it. Outbox rows not yet relayed are kept:
they are changes subscribers have not seen, and the relay still publishes them.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring.domain.codec import decode, encode
from services.scoring.domain.customer import CustomerState
from services.scoring.domain.features import Features
from services.scoring.store import ScoringStore
from shared.db import create_engine
from shared.errors import TierFlowError
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
# Not the outbox (unrelayed changes) nor the span of history (what the state was built from).
DERIVED_TABLES = ("customers", "applied_events", "applied_events_legacy", "tier_history", "partition_clock")


class ReplayRefused(TierFlowError):
    """The topic no longer holds the history a replay would need."""


async def replay(settings: Settings) -> dict[str, int]:
    await _refuse_without_history(settings)
    kept = await _reset_state(settings)
    generation = await _next_generation(settings)
    return {"overrides_kept": kept, "generation": generation}


async def _refuse_without_history(settings: Settings) -> None:
    retained_from = settings.events_retained_from
    if retained_from is None:
        return
    engine = create_engine(settings)
    try:
        async with engine.connect() as db:
            earliest = await ScoringStore(db).earliest_event_time()
    finally:
        await engine.dispose()
    if earliest is not None and earliest < retained_from:
        raise ReplayRefused(
            f"replay refused: scoring's state goes back to events of {earliest.isoformat()}, but"
            f" bank.events.v1 holds events only from {retained_from.isoformat()}"
            " (TIERFLOW_EVENTS_RETAINED_FROM); a replay would rebuild lifetime totals and windows"
            " from part of the history. Restore the topic's history first (see deploy/README.md)."
        )


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
