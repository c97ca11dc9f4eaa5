"""The scoring service layer: load, call the domain, commit. One transaction per micro-batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from aiokafka import ConsumerRecord
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import metrics, views
from services.scoring.domain.customer import (
    CustomerState,
    TierChange,
    apply,
    new_override,
    review,
    set_override,
)
from services.scoring.domain.evaluation import Override
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.money import UnconvertibleCurrency, amount_in_base
from services.scoring.domain.policy import Policy, default_policy
from services.scoring.domain.simulation import Simulation, simulate
from services.scoring.store import ScoringStore, StateCache
from shared.consumer import Delivered, PoisonMessage
from shared.contracts.envelope import InvalidEvent, decode_json, validate_event
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import COMPLAINT, SURVEY, ComplaintData, SurveyData
from shared.contracts.types import Tier
from shared.db import DatabaseUnavailable, consumer_transaction
from shared.errors import TierFlowError
from shared.event_rules import consumed_event_rules
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
SCORED_MODELS: dict[str, type[BaseModel]] = {
    **INBOUND_DATA_MODELS,
    SURVEY: SurveyData,
    COMPLAINT: ComplaintData,
}


class ClockMode(StrEnum):
    WALL = "wall"
    EVENT = "event"
    FIXED = "fixed"


class ProcessingFailed(TierFlowError):
    """An event could not be applied; alone in its batch it goes to the dead-letter topic."""


class UnknownCustomer(TierFlowError):
    pass


def event_decoder(settings: Settings) -> Callable[[ConsumerRecord[bytes, bytes]], ScoringEvent]:
    """Validate a record again on the consumer side: producers may write to the topic directly."""

    def decode(record: ConsumerRecord[bytes, bytes]) -> ScoringEvent:
        rules = consumed_event_rules(settings, SCORED_MODELS, datetime.now(UTC))
        try:
            valid = validate_event(decode_json(record.value or b""), rules)
        except InvalidEvent as exc:
            raise PoisonMessage(f"invalid event: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise PoisonMessage(f"not a JSON CloudEvent: {exc}") from None
        if record.key is not None and record.key != valid.customer_id.encode():
            raise PoisonMessage("the record key is not the event's customer_id")
        return ScoringEvent(
            valid.envelope.source, valid.envelope.id, valid.envelope.type, valid.envelope.time, valid.data
        )

    return decode


@dataclass
class Scoring:
    engine: AsyncEngine
    settings: Settings
    tier_changes_topic: str
    clock_mode: ClockMode = ClockMode.WALL
    as_of: datetime | None = None
    cache: StateCache = field(default_factory=lambda: StateCache(0))

    async def apply_batch(self, batch: Sequence[Delivered[ScoringEvent]]) -> None:
        events = [item.value for item in batch]
        async with consumer_transaction(self.engine) as connection:
            applied, changes, written, states = await self._apply(ScoringStore(connection), events)
        # Only now is it committed: what the cache remembers is what the database holds.
        self.cache.remember(written, states)
        metrics.STATES_WRITTEN.inc(len(written))
        metrics.EVENTS_APPLIED.inc(applied)
        metrics.DUPLICATES.inc(len(events) - applied)
        _count_changes(changes)

    async def _apply(
        self, store: ScoringStore, events: list[ScoringEvent]
    ) -> tuple[int, list[TierChange], dict[str, int], dict[str, CustomerState]]:
        fresh_keys = await store.claim_events([(e.source, e.id, e.customer_id) for e in events])
        fresh: list[ScoringEvent] = []
        for event in events:
            if (event.source, event.id) in fresh_keys:
                fresh.append(event)
                fresh_keys.discard((event.source, event.id))  # a repeat inside the batch is a duplicate too
        if not fresh:
            return 0, [], {}, {}
        policy = await self.policy(store)
        states = await store.lock_customers((e.customer_id for e in fresh), self.cache)
        clock = await self._start_clock(store)
        changes: list[TierChange] = []
        for event in fresh:
            now = clock(event)
            states[event.customer_id], new_changes = self._apply_one(
                states[event.customer_id], event, policy, now
            )
            changes += new_changes
        if self.clock_mode is ClockMode.EVENT:
            await store.advance_watermark(max(e.time for e in fresh))
        written = await store.save_customers(list(states.values()), datetime.now(UTC))
        await store.record_changes(changes, self.tier_changes_topic)
        return len(fresh), changes, written, states

    def _apply_one(
        self, state: CustomerState, event: ScoringEvent, policy: Policy, now: datetime
    ) -> tuple[CustomerState, list[TierChange]]:
        try:
            amount = amount_in_base(event.data, self.settings.base_currency, self.settings.fx_rates)
            return apply(state, event, amount, policy, now)
        except UnconvertibleCurrency as exc:
            raise ProcessingFailed(f"event {event.id}: {exc}") from exc
        except (ArithmeticError, ValueError, KeyError, TypeError) as exc:
            log.exception("event could not be applied", event_id=event.id, customer_id=event.customer_id)
            raise ProcessingFailed(f"event {event.id} could not be applied: {exc}") from exc

    async def _start_clock(self, store: ScoringStore) -> Callable[[ScoringEvent], datetime]:
        if self.clock_mode is not ClockMode.EVENT:
            now = await self.now(store)
            return lambda _event: now
        watermark = await store.watermark()

        def advance(event: ScoringEvent) -> datetime:
            nonlocal watermark
            watermark = event.time if watermark is None else max(watermark, event.time)
            return watermark

        return advance

    async def now(self, store: ScoringStore) -> datetime:
        if self.clock_mode is ClockMode.FIXED and self.as_of is not None:
            return self.as_of
        if self.clock_mode is ClockMode.EVENT:
            return await store.watermark() or datetime.now(UTC)
        return datetime.now(UTC)

    async def simulate(self, candidate: Policy) -> tuple[Simulation, str, datetime]:
        """What `candidate` would decide for every customer now, changing nothing; with the active
        policy's version and the moment it was evaluated at."""
        simulation = Simulation()
        async with self.engine.connect() as db:
            store = ScoringStore(db)
            moment = await self.now(store)
            active = await self.policy(store)
            async for chunk in views.all_states(db):
                simulate(simulation, chunk, candidate, moment)
        return simulation, active.version, moment

    async def policy(self, store: ScoringStore) -> Policy:
        policy = await store.active_policy()
        if policy is None:
            raise DatabaseUnavailable("no active policy yet")
        return policy

    async def review_due(self, limit: int) -> int:
        """Re-evaluate customers whose decision could have changed with time alone (or policy)."""
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            now = await self.now(store)
            due = await store.due_for_review(now, limit)
            if not due:
                return 0
            policy = await self.policy(store)
            states = await store.lock_customers(due)
            changes: list[TierChange] = []
            for customer_id, state in states.items():
                states[customer_id], new = review(state, policy, now)
                changes += new
            await store.save_customers(list(states.values()), datetime.now(UTC))
            await store.record_changes(changes, self.tier_changes_topic)
        metrics.REVIEWS.inc(len(due))
        _count_changes(changes)
        return len(due)

    async def ensure_policy(self) -> None:
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            if await store.active_policy() is None:
                await store.install_policy(default_policy(), actor="tierflow", activate=True)
                log.info("installed the default policy", version=default_policy().version)

    async def set_override(
        self, customer_id: str, tier: Tier, reason: str, expires_at: datetime, actor: str
    ) -> None:
        """Set a tier by hand until `expires_at`: state, history, outbox and audit row in one transaction."""
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            now = await self.now(store)
            override = new_override(tier, reason, expires_at, actor, datetime.now(UTC), now)
            changes = await self._change_override(store, customer_id, override, actor, reason, now)
        _count_changes(changes)

    async def clear_override(self, customer_id: str, actor: str) -> None:
        """Clear the override: the policy decides again at once. Audited like setting one."""
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            changes = await self._change_override(
                store, customer_id, None, actor, "cleared", await self.now(store)
            )
        _count_changes(changes)

    async def _change_override(
        self,
        store: ScoringStore,
        customer_id: str,
        override: Override | None,
        actor: str,
        note: str,
        now: datetime,
    ) -> list[TierChange]:
        if not await store.exists(customer_id):
            raise UnknownCustomer(customer_id)
        policy = await self.policy(store)
        state = (await store.lock_customers([customer_id]))[customer_id]
        state, change = set_override(state, override, policy, now)
        changes = [change] if change else []
        await store.save_customers([state], datetime.now(UTC))
        await store.record_changes(changes, self.tier_changes_topic)
        await store.audit_override(customer_id, override, actor, note)
        return changes


def _count_changes(changes: Sequence[TierChange]) -> None:
    for change in changes:
        metrics.TIER_CHANGES.labels(direction=change.direction.value).inc()
        for label in change.labels_entered:
            metrics.LABEL_CHANGES.labels(label=label, change="entered").inc()
        for label in change.labels_left:
            metrics.LABEL_CHANGES.labels(label=label, change="left").inc()
