"""The scoring service layer: load, call the domain, commit. One transaction per micro-batch."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import metrics, views
from services.scoring.domain.clock import not_before_last_decision
from services.scoring.domain.customer import (
    CustomerState,
    TierChange,
    Trigger,
    apply,
    new_override,
    review,
    set_override,
)
from services.scoring.domain.evaluation import Override
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.money import UnconvertibleCurrency, amount_in_base
from services.scoring.domain.policy import Policy, default_policy
from services.scoring.domain.profile import ProfileChange, profile_change
from services.scoring.domain.simulation import Simulation, simulate
from services.scoring.households import publish_contributions, withdraw_from_household
from services.scoring.store import ScoringStore, StateCache
from shared.clock import ClockMode
from shared.consumer import Delivered, PoisonMessage
from shared.contracts.envelope import InvalidEvent
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import COMPLAINT, SURVEY, ComplaintData, SurveyData
from shared.contracts.types import Tier
from shared.db import DatabaseUnavailable, consumer_transaction
from shared.erasure import CustomerErased
from shared.errors import TierFlowError
from shared.event_rules import consumed_event_reader, refuse_beyond_horizon
from shared.logs import get_logger
from shared.memory import FreedMemory
from shared.metrics import ERASURES
from shared.partition_clocks import PartitionClocks, customer_clock
from shared.settings import Settings
from shared.topics import Topics

log = get_logger(__name__)
# How often at most a scoring process whose state cache evicts gives freed heap pages back.
RELEASE_FREED_MEMORY_EVERY_S = 1.0
SCORED_MODELS: dict[str, type[BaseModel]] = {
    **INBOUND_DATA_MODELS,
    SURVEY: SurveyData,
    COMPLAINT: ComplaintData,
}


class ProcessingFailed(TierFlowError):
    """An event could not be applied; alone in its batch it goes to the dead-letter topic."""


class UnknownCustomer(TierFlowError):
    pass


def event_decoder(settings: Settings) -> Callable[[ConsumerRecord[bytes, bytes]], ScoringEvent]:
    """Validate a record again on the consumer side: producers may write to the topic directly."""

    reader = consumed_event_reader(settings, SCORED_MODELS, metrics.RECORDS_READ_IN_FULL.inc)

    def decode(record: ConsumerRecord[bytes, bytes]) -> ScoringEvent:
        now = datetime.now(UTC)
        body = record.value or b""
        try:
            valid = reader.read(body, now)
        except InvalidEvent as exc:
            raise PoisonMessage(f"invalid event: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise PoisonMessage(f"not a JSON CloudEvent: {exc}") from None
        if record.key is not None and record.key != valid.customer_id.encode():
            raise PoisonMessage("the record key is not the event's customer_id")
        refuse_beyond_horizon(valid.envelope.time, settings, now)
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
    freed: FreedMemory = field(default_factory=lambda: FreedMemory(RELEASE_FREED_MEMORY_EVERY_S))

    @property
    def events_topic(self) -> str:
        """The topic whose partitions keep the event clock and hold the customers (their key)."""
        return Topics.from_settings(self.settings).bank_events

    @property
    def household_topic(self) -> str:
        return Topics.from_settings(self.settings).household_contributions

    async def apply_batch(self, batch: Sequence[Delivered[ScoringEvent]]) -> None:
        async with consumer_transaction(self.engine) as connection:
            applied, changes, written, states = await self._apply(ScoringStore(connection), batch)
        # Only now is it committed: what the cache remembers is what the database holds.
        if self.cache.remember(written, states):
            # Evicted states free memory all through the heap, under newer live ones: without a
            # trim its pages stay resident and the process grows with the customers it has seen.
            self.freed.release_if_due()
        metrics.STATES_WRITTEN.inc(len(written))
        metrics.EVENTS_APPLIED.inc(applied)
        metrics.DUPLICATES.inc(len(batch) - applied)
        _count_changes(changes)

    async def _apply(
        self, store: ScoringStore, batch: Sequence[Delivered[ScoringEvent]]
    ) -> tuple[int, list[TierChange], dict[str, int], dict[str, CustomerState]]:
        events = [item.value for item in batch]
        fresh_keys = await store.claim_events([(e.source, e.id, e.time, e.customer_id) for e in events])
        fresh: list[Delivered[ScoringEvent]] = []
        for item in batch:
            key = (item.value.source, item.value.id)
            if key in fresh_keys:
                fresh.append(item)
                fresh_keys.discard(key)  # a repeat inside the batch is a duplicate too
        if not fresh:
            return 0, [], {}, {}
        policy = await self.policy(store)
        states = await store.lock_customers((item.value.customer_id for item in fresh), self.cache)
        # Checked with the rows locked, so an erasure committed meanwhile is seen; the whole batch
        # is refused and the consumer isolates the erased customer's records as dead letters.
        if await store.erased_among(states):
            raise CustomerErased
        clock = await self._start_clock(store)
        before = dict(states)
        changes: list[TierChange] = []
        published: list[TierChange | ProfileChange] = []
        partitions: dict[str, int] = {}
        events_topic = clock.events_topic
        for item in fresh:
            event = item.value
            state = states[event.customer_id]
            if item.topic == events_topic:
                partitions[event.customer_id] = item.partition
            moment = clock(item, state)
            states[event.customer_id], new_changes = self._apply_one(state, event, policy, moment)
            changes += new_changes
            published += new_changes
            if not any(change.trigger is Trigger.EVENT for change in new_changes):
                # No tier change carries the new profile: a transfer is published on its own, in
                # its place among the customer's changes, whatever the batch's boundaries.
                moved = profile_change(state, states[event.customer_id], event.cause, moment)
                published += [moved] if moved else []
        await store.note_earliest_event(min(item.value.time for item in fresh))
        if clock.partitions is not None:
            await store.advance_watermarks(self.events_topic, clock.partitions.advanced)
        written = await store.save_customers(list(states.values()), datetime.now(UTC), partitions)
        await store.record_changes(published, self.tier_changes_topic)
        await publish_contributions(store.connection, before, states, self.household_topic)
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

    async def _start_clock(self, store: ScoringStore) -> BatchClock:
        if self.clock_mode is not ClockMode.EVENT:
            return BatchClock(self.events_topic, await self.now(store), None)
        watermarks = await store.partition_watermarks(self.events_topic)
        return BatchClock(self.events_topic, None, PartitionClocks(watermarks))

    async def now(self, store: ScoringStore, customer_id: str | None = None) -> datetime:
        """The moment to decide at; with the event clock, the clock of the customer's partition
        (without a customer, or before its first event, the latest partition clock)."""
        if self.clock_mode is ClockMode.FIXED and self.as_of is not None:
            return self.as_of
        if self.clock_mode is ClockMode.EVENT:
            return await store.clock_of(self.events_topic, customer_id) or datetime.now(UTC)
        return datetime.now(UTC)

    async def customer(
        self, customer_id: str, branches: frozenset[str] | None
    ) -> tuple[CustomerState, datetime, datetime] | None:
        """The decided customer visible to `branches` (None: any), when it was last written and
        the customer's own now (with the event clock, its partition's clock)."""
        async with self.engine.connect() as db:
            found = await views.customer(db, customer_id, branches)
            if found is None:
                return None
            return found[0], found[1], await self.now(ScoringStore(db), customer_id)

    async def simulate(self, candidate: Policy) -> tuple[Simulation, str, datetime]:
        """What `candidate` would decide for every customer now, changing nothing; with the active
        policy's version and the latest moment a customer was evaluated at. With the event clock
        each customer is evaluated at its own partition's clock, as the review loop judges it."""
        simulation = Simulation()
        async with self.engine.connect() as db:
            store = ScoringStore(db)
            latest = await self.now(store)
            active = await self.policy(store, deciding=False)
            clocks = await self._simulation_clocks(store, latest)
            async for chunk in views.all_states(db):
                simulate(simulation, [(state, clocks(partition)) for state, partition in chunk], candidate)
        return simulation, active.version, latest

    async def _simulation_clocks(
        self, store: ScoringStore, latest: datetime
    ) -> Callable[[int | None], datetime]:
        if self.clock_mode is not ClockMode.EVENT:
            return lambda _partition: latest
        watermarks = await store.partition_watermarks(self.events_topic)
        return lambda partition: customer_clock(watermarks, partition) or latest

    async def policy(self, store: ScoringStore, deciding: bool = True) -> Policy:
        """The active policy; `deciding` holds it until the transaction ends (before any customer
        is locked), so an activation cannot slip between reading it and committing decisions."""
        policy = await (store.policy_for_decisions() if deciding else store.active_policy())
        if policy is None:
            raise DatabaseUnavailable("no active policy yet")
        return policy

    async def review_due(self, limit: int, lagging: Collection[int] = ()) -> int:
        """Re-evaluate customers whose decision could have changed with time alone (or policy).

        With the event clock each customer is judged by the clock of its partition; otherwise
        customers of the `lagging` partitions wait: their events are not all applied yet, so
        time alone would judge them on an incomplete history (false downgrades, false at-risk).
        """
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            policy = await store.policy_for_decisions()
            if policy is None:  # nothing was decided yet: the consumer installs the first policy
                return 0
            if self.clock_mode is ClockMode.EVENT:
                due = await store.due_by_partition_clock(self.events_topic, limit)
            else:
                now = await self.now(store)
                due = dict.fromkeys(await store.due_for_review(now, limit, lagging), now)
            if not due:
                return 0
            # Only rows that still exist: a customer erased since they were found due stays erased.
            states = await store.lock_customers(due, create_missing=False)
            before = dict(states)
            changes: list[TierChange] = []
            for customer_id, state in states.items():
                moment = not_before_last_decision(due[customer_id], state)
                states[customer_id], new = review(state, policy, moment)
                changes += new
            await store.save_customers(list(states.values()), datetime.now(UTC))
            await store.record_changes(changes, self.tier_changes_topic)
            await publish_contributions(connection, before, states, self.household_topic)
        metrics.REVIEWS.inc(len(states))
        _count_changes(changes)
        return len(states)

    async def ensure_policy(self) -> None:
        """A new installation starts on the shipped default policy. An installation that runs
        another policy is offered a newer shipped default inactive, to simulate and activate when
        the bank decides: tiers never move because TierFlow was upgraded."""
        shipped = default_policy()
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            if await store.active_policy() is None:
                await store.install_policy(shipped, actor="tierflow", activate=True)
                log.info("installed the default policy", version=shipped.version)
            elif await store.offer_policy(shipped, actor="tierflow"):
                log.info("a newer default policy is installed inactive", version=shipped.version)

    async def erase(self, customer_id: str, reason: str, actor: str) -> tuple[datetime, bool]:
        """Erase the customer: rows, tombstone, erasure record and `customer.erased.v1`, in one
        transaction; returns when, and whether scoring had decided a tier for them. A customer
        scoring never decided is erased all the same: engagement or feedback may hold their data,
        and the tombstone refuses their events from now on. `UnknownCustomer` if erased already."""
        erased_at = datetime.now(UTC)
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            # The row (a placeholder for a customer scoring never saw) holds off a batch bringing
            # their first event until the tombstone is committed; the batch then finds it.
            state = (await store.lock_customers([customer_id]))[customer_id]
            if await store.erased_among([customer_id]):
                raise UnknownCustomer(customer_id)
            decided = state.decision is not None
            await withdraw_from_household(connection, customer_id, erased_at, self.household_topic)
            await store.erase(
                customer_id,
                at=erased_at,
                actor=actor,
                reason=reason,
                event_id=str(uuid.uuid4()),
                topic=self.tier_changes_topic,
                placeholder=not decided,
            )
        self.cache.forget(customer_id)
        ERASURES.labels(service="scoring").inc()
        return erased_at, decided

    async def set_override(
        self, customer_id: str, tier: Tier, reason: str, expires_at: datetime, actor: str
    ) -> None:
        """Set a tier by hand until `expires_at`: state, history, outbox and audit row in one transaction."""
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            now = await self.now(store, customer_id)
            override = new_override(tier, reason, expires_at, actor, datetime.now(UTC), now)
            changes = await self._change_override(store, customer_id, override, actor, reason, now)
        _count_changes(changes)

    async def clear_override(self, customer_id: str, actor: str) -> None:
        """Clear the override: the policy decides again at once. Audited like setting one."""
        async with self.engine.begin() as connection:
            store = ScoringStore(connection)
            changes = await self._change_override(
                store, customer_id, None, actor, "cleared", await self.now(store, customer_id)
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
        if await store.erased_among([customer_id]):  # erased while this waited for the row
            raise UnknownCustomer(customer_id)
        state, change = set_override(state, override, policy, now)
        changes = [change] if change else []
        await store.save_customers([state], datetime.now(UTC))
        await store.record_changes(changes, self.tier_changes_topic)
        await store.audit_override(customer_id, override, actor, note)
        return changes


@dataclass(frozen=True)
class BatchClock:
    """When each event of a micro-batch is decided: one moment for the batch, or (event clock)
    the clock of the event's partition, never before the customer's last decision."""

    events_topic: str
    fixed: datetime | None
    partitions: PartitionClocks | None

    def __call__(self, item: Delivered[ScoringEvent], state: CustomerState) -> datetime:
        if self.fixed is not None:
            return self.fixed
        if self.partitions is not None and item.topic == self.events_topic:
            moment = self.partitions.advance(item.partition, item.value.time)
        else:
            # Feedback is sparse and its partitions say nothing about the customer's partition.
            moment = item.value.time
        return not_before_last_decision(moment, state)


def _count_changes(changes: Sequence[TierChange]) -> None:
    for change in changes:
        metrics.TIER_CHANGES.labels(direction=change.direction.value).inc()
        for label in change.labels_entered:
            metrics.LABEL_CHANGES.labels(label=label, change="entered").inc()
        for label in change.labels_left:
            metrics.LABEL_CHANGES.labels(label=label, change="left").inc()
