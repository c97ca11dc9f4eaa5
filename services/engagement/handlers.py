"""Engagement's service layer: tier changes become outreach; RMs move items along."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.engagement import metrics
from services.engagement.domain.guardrails import cap_window
from services.engagement.domain.holdouts import hold_window, holds_in_force
from services.engagement.domain.households import share_household_contacts
from services.engagement.domain.lifecycle import (
    Actor,
    ItemState,
    ItemStatus,
    acted_after,
    assign,
    cancel,
    choose_rm,
    claim,
    complete,
    expire,
    follow_customer,
    household_rm,
    start,
)
from services.engagement.domain.planning import Change, ProfileUpdate, assign_planned, plan
from services.engagement.domain.playbook import Playbook, default_playbook
from services.engagement.store import SCHEMA, EngagementStore, item_state
from shared.clock import (
    Clock,
    advance_partition_watermarks,
    advance_watermark,
    partition_watermarks,
    service_now,
    watermark,
)
from shared.consumer import Decoder, Delivered, PoisonMessage
from shared.contracts.internal import ProfileChanged, TierChanged
from shared.contracts.outbound import (
    CUSTOMER_ERASED,
    PROFILE_CHANGED,
    TIER_CHANGED,
    CustomerErasedData,
    OutreachOutcome,
)
from shared.db import consumer_transaction
from shared.erasure import CustomerErased, ErasureNotice
from shared.errors import TierFlowError
from shared.event_rules import internal_event_decoder
from shared.logs import get_logger
from shared.metrics import ERASURES
from shared.partition_clocks import PartitionClocks
from shared.settings import Settings
from shared.topics import TIER_CHANGES

log = get_logger(__name__)
SYSTEM = "tierflow"
Step = Callable[[ItemState, datetime], ItemState]
Consumed = Change | ProfileUpdate | ErasureNotice


class UnknownItem(TierFlowError):
    pass


def change_decoder(settings: Settings) -> Decoder[Consumed]:
    """Engagement's one decoder: a `customer.tier_changed.v1` with every field and the context
    scoring adds checked, a `customer.profile_changed.v1`, a `customer.erased.v1`, or a dead
    letter naming what is wrong."""
    decode_event = internal_event_decoder(
        settings,
        {TIER_CHANGED: TierChanged, PROFILE_CHANGED: ProfileChanged, CUSTOMER_ERASED: CustomerErasedData},
    )

    def decode(record: ConsumerRecord[bytes, bytes]) -> Consumed:
        event = decode_event(record)
        if event is not None and isinstance(event.data, CustomerErasedData):
            return ErasureNotice(
                event.envelope.source, event.envelope.id, event.data.customer_id, event.data.erased_at
            )
        if event is not None and isinstance(event.data, ProfileChanged):
            return ProfileUpdate(
                source=event.envelope.source,
                event_id=event.envelope.id,
                customer_id=event.data.customer_id,
                at=event.envelope.time,
                profile=event.data.profile.model_dump(mode="json", exclude_unset=True),
            )
        if event is None or not isinstance(event.data, TierChanged):
            raise PoisonMessage(f"not a {TIER_CHANGED}, {PROFILE_CHANGED} or {CUSTOMER_ERASED} event")
        data = event.data
        return Change(
            source=event.envelope.source,
            event_id=event.envelope.id,
            customer_id=data.customer_id,
            previous_tier=data.previous_tier,
            tier=data.tier,
            previous_stage=data.previous_stage,
            stage=data.stage,
            direction=data.direction,
            at=event.envelope.time,
            # Only what scoring sent: a field left out means "unknown", not a default.
            profile=data.profile.model_dump(mode="json", exclude_unset=True),
            complaints_open_high=data.complaints_open_high,
            labels=tuple(data.labels),
            labels_entered=tuple(data.labels_entered),
            labels_left=tuple(data.labels_left),
            household_id=data.household_id,
            household_tier=data.household_tier,
            household_rm_id=data.household_rm_id,
            household_change=data.household_change,
        )

    return decode


@dataclass
class _Tally:
    """What one batch did, for the metrics once its transaction has committed."""

    changes: int = 0
    duplicates: int = 0
    items: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count(self) -> None:
        metrics.CHANGES_APPLIED.inc(self.changes)
        metrics.DUPLICATES.inc(self.duplicates)
        for (kind, status), planned in self.items.items():
            metrics.ITEMS.labels(kind=kind, status=status).inc(planned)


@dataclass
class Engagement:
    engine: AsyncEngine
    outreach_topic: str
    clock: Clock = field(default_factory=Clock)
    # The topic whose partitions keep the event clock and hold the customers (their key).
    changes_topic: str = TIER_CHANGES

    def store(self, connection: AsyncConnection) -> EngagementStore:
        return EngagementStore(connection, self.outreach_topic)

    async def ensure_playbook(self) -> None:
        """As scoring does with its policy: a new installation starts on the shipped default
        playbook; one that runs another is offered a newer shipped default inactive."""
        shipped = default_playbook()
        async with self.engine.begin() as db:
            store = self.store(db)
            if await store.active_playbook() is None:
                await store.install_playbook(shipped, SYSTEM, active=True)
            elif await store.offer_playbook(shipped, SYSTEM):
                log.info("a newer default playbook is installed inactive", version=shipped.version)

    async def install_playbook(self, playbook: Playbook, actor: str) -> None:
        """Store a new version, inactive; a version that exists already raises IntegrityError."""
        async with self.engine.begin() as db:
            await self.store(db).install_playbook(playbook, actor, active=False)

    async def activate_playbook(self, version: str) -> bool:
        async with self.engine.begin() as db:
            return await self.store(db).activate_playbook(version)

    async def put_rm(self, rm_id: str, branch_id: str, capacity: int, active: bool) -> None:
        async with self.engine.begin() as db:
            await self.store(db).put_rm(rm_id, branch_id, capacity, active)

    async def apply_batch(self, batch: Sequence[Delivered[Consumed]]) -> None:
        erased = 0
        tally = _Tally()
        async with consumer_transaction(self.engine) as db:
            store = self.store(db)
            await store.lock_household_changes(_household_changes(batch))
            playbook = await store.active_playbook() or default_playbook()
            clocks = await self._partition_clocks(db)
            applied = await watermark(db, SCHEMA) if clocks is not None else None
            for delivered in batch:
                if isinstance(delivered.value, ErasureNotice):
                    erased += await self._erase(store, delivered.value)
                    continue
                change = delivered.value
                if clocks is None:
                    now = self.clock.now(None, datetime.now(UTC))
                else:
                    # On the event clock "now" is the latest change time applied from the change's
                    # partition, this one included: another partition running ahead moves nothing here.
                    now = clocks.advance(delivered.partition, change.at)
                    applied = change.at if applied is None else max(applied, change.at)
                if isinstance(change, ProfileUpdate):
                    await self._apply_profile(store, change, delivered.partition, now, tally)
                else:
                    await self._apply(store, change, delivered.partition, playbook, now, tally)
            if clocks is not None:
                await advance_partition_watermarks(db, SCHEMA, self.changes_topic, clocks.advanced)
            if applied is not None:
                # The bank-wide watermark stays the latest of all: "now" for reports on every customer.
                await advance_watermark(db, SCHEMA, applied)
        # Counted once committed: a batch that fails is applied again (in halves), not counted twice.
        tally.count()
        ERASURES.labels(service="engagement").inc(erased)

    async def _erase(self, store: EngagementStore, notice: ErasureNotice) -> int:
        """The customer's items, their audit notes and profile go; the erasure record stays."""
        if not await store.claim_event(notice.source, notice.event_id, notice.erased_at):
            return 0
        return int(await store.erase(notice))

    async def _partition_clocks(self, db: AsyncConnection) -> PartitionClocks | None:
        if not self.clock.follows_events:
            return None
        return PartitionClocks(await partition_watermarks(db, SCHEMA, self.changes_topic))

    async def now(self) -> datetime:
        async with self.engine.connect() as db:
            return await service_now(db, SCHEMA, self.clock)

    async def _apply(
        self,
        store: EngagementStore,
        change: Change,
        partition: int,
        playbook: Playbook,
        now: datetime,
        tally: _Tally,
    ) -> None:
        if not await self._first_time(store, change, tally):
            return
        previous_branch = await store.previous_branch(change.customer_id)
        await store.remember_customer(change, partition)
        await self._follow_branch(store, change.customer_id, previous_branch, change.profile, now)
        open_items = await store.open_items(change.customer_id)
        contacts = await store.recent_contacts(change.customer_id, now - cap_window(playbook))
        held_out = await store.held_out_actions(change.customer_id, now - hold_window(playbook))
        decided = plan(change, open_items, contacts, playbook, now, holds_in_force(held_out, playbook, now))
        if change.household_id is not None and change.household_change is not None:
            household = await store.household_contacts(change.household_id, change.household_change)
            decided = share_household_contacts(decided, change, household, playbook, now)
        for item_id, reason in decided.cancellations:
            await self._move(store, item_id, _withdrawn(reason), SYSTEM, reason, now)
        branch = change.profile.get("branch_id")
        for item in decided.items:
            tally.items[(item.kind, item.status.value)] += 1
            if item.needs_assignee:
                customer_rm = await self._household_rm(store, change, branch) or change.profile.get("rm_id")
                item = assign_planned(item, choose_rm(customer_rm, await store.branch_rms(branch)))
            await store.add_item(item, branch, SYSTEM, now)
            if item.covered_by is not None and item.household_id is not None:
                await store.cover_member(item.covered_by, item.customer_id, item.household_id, SYSTEM)
        tally.changes += 1

    async def _household_rm(self, store: EngagementStore, change: Change, branch: str | None) -> str | None:
        """The household primary's RM for a member's RM work, if one may take it in their branch."""
        if change.household_rm_id is None:
            return None
        registered = await store.rm_branch(change.household_rm_id)
        return household_rm(change.household_rm_id, registered, branch)

    async def _apply_profile(
        self, store: EngagementStore, update: ProfileUpdate, partition: int, now: datetime, tally: _Tally
    ) -> None:
        if not await self._first_time(store, update, tally):
            return
        previous_branch = await store.previous_branch(update.customer_id)
        await store.remember_profile(update, partition)
        await self._follow_branch(store, update.customer_id, previous_branch, update.profile, now)

    async def _first_time(self, store: EngagementStore, event: Change | ProfileUpdate, tally: _Tally) -> bool:
        """Whether to apply the event: not for an erased customer (the batch is refused), not twice."""
        if await store.erased_among([event.customer_id]):
            raise CustomerErased
        if not await store.claim_event(event.source, event.event_id, event.at):
            tally.duplicates += 1
            return False
        return True

    async def _follow_branch(
        self,
        store: EngagementStore,
        customer_id: str,
        previous_branch: str | None,
        profile: dict[str, Any],
        now: datetime,
    ) -> None:
        """A customer moved to another branch: their items not yet under way go with them, each
        assigned as the playbook's rule assigns in the new branch (the customer's RM, else the
        least-loaded RM with room) or back to its queue, audited as TierFlow's. A customer's RM
        registered in another branch is not theirs there: the profile may still name the old one."""
        branch = profile.get("branch_id")
        if previous_branch is None or branch is None or branch == previous_branch:
            return
        customer_rm = profile.get("rm_id")
        if customer_rm is not None and await store.rm_branch(customer_rm) not in (None, branch):
            customer_rm = None
        rm_id = choose_rm(customer_rm, await store.branch_rms(branch))
        note = f"the customer moved from branch {previous_branch} to {branch}"

        def step(item: ItemState, _now: datetime) -> ItemState:
            return follow_customer(item, rm_id if item.status is ItemStatus.ASSIGNED else None)

        for item_id in await store.items_to_follow(customer_id, branch):
            await store.move_item(item_id, branch)
            await self._move(store, item_id, step, SYSTEM, note, now)

    async def claim(self, item_id: str, actor: Actor, at: datetime | None = None) -> None:
        await self._transition(
            item_id, lambda item, _now: claim(item, actor.name), actor.audit_name, "claimed", at
        )

    async def start(self, item_id: str, actor: Actor, at: datetime | None = None) -> None:
        def step(item: ItemState, now: datetime) -> ItemState:
            return start(item, actor.name, actor.admin, now)

        await self._transition(item_id, step, actor.audit_name, "started", at)

    async def complete(
        self,
        item_id: str,
        actor: Actor,
        outcome: OutreachOutcome,
        note: str | None,
        request_survey: bool,
        at: datetime | None = None,
    ) -> None:
        """Close the item with its outcome; a survey request goes to feedback if asked for."""

        def step(item: ItemState, now: datetime) -> ItemState:
            return complete(item, actor.name, actor.admin, outcome, now)

        await self._transition(item_id, step, actor.audit_name, note, at, request_survey)

    async def cancel(self, item_id: str, actor: Actor, reason: str, at: datetime | None = None) -> None:
        def step(item: ItemState, now: datetime) -> ItemState:
            return cancel(item, actor.name, actor.admin, reason, now)

        await self._transition(item_id, step, actor.audit_name, reason, at)

    async def reassign(self, item_id: str, actor: Actor, rm_id: str, at: datetime | None = None) -> None:
        await self._transition(
            item_id, lambda item, _now: assign(item, rm_id), actor.audit_name, f"to {rm_id}", at
        )

    async def _transition(
        self,
        item_id: str,
        step: Step,
        actor: str,
        note: str | None,
        at: datetime | None,
        request_survey: bool = False,
    ) -> None:
        """Load, check the step in the domain, store it with its audit row and event, together.

        `at` is when the RM acted, accepted off the wall clock only (simulations, replays); on
        the event clock it moves engagement's bank-wide calendar on like an applied event, while the
        item's own clock is its customer's tier-change partition's, moved by that partition alone."""
        async with self.engine.begin() as db:
            store = self.store(db)
            follows = self.clock.follows_events
            mark = await store.clock_of_item(self.changes_topic, item_id) if follows else None
            now = self.clock.when(at, mark, datetime.now(UTC))
            if at is not None and self.clock.follows_events:
                await advance_watermark(db, SCHEMA, at)
            after = await self._move(store, item_id, step, actor, note, now, stated=at)
            if after is None:
                raise UnknownItem(item_id)
            if request_survey and after.status is ItemStatus.COMPLETED:
                await store.request_survey(item_id, now)

    async def expire_due(self, limit: int) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            if self.clock.follows_events:
                # Each item by its customer's partition's clock: a partition ahead expires only its own.
                due = await store.due_to_expire_by_partition_clock(self.changes_topic, limit)
            else:
                now = await service_now(db, SCHEMA, self.clock)
                due = dict.fromkeys(await store.due_to_expire(now, limit), now)
            for item_id, moment in due.items():
                await self._move(store, item_id, expire, SYSTEM, "expired", moment)
        metrics.EXPIRED.inc(len(due))
        return len(due)

    async def _move(
        self,
        store: EngagementStore,
        item_id: str,
        step: Step,
        actor: str,
        note: str | None,
        now: datetime,
        stated: datetime | None = None,
    ) -> ItemState | None:
        row = await store.item(item_id)
        if row is None:
            return None
        if stated is not None:
            # The item's updated_at is the time of its last step (its creation at first).
            acted_after(item_id, stated, max(row["created_at"], row["updated_at"]))
        before = item_state(row)
        after = step(before, now)
        await store.save_transition(before, after, actor, note, now)
        return after


def _household_changes(batch: Sequence[Delivered[Consumed]]) -> list[tuple[str, str]]:
    """The (household, household change) pairs whose members' changes the batch applies."""
    return [
        (delivered.value.household_id, delivered.value.household_change)
        for delivered in batch
        if isinstance(delivered.value, Change)
        and delivered.value.household_id is not None
        and delivered.value.household_change is not None
    ]


def _withdrawn(reason: str) -> Step:
    """TierFlow cancels an item a newer change made pointless, whoever holds it."""
    return lambda item, now: cancel(item, SYSTEM, True, reason, now)
