"""The scoring service's tables, reached through one connection inside one transaction.

Every method runs in the caller's transaction: the new states, the applied-event
markers, the history and the outbox rows of a batch commit together or not at all.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger, DateTime, Integer, Text

from services.scoring.domain.codec import decode, encode, reason_json
from services.scoring.domain.customer import CustomerState, TierChange
from services.scoring.domain.evaluation import Override, Reason
from services.scoring.domain.policy import Policy
from services.scoring.domain.profile import ProfileChange
from services.scoring.outbound import customer_erased_event, profile_changed_event, tier_changed_event
from shared.clock import advance_partition_watermarks, partition_watermarks
from shared.contracts.outbound import CausedBy, EventCause
from shared.erasure import erased_among, forget_unsent_events, record_erasure
from shared.inbox import LEGACY_SOURCE
from shared.publishing import compact_json, enqueue
from shared.retention import Cutoffs, Expiry, delete_expired

SCHEMA = "scoring"
_TEXTS = ARRAY(Text)
# What an erasure removes: every table that holds a customer's rows, by customer id.
_CUSTOMER_TABLES = (
    "customers",
    "tier_history",
    "applied_events",
    "applied_events_legacy",
    "override_audit",
    "household_memberships",
)
_TIMES = ARRAY(DateTime(timezone=True))
# Every field of a cause, so a field the contract adds is never left out of the history.
_CAUSE_FIELDS = tuple(EventCause.model_fields)
# `json.dumps(state, separators=(",", ":"))` without a new encoder for every state (see `_state_json`).
_STATE_JSON = json.JSONEncoder(separators=(",", ":"))

# An event is known by its source and id; its marker lies in the partition of its time, and is
# looked for in every partition, so a resend stating another time is still a duplicate (the
# primary key's leading columns serve the lookup). Markers from before partitioning are looked
# up apart; one from before sources were recorded (source '') stands for its id from any source.
_CLAIM = text(
    """
    INSERT INTO scoring.applied_events (source, event_id, event_time, customer_id)
    SELECT u.source, u.event_id, u.event_time, u.customer_id
    FROM unnest(:sources, :ids, :times, :customers) AS u(source, event_id, event_time, customer_id)
    WHERE NOT EXISTS (
        SELECT 1 FROM scoring.applied_events AS seen
        WHERE seen.source = u.source AND seen.event_id = u.event_id
    ) AND NOT EXISTS (
        SELECT 1 FROM scoring.applied_events_legacy AS legacy
        WHERE legacy.source IN (u.source, :legacy) AND legacy.event_id = u.event_id
    )
    ON CONFLICT (source, event_id, event_time) DO NOTHING
    RETURNING source, event_id
    """
).bindparams(
    bindparam("sources", type_=_TEXTS),
    bindparam("ids", type_=_TEXTS),
    bindparam("times", type_=_TIMES),
    bindparam("customers", type_=_TEXTS),
    bindparam("legacy", value=LEGACY_SOURCE),
)

_PLACEHOLDERS = text(
    "INSERT INTO scoring.customers (customer_id) SELECT unnest(:ids) ON CONFLICT (customer_id) DO NOTHING"
).bindparams(bindparam("ids", type_=_TEXTS))

_LOCK = text(
    """
    SELECT c.customer_id, c.xmin::text::bigint AS version,
        CASE WHEN c.xmin::text::bigint IS NOT DISTINCT FROM u.known THEN NULL ELSE c.state END AS state,
        c.xmin::text::bigint IS NOT DISTINCT FROM u.known AS known
    FROM scoring.customers AS c JOIN unnest(:ids, :known) AS u(customer_id, known) USING (customer_id)
    ORDER BY c.customer_id FOR UPDATE OF c
    """
).bindparams(bindparam("ids", type_=_TEXTS), bindparam("known", type_=ARRAY(BigInteger)))

# Label names hold no comma (the policy schema's pattern): a customer's labels travel as one
# comma-joined text per row, since unnest would flatten an array of arrays.
# Driver-level SQL: thousands of array elements per batch skip SQLAlchemy's per-element bind
# processing, and asyncpg keeps the statement prepared (the casts give every parameter its type).
_SAVE = """
    UPDATE scoring.customers AS c SET
        state = CAST(u.state AS jsonb), tier = u.tier, stage = u.stage, score = u.score,
        policy_version = u.policy_version, tier_since = u.tier_since,
        next_review_at = u.next_review_at, branch_id = u.branch_id, segment = u.segment,
        region = u.region, clock_partition = coalesce(u.clock_partition, c.clock_partition),
        labels = string_to_array(u.labels, ','), updated_at = $12::timestamptz
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[],
                $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $13::int[],
                $14::text[])
        AS u(customer_id, state, tier, stage, score, policy_version, tier_since, next_review_at,
             branch_id, segment, region, clock_partition, labels)
    WHERE c.customer_id = u.customer_id
    RETURNING c.customer_id, c.xmin::text::bigint AS version
"""

_HISTORY = """
    INSERT INTO scoring.tier_history (change_id, customer_id, at, previous_tier, tier, previous_stage,
        stage, direction, score, policy_version, reasons, caused_by, trigger, labels, labels_entered,
        labels_left)
    SELECT CAST(u.change_id AS uuid), u.customer_id, u.at, u.previous_tier, u.tier, u.previous_stage,
        u.stage, u.direction, u.score, u.policy_version, CAST(u.reasons AS jsonb), CAST(u.caused_by AS jsonb),
        u.trigger, string_to_array(u.labels, ','), string_to_array(u.labels_entered, ','),
        string_to_array(u.labels_left, ',')
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::text[], $16::text[])
        AS u(change_id, customer_id, at, previous_tier, tier, previous_stage, stage, direction,
             score, policy_version, reasons, caused_by, trigger, labels, labels_entered, labels_left)
    ON CONFLICT (change_id) DO NOTHING
    RETURNING change_id::text AS change_id
"""

_DUE = text(
    """
    SELECT customer_id FROM scoring.customers
    WHERE next_review_at <= :now
        AND NOT coalesce(clock_partition = ANY(:lagging), cardinality(:lagging) > 0)
    ORDER BY next_review_at
    LIMIT :limit FOR UPDATE SKIP LOCKED
    """
).bindparams(bindparam("lagging", type_=ARRAY(Integer)))

_DUE_BY_PARTITION = text(
    """
    WITH low AS (SELECT min(watermark) AS watermark FROM scoring.partition_clock WHERE topic = :topic)
    SELECT c.customer_id, coalesce(w.watermark, low.watermark) AS clock
    FROM scoring.customers AS c
    CROSS JOIN low
    LEFT JOIN scoring.partition_clock AS w ON w.topic = :topic AND w.partition = c.clock_partition
    WHERE c.next_review_at <= coalesce(w.watermark, low.watermark)
    ORDER BY c.next_review_at
    LIMIT :limit FOR UPDATE OF c SKIP LOCKED
    """
)

# Activation takes this lock exclusively, every decision shared before it locks customers, so
# no decision can read the old policy and commit after the activation marked everyone due.
_POLICY_LOCK_KEY = "scoring.policy"
_POLICY_SHARED = text("SELECT pg_advisory_xact_lock_shared(hashtext(:key))").bindparams(key=_POLICY_LOCK_KEY)
_POLICY_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(hashtext(:key))").bindparams(key=_POLICY_LOCK_KEY)


class StateCache:
    """Decoded states this process wrote, each with the row version it wrote, least recent out first.

    An entry is used only while the row still has that version (see `lock_customers`),
    so the cache can never make a decision on an outdated state; it only saves reading
    and decoding the states of the customers whose partitions this instance consumes.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # An OrderedDict drops its oldest entry in constant time; a plain dict would scan past
        # every slot freed since its last resize to find its first key (74 µs an eviction at
        # 100,000 entries, paid on every new customer once the cache is full).
        self._entries: OrderedDict[str, tuple[int, CustomerState]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def versions(self, customer_ids: Sequence[str]) -> list[int | None]:
        entries = self._entries
        return [entry[0] if (entry := entries.get(cid)) is not None else None for cid in customer_ids]

    def state(self, customer_id: str) -> CustomerState:
        return self._entries[customer_id][1]

    def remember(self, written: Mapping[str, int], states: Mapping[str, CustomerState]) -> int:
        """Call after the transaction that wrote these versions committed; returns how many
        states were evicted to keep the bound."""
        if self.capacity == 0:
            return 0
        entries = self._entries
        for cid, version in written.items():
            entries[cid] = (version, states[cid])
            entries.move_to_end(cid)  # the most recently used last
        evicted = max(0, len(entries) - self.capacity)
        for _ in range(evicted):
            entries.popitem(last=False)
        return evicted

    def forget(self, customer_id: str) -> None:
        self._entries.pop(customer_id, None)

    def clear(self) -> None:
        self._entries.clear()


_LAST_POLICY: list[tuple[dict[str, Any], Policy]] = []


def _parsed_policy(document: dict[str, Any]) -> Policy:
    """The same document parses to the same object: validated once, and its compiled rules reused."""
    if not _LAST_POLICY or _LAST_POLICY[0][0] != document:
        _LAST_POLICY[:] = [(document, Policy.model_validate(document))]
    return _LAST_POLICY[0][1]


# Reasons repeat from change to change (a policy's rules, values as their detail rounds them).
@lru_cache(maxsize=4096)
def _reason_json_text(reason: Reason) -> str:
    return json.dumps(reason_json(reason))


def _reasons_json(reasons: Sequence[Reason]) -> str:
    """`json.dumps([reason_json(r) for r in reasons])`, each distinct reason encoded once."""
    return "[" + ", ".join(map(_reason_json_text, reasons)) + "]"


def _cause_json(cause: CausedBy) -> str:
    """`{"source": ..., "id": ...}` for an event, the JSON string `"review"` or `"override"` otherwise."""
    if isinstance(cause, EventCause):
        return compact_json({name: getattr(cause, name) for name in _CAUSE_FIELDS}).decode()
    return json.dumps(cause)


def _state_json(state: CustomerState, score: float) -> str:
    """The encoded state as JSON for its jsonb column, by `compact_json` (orjson): the column holds
    the same value the standard encoder wrote (the text differs only in spellings jsonb does not
    keep: `0.00001` for `1e-05`, UTF-8 for `\\u` escapes). A state with a score that is not finite
    still goes through the standard encoder, which spells it `NaN`, which PostgreSQL refuses,
    rather than the `null` orjson would store silently."""
    encoded = encode(state)
    if math.isfinite(score):
        return compact_json(encoded).decode()
    return _STATE_JSON.encode(encoded)


class ScoringStore:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    @property
    def connection(self) -> AsyncConnection:
        return self._db

    async def claim_events(self, events: Sequence[tuple[str, str, datetime, str]]) -> set[tuple[str, str]]:
        """Mark (source, id, time, customer) events applied; returns the (source, id) pairs to apply now."""
        if not events:
            return set()
        ordered = sorted(set(events))
        result = await self._db.execute(
            _CLAIM,
            {
                "sources": [source for source, _, _, _ in ordered],
                "ids": [event_id for _, event_id, _, _ in ordered],
                "times": [time for _, _, time, _ in ordered],
                "customers": [customer for _, _, _, customer in ordered],
            },
        )
        return {(row[0], row[1]) for row in result}

    async def lock_customers(
        self, customer_ids: Iterable[str], cache: StateCache | None = None, *, create_missing: bool = True
    ) -> dict[str, CustomerState]:
        """Lock (creating if new, unless not `create_missing`) the rows of these customers, in id
        order to avoid deadlocks; a customer without a row is left out when none is created.

        A state found in `cache` at the row's current version is not read again: the row
        version (xmin) changes with every write, whoever makes it (an override, the review
        loop, a replay, another instance), so a stale entry is never used.
        """
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        if create_missing:
            await self._db.execute(_PLACEHOLDERS, {"ids": ids})
        known = cache.versions(ids) if cache is not None else [None] * len(ids)
        rows = await self._db.execute(_LOCK, {"ids": ids, "known": known})
        states: dict[str, CustomerState] = {}
        for cid, _version, state, from_cache in rows:
            if from_cache and cache is not None:
                states[cid] = cache.state(cid)
            else:
                states[cid] = decode(cid, state) if state is not None else CustomerState.new(cid)
        return states

    async def save_customers(
        self, states: Sequence[CustomerState], now: datetime, partitions: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Write the decided states, and for customers in `partitions` the partition of the events
        topic their events came from; returns each written row's new version."""
        decided = [(s, s.decision) for s in states if s.decision is not None]
        if not decided:
            return {}
        profiles = [s.features.profile for s, _ in decided]
        params = (
            [s.customer_id for s, _ in decided],
            [_state_json(s, d.score) for s, d in decided],
            [d.tier.value for _, d in decided],
            [d.stage.value for _, d in decided],
            [d.score for _, d in decided],
            [d.policy_version for _, d in decided],
            [d.tier_since for _, d in decided],
            [d.next_review_at for _, d in decided],
            [p.get("branch_id") for p in profiles],
            [p.get("segment") for p in profiles],
            [p.get("region") for p in profiles],
            now,
            [partitions.get(s.customer_id) if partitions else None for s, _ in decided],
            [",".join(d.label_names) for _, d in decided],
        )
        written = await self._db.exec_driver_sql(_SAVE, params)
        return {row["customer_id"]: int(row["version"]) for row in written.mappings()}

    async def record_changes(self, published: Sequence[TierChange | ProfileChange], topic: str) -> int:
        """History rows for tier changes and outbox rows for all, in the order given (the order of
        the events that caused them, so a customer's events go out as they were decided); a tier
        change already recorded (same id) is skipped. Returns the tier changes recorded."""
        changes = [c for c in published if isinstance(c, TierChange)]
        new_ids = await self._record_history(changes) if changes else set()
        await enqueue(
            self._db,
            "scoring",
            topic,
            [
                tier_changed_event(c) if isinstance(c, TierChange) else profile_changed_event(c)
                for c in published
                if not isinstance(c, TierChange) or c.id in new_ids
            ],
        )
        return len([c for c in changes if c.id in new_ids])

    async def _record_history(self, changes: Sequence[TierChange]) -> set[str]:
        inserted = await self._db.exec_driver_sql(
            _HISTORY,
            (
                [c.id for c in changes],
                [c.customer_id for c in changes],
                [c.at for c in changes],
                [c.previous_tier.value if c.previous_tier else None for c in changes],
                [c.tier.value for c in changes],
                [c.previous_stage.value if c.previous_stage else None for c in changes],
                [c.stage.value for c in changes],
                [c.direction.value for c in changes],
                [c.score for c in changes],
                [c.policy_version for c in changes],
                [_reasons_json(c.reasons) for c in changes],
                [_cause_json(c.caused_by) for c in changes],
                [c.trigger.value for c in changes],
                [",".join(c.labels) for c in changes],
                [",".join(c.labels_entered) for c in changes],
                [",".join(c.labels_left) for c in changes],
            ),
        )
        return {row["change_id"] for row in inserted.mappings()}

    async def exists(self, customer_id: str) -> bool:
        found = await self._db.scalar(
            text("SELECT 1 FROM scoring.customers WHERE customer_id = :id AND tier IS NOT NULL"),
            {"id": customer_id},
        )
        return found is not None

    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]:
        return await erased_among(self._db, SCHEMA, customer_ids)

    async def erase(
        self,
        customer_id: str,
        *,
        at: datetime,
        actor: str,
        reason: str,
        event_id: str,
        topic: str,
        placeholder: bool = False,
    ) -> dict[str, int]:
        """Remove every row of the customer, keep the tombstone and the erasure record, and put
        `customer.erased.v1` in the outbox after the customer's unsent events are dropped. With
        `placeholder`, the customer row is the lock's own and is not counted as held data."""
        removed: dict[str, int] = {}
        for table in _CUSTOMER_TABLES:
            result = await self._db.execute(
                text(f"DELETE FROM scoring.{table} WHERE customer_id = :id"),  # noqa: S608 - fixed names
                {"id": customer_id},
            )
            removed[table] = result.rowcount
        removed["customers"] -= placeholder
        removed["unsent_events"] = await forget_unsent_events(self._db, SCHEMA, customer_id)
        await record_erasure(
            self._db,
            SCHEMA,
            customer_id,
            at=at,
            actor=actor,
            reason=reason,
            event_id=event_id,
            removed=removed,
        )
        await enqueue(self._db, SCHEMA, topic, [customer_erased_event(customer_id, event_id, at)])
        return removed

    async def audit_override(
        self, customer_id: str, override: Override | None, actor: str, note: str
    ) -> None:
        await self._db.execute(
            text(
                """
                INSERT INTO scoring.override_audit (customer_id, action, tier, reason, expires_at, actor)
                VALUES (:customer, :action, :tier, :reason, :expires, :actor)
                """
            ),
            {
                "customer": customer_id,
                "action": "set" if override else "clear",
                "tier": override.tier.value if override else None,
                "reason": override.reason if override else note,
                "expires": override.expires_at if override else None,
                "actor": actor,
            },
        )

    async def partition_watermarks(self, topic: str) -> dict[int, datetime]:
        """The latest event time applied from each partition of `topic` that has had one."""
        return await partition_watermarks(self._db, "scoring", topic)

    async def advance_watermarks(self, topic: str, watermarks: Mapping[int, datetime]) -> None:
        """Move these partitions' clocks forward; a clock never goes back."""
        await advance_partition_watermarks(self._db, "scoring", topic, watermarks)

    async def clock_of(self, topic: str, customer_id: str | None) -> datetime | None:
        """The watermark of the partition that holds the customer; for a customer whose partition
        is not known yet the earliest of all (as the review loop judges it); without a customer
        the latest of all."""
        value: datetime | None = await self._db.scalar(
            text(
                """
                SELECT coalesce(
                    (SELECT w.watermark FROM scoring.customers AS c
                     JOIN scoring.partition_clock AS w ON w.topic = :topic AND w.partition = c.clock_partition
                     WHERE c.customer_id = :customer),
                    (SELECT CASE WHEN CAST(:customer AS text) IS NULL THEN max(watermark)
                                 ELSE min(watermark) END
                     FROM scoring.partition_clock WHERE topic = :topic))
                """
            ),
            {"topic": topic, "customer": customer_id},
        )
        return value

    async def note_earliest_event(self, moment: datetime) -> None:
        """Remember the earliest event time applied. Only an earlier time writes (and locks) the
        row, so scoring instances do not queue behind each other on it."""
        await self._db.execute(
            text("UPDATE scoring.history_span SET earliest_event_at = :at WHERE earliest_event_at > :at"),
            {"at": moment},
        )

    async def earliest_event_time(self) -> datetime | None:
        """The earliest event time scoring's state was built from; None before any event."""
        earliest: datetime | None = await self._db.scalar(
            text("SELECT earliest_event_at FROM scoring.history_span WHERE earliest_event_at <> 'infinity'")
        )
        return earliest

    async def due_for_review(self, now: datetime, limit: int, lagging: Collection[int] = ()) -> list[str]:
        """Customers due by `now`, except those of the `lagging` partitions of the events topic, and,
        while any partition lags, those whose partition is not known yet."""
        rows = await self._db.execute(_DUE, {"now": now, "limit": limit, "lagging": sorted(lagging)})
        return [row[0] for row in rows]

    async def due_by_partition_clock(self, topic: str, limit: int) -> dict[str, datetime]:
        """Customers due by the clock of the partition of `topic` that holds them, with that clock.

        A customer whose partition is not known yet (no event from `topic` so far) goes by the
        earliest of the partitions' clocks: it cannot be judged later than any of them.
        """
        rows = await self._db.execute(_DUE_BY_PARTITION, {"topic": topic, "limit": limit})
        return {row[0]: row[1] for row in rows}

    async def policy_for_decisions(self) -> Policy | None:
        """The active policy, held until this transaction ends: an activation waits for it to commit
        (and marks its customers for review after), and a decision started after an activation
        committed reads the new policy. Take it before locking any customer, as activation does."""
        await self._db.execute(_POLICY_SHARED)
        return await self.active_policy()

    async def active_policy(self) -> Policy | None:
        document = await self._db.scalar(text("SELECT document FROM scoring.policies WHERE active"))
        return None if document is None else _parsed_policy(document)

    async def install_policy(self, policy: Policy, actor: str, activate: bool) -> None:
        await self._db.execute(
            text(
                """
                INSERT INTO scoring.policies (version, document, created_by)
                VALUES (:version, CAST(:document AS jsonb), :actor)
                """
            ),
            {"version": policy.version, "document": policy.model_dump_json(), "actor": actor},
        )
        if activate:
            await self.activate_policy(policy.version)

    async def offer_policy(self, policy: Policy, actor: str) -> bool:
        """Install the policy inactive unless its version exists; whether it was installed."""
        installed = await self._db.scalar(
            text(
                """
                INSERT INTO scoring.policies (version, document, created_by)
                VALUES (:version, CAST(:document AS jsonb), :actor)
                ON CONFLICT (version) DO NOTHING RETURNING version
                """
            ),
            {"version": policy.version, "document": policy.model_dump_json(), "actor": actor},
        )
        return installed is not None

    async def activate_policy(self, version: str) -> None:
        await self._db.execute(_POLICY_EXCLUSIVE)
        await self._db.execute(text("UPDATE scoring.policies SET active = false WHERE active"))
        await self._db.execute(
            text("UPDATE scoring.policies SET active = true, activated_at = now() WHERE version = :v"),
            {"v": version},
        )
        # Everyone is due: the review loop re-evaluates all customers under the new policy.
        await self._db.execute(
            text("UPDATE scoring.customers SET next_review_at = '-infinity' WHERE tier IS NOT NULL")
        )


async def expire(connection: AsyncConnection, cutoffs: Cutoffs, limit: int) -> dict[str, int]:
    """Scoring's retention: tier history and override audits past theirs, up to `limit` rows each."""
    expiries = [
        Expiry("scoring.tier_history", "at", cutoffs.tier_history),
        Expiry("scoring.override_audit", "at", cutoffs.audits),
    ]
    return await delete_expired(connection, expiries, limit)
