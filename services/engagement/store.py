"""Engagement's tables, reached through the caller's transaction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.domain.guardrails import COUNTS_TOWARDS_CAPS, Contact
from services.engagement.domain.households import HouseholdContact
from services.engagement.domain.lifecycle import HELD_STATES, OPEN_STATES, ItemState, ItemStatus
from services.engagement.domain.planning import Change, OpenItem, PlannedItem, ProfileUpdate
from services.engagement.domain.playbook import Category, ContactChannel, Playbook
from services.engagement.outbound import OutreachEvent, outreach_event, survey_request
from shared.contracts.outbound import OutreachOutcome
from shared.contracts.types import Stage, Tier
from shared.erasure import ErasureNotice, erased_among, forget_unsent_events, record_erasure_by_event
from shared.inbox import claim_event
from shared.publishing import enqueue
from shared.retention import Cutoffs, Expiry, delete_expired

SCHEMA = "engagement"
ITEM_COLUMNS = (
    "id, customer_id, branch_id, rule, kind, category, channel, priority, status, due_at, sla_due_at, "
    "expires_at, template, product, reason, needs_rm, trigger_event_id, context_tier, context_stage, "
    "assigned_to, outcome, cancel_reason, first_contact_at, closed_at, created_at, updated_at, experiment, "
    "household_id, household_change, covered_by, covered_members"
)
_OPEN = sorted(status.value for status in OPEN_STATES)
_HELD = sorted(status.value for status in HELD_STATES)
_COUNTED = sorted(status.value for status in COUNTS_TOWARDS_CAPS)

# A customer's clock on the event clock: its partition's, else the earliest partition's, else the
# bank-wide watermark kept before clocks were per partition.
_CUSTOMER_CLOCK = """
    coalesce(w.watermark,
             (SELECT min(watermark) FROM engagement.partition_clock WHERE topic = :topic),
             (SELECT watermark FROM engagement.clock))
"""
_DUE_BY_PARTITION = text(
    f"""
    SELECT i.id::text, {_CUSTOMER_CLOCK} AS clock
    FROM engagement.items AS i
    LEFT JOIN engagement.customers AS c ON c.customer_id = i.customer_id
    LEFT JOIN engagement.partition_clock AS w ON w.topic = :topic AND w.partition = c.clock_partition
    WHERE i.status = ANY(:open) AND i.expires_at <= {_CUSTOMER_CLOCK}
    ORDER BY i.expires_at LIMIT :n FOR UPDATE OF i SKIP LOCKED
    """  # noqa: S608 - constant SQL fragments
)
_ITEM_CLOCK = text(
    f"""
    SELECT {_CUSTOMER_CLOCK}
    FROM engagement.items AS i
    LEFT JOIN engagement.customers AS c ON c.customer_id = i.customer_id
    LEFT JOIN engagement.partition_clock AS w ON w.topic = :topic AND w.partition = c.clock_partition
    WHERE i.id = CAST(:id AS uuid)
    """  # noqa: S608 - constant SQL fragments
)


class EngagementStore:
    def __init__(self, connection: AsyncConnection, outreach_topic: str) -> None:
        self._db = connection
        self._topic = outreach_topic

    async def claim_event(self, source: str, event_id: str, event_time: datetime) -> bool:
        return await claim_event(self._db, SCHEMA, source, event_id, event_time)

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        return await erased_among(self._db, SCHEMA, customer_ids)

    async def erase(self, notice: ErasureNotice) -> bool:
        """Remove the customer's items, their audit rows, profile and unsent events; record the
        erasure with the counts removed. False if it was recorded before."""
        customer = {"c": notice.customer_id}
        # Items first: deleting them waits for any transition holding one, so the audit rows
        # such a transition adds are committed, and found, when the audit is deleted next.
        items = [
            row[0]
            for row in await self._db.execute(
                text("DELETE FROM engagement.items WHERE customer_id = :c RETURNING id"), customer
            )
        ]
        # By customer: retention deletes a closed item years before its audit rows and notes.
        audit = await self._db.execute(
            text("DELETE FROM engagement.item_audit WHERE item_id = ANY(:ids) OR customer_id = :c"),
            {"ids": items, **customer},
        )
        profile = await self._db.execute(
            text("DELETE FROM engagement.customers WHERE customer_id = :c"), customer
        )
        # Other members' household contacts keep covering the rest of the household, not them.
        listed = await self._db.execute(
            text(
                "UPDATE engagement.items SET covered_members = array_remove(covered_members, :c) "
                "WHERE covered_members @> ARRAY[CAST(:c AS text)]"
            ),
            customer,
        )
        removed = {
            "items": len(items),
            "item_audit": audit.rowcount,
            "customers": profile.rowcount,
            "covered_members": listed.rowcount,
        }
        removed["unsent_events"] = await forget_unsent_events(self._db, SCHEMA, notice.customer_id)
        return await record_erasure_by_event(self._db, SCHEMA, notice, removed)

    async def remember_customer(self, change: Change, partition: int | None) -> None:
        """Keep the customer's latest profile and the tier-change partition that holds them (its
        clock is the customer's on the event clock)."""
        profile = change.profile
        await self._db.execute(
            text(
                """
                INSERT INTO engagement.customers (customer_id, branch_id, rm_id, profile, tier, stage,
                    complaints_open_high, updated_at, clock_partition)
                VALUES (:id, :branch, :rm, CAST(:profile AS jsonb), :tier, :stage, :complaints, now(),
                    :partition)
                ON CONFLICT (customer_id) DO UPDATE SET branch_id = EXCLUDED.branch_id,
                    rm_id = EXCLUDED.rm_id, profile = EXCLUDED.profile, tier = EXCLUDED.tier,
                    stage = EXCLUDED.stage, complaints_open_high = EXCLUDED.complaints_open_high,
                    updated_at = now(),
                    clock_partition = coalesce(EXCLUDED.clock_partition, engagement.customers.clock_partition)
                """
            ),
            {
                "id": change.customer_id,
                "partition": partition,
                "branch": profile.get("branch_id"),
                "rm": profile.get("rm_id"),
                "profile": json.dumps(profile),
                "tier": change.tier.value,
                "stage": change.stage.value,
                "complaints": change.complaints_open_high,
            },
        )

    async def previous_branch(self, customer_id: str) -> str | None:
        """The branch engagement knew the customer in, the row locked until the transaction ends."""
        branch: str | None = await self._db.scalar(
            text("SELECT branch_id FROM engagement.customers WHERE customer_id = :c FOR UPDATE"),
            {"c": customer_id},
        )
        return branch

    async def remember_profile(self, update: ProfileUpdate, partition: int | None) -> None:
        """Keep the customer's new profile (branch, RM…) from a change that left tier and stage."""
        profile = update.profile
        await self._db.execute(
            text(
                """
                INSERT INTO engagement.customers (customer_id, branch_id, rm_id, profile, updated_at,
                    clock_partition)
                VALUES (:id, :branch, :rm, CAST(:profile AS jsonb), now(), :partition)
                ON CONFLICT (customer_id) DO UPDATE SET branch_id = EXCLUDED.branch_id,
                    rm_id = EXCLUDED.rm_id, profile = EXCLUDED.profile, updated_at = now(),
                    clock_partition = coalesce(EXCLUDED.clock_partition, engagement.customers.clock_partition)
                """
            ),
            {
                "id": update.customer_id,
                "branch": profile.get("branch_id"),
                "rm": profile.get("rm_id"),
                "profile": json.dumps(profile),
                "partition": partition,
            },
        )

    async def items_to_follow(self, customer_id: str, branch_id: str) -> list[str]:
        """The customer's items not yet under way that are still in another branch, locked."""
        rows = await self._db.execute(
            text(
                "SELECT id::text FROM engagement.items WHERE customer_id = :c AND status = ANY(:movable) "
                "AND branch_id IS DISTINCT FROM :b ORDER BY created_at, id FOR UPDATE"
            ),
            {
                "c": customer_id,
                "b": branch_id,
                "movable": [ItemStatus.QUEUED.value, ItemStatus.ASSIGNED.value],
            },
        )
        return [row[0] for row in rows]

    async def move_item(self, item_id: str, branch_id: str) -> None:
        await self._db.execute(
            text("UPDATE engagement.items SET branch_id = :b WHERE id = CAST(:id AS uuid)"),
            {"id": item_id, "b": branch_id},
        )

    async def open_items(self, customer_id: str) -> list[OpenItem]:
        rows = await self._db.execute(
            text(
                "SELECT id::text, rule, kind, category, context_tier, context_stage FROM engagement.items "
                "WHERE customer_id = :c AND status = ANY(:open) FOR UPDATE"
            ),
            {"c": customer_id, "open": _OPEN},
        )
        return [OpenItem(r[0], r[1], r[2], Category(r[3]), Tier(r[4]), Stage(r[5])) for r in rows]

    async def held_out_actions(
        self, customer_id: str, since: datetime
    ) -> list[tuple[str, str, datetime, str]]:
        """The actions (kind, experiment, when, why) the customer was held out of since `since`."""
        rows = await self._db.execute(
            text(
                "SELECT kind, experiment, created_at, reason FROM engagement.items WHERE customer_id = :c "
                "AND status = :held_out AND experiment IS NOT NULL AND created_at > :since"
            ),
            {"c": customer_id, "since": since, "held_out": ItemStatus.HELD_OUT.value},
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def recent_contacts(self, customer_id: str, since: datetime) -> list[Contact]:
        rows = await self._db.execute(
            text(
                "SELECT category, channel, created_at FROM engagement.items "
                "WHERE customer_id = :c AND created_at > :since AND status = ANY(:counted)"
            ),
            {"c": customer_id, "since": since, "counted": _COUNTED},
        )
        return [Contact(Category(r[0]), ContactChannel(r[1]) if r[1] else None, r[2]) for r in rows]

    async def lock_household_changes(self, changes: list[tuple[str, str]]) -> None:
        """Hold each (household, household change) until the transaction ends, taken in one
        order: members of a household on other partitions, applied by other workers at once,
        find the household's contact the first one made instead of making one each."""
        for household_id, household_change in sorted(set(changes)):
            await self._db.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"engagement.household|{household_id}|{household_change}"},
            )

    async def household_contacts(self, household_id: str, household_change: str) -> list[HouseholdContact]:
        """The household's open contacts for the household change, the earliest first, locked."""
        rows = await self._db.execute(
            text(
                "SELECT id::text, kind, due_at FROM engagement.items WHERE household_id = :h "
                "AND household_change = :hc AND covered_by IS NULL AND status = ANY(:open) "
                "ORDER BY created_at, id FOR UPDATE"
            ),
            {"h": household_id, "hc": household_change, "open": _OPEN},
        )
        return [HouseholdContact(r[0], r[1], r[2]) for r in rows]

    async def cover_member(self, contact_id: str, customer_id: str, household_id: str, actor: str) -> None:
        """Add the member to those the household's contact covers, audited without naming them
        (the contact's audit is another customer's record)."""
        row = (
            await self._db.execute(
                text(
                    "UPDATE engagement.items SET covered_members = array_append(covered_members, :c) "
                    "WHERE id = CAST(:id AS uuid) AND NOT covered_members @> ARRAY[CAST(:c AS text)] "
                    "RETURNING cardinality(covered_members), status"
                ),
                {"id": contact_id, "c": customer_id},
            )
        ).first()
        if row is None:
            return
        status = ItemStatus(row[1])
        await self.audit(
            contact_id, status, status, actor, f"household {household_id}: now covers {row[0]} members"
        )

    async def rm_branch(self, rm_id: str) -> str | None:
        """The branch the RM is registered in, if registered."""
        branch: str | None = await self._db.scalar(
            text("SELECT branch_id FROM engagement.rms WHERE rm_id = :r"), {"r": rm_id}
        )
        return branch

    async def branch_rms(self, branch_id: str | None) -> list[tuple[str, int, int]]:
        """The active RMs of the branch with their capacity and the items they hold."""
        if branch_id is None:
            return []
        rows = await self._db.execute(
            text(
                """
                SELECT r.rm_id, r.capacity, count(i.id)
                FROM engagement.rms r
                LEFT JOIN engagement.items i ON i.assigned_to = r.rm_id AND i.status = ANY(:held)
                WHERE r.branch_id = :b AND r.active
                GROUP BY r.rm_id, r.capacity
                """
            ),
            {"b": branch_id, "held": _HELD},
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    async def add_item(self, item: PlannedItem, branch_id: str | None, actor: str, now: datetime) -> None:
        inserted = await self._db.scalar(
            text(
                f"""
                INSERT INTO engagement.items ({ITEM_COLUMNS})
                VALUES (CAST(:id AS uuid), :customer_id, :branch_id, :rule, :kind, :category, :channel,
                    :priority, :status, :due_at, :sla_due_at, :expires_at, :template, :product, :reason,
                    :needs_rm, :trigger_event_id, :context_tier, :context_stage, :assigned_to, NULL,
                    :cancel_reason, NULL, :closed_at, :now, :now, :experiment, :household_id,
                    :household_change, CAST(:covered_by AS uuid), :covered_members)
                ON CONFLICT (id) DO NOTHING RETURNING id
                """  # noqa: S608 - fixed column list
            ),
            {
                "id": item.id,
                "customer_id": item.customer_id,
                "branch_id": branch_id,
                "rule": item.rule,
                "kind": item.kind,
                "category": item.category.value,
                "channel": item.channel.value if item.channel else None,
                "priority": item.priority.value,
                "status": item.status.value,
                "due_at": item.due_at,
                "sla_due_at": item.sla_due_at,
                "expires_at": item.expires_at,
                "template": item.template,
                "product": item.product,
                "reason": item.reason,
                "needs_rm": item.needs_rm,
                "trigger_event_id": item.trigger_event_id,
                "context_tier": item.context_tier.value,
                "context_stage": item.context_stage.value,
                "assigned_to": item.assigned_to,
                "cancel_reason": item.cancel_reason,
                "closed_at": now if item.closed else None,
                "now": now,
                "experiment": item.experiment,
                "household_id": item.household_id,
                "household_change": item.household_change,
                "covered_by": item.covered_by,
                # A household's contact lists the members it covers, its own first.
                "covered_members": [item.customer_id]
                if item.household_change and not item.covered_by
                else [],
            },
        )
        if inserted is not None:
            await self.audit(item.id, None, item.status, actor, item.reason)
            await self.publish_item(item.id, now)

    async def item(self, item_id: str) -> dict[str, Any] | None:
        """The item's row, locked until the transaction ends."""
        row = (
            await self._db.execute(
                text(f"SELECT {ITEM_COLUMNS} FROM engagement.items WHERE id = CAST(:id AS uuid) FOR UPDATE"),  # noqa: S608
                {"id": item_id},
            )
        ).first()
        return None if row is None else dict(row._mapping)

    async def save_transition(
        self, before: ItemState, after: ItemState, actor: str, note: str | None, now: datetime
    ) -> None:
        await self._db.execute(
            text(
                """
                UPDATE engagement.items SET status = :status, assigned_to = :assigned_to, outcome = :outcome,
                    cancel_reason = :cancel_reason, first_contact_at = :first_contact_at,
                    closed_at = :closed_at, updated_at = :now
                WHERE id = CAST(:id AS uuid)
                """
            ),
            {
                "id": after.id,
                "status": after.status.value,
                "assigned_to": after.assigned_to,
                "outcome": after.outcome.value if after.outcome else None,
                "cancel_reason": after.cancel_reason,
                "first_contact_at": after.first_contact_at,
                "closed_at": after.closed_at,
                "now": now,
            },
        )
        await self.audit(after.id, before.status, after.status, actor, note)
        await self.publish_item(after.id, now)

    async def publish_item(self, item_id: str, now: datetime) -> None:
        await self._outbox(outreach_event, item_id, now)

    async def request_survey(self, item_id: str, now: datetime) -> None:
        await self._outbox(survey_request, item_id, now)

    async def _outbox(self, event: OutreachEvent, item_id: str, now: datetime) -> None:
        item = await self.item(item_id)
        assert item is not None
        await enqueue(self._db, SCHEMA, self._topic, [event(item, now)])

    async def audit(
        self, item_id: str, before: ItemStatus | None, after: ItemStatus, actor: str, note: str | None
    ) -> None:
        await self._db.execute(
            text(
                "INSERT INTO engagement.item_audit "
                "(item_id, from_status, to_status, actor, note, customer_id) "
                "SELECT id, :before, :after, :actor, :note, customer_id FROM engagement.items "
                "WHERE id = CAST(:id AS uuid)"
            ),
            {
                "id": item_id,
                "before": before.value if before else None,
                "after": after.value,
                "actor": actor,
                "note": note,
            },
        )

    async def due_to_expire(self, now: datetime, limit: int) -> list[str]:
        rows = await self._db.execute(
            text(
                "SELECT id::text FROM engagement.items WHERE status = ANY(:open) "
                "AND expires_at <= :now ORDER BY expires_at LIMIT :n FOR UPDATE SKIP LOCKED"
            ),
            {"now": now, "n": limit, "open": _OPEN},
        )
        return [r[0] for r in rows]

    async def due_to_expire_by_partition_clock(self, topic: str, limit: int) -> dict[str, datetime]:
        """Open items past their expiry by the clock of the partition of `topic` that holds their
        customer, with that clock. A customer whose partition is not known (recorded before the
        clock was kept per partition) goes by the earliest partition clock, or before any by the
        bank-wide watermark."""
        rows = await self._db.execute(_DUE_BY_PARTITION, {"topic": topic, "n": limit, "open": _OPEN})
        return {row[0]: row[1] for row in rows}

    async def clock_of_item(self, topic: str, item_id: str) -> datetime | None:
        """The clock of the partition of `topic` that holds the item's customer (same fallbacks as
        expiry); None for an unknown item or before any change was applied."""
        value: datetime | None = await self._db.scalar(_ITEM_CLOCK, {"topic": topic, "id": item_id})
        return value

    async def put_rm(self, rm_id: str, branch_id: str, capacity: int, active: bool) -> None:
        await self._db.execute(
            text(
                "INSERT INTO engagement.rms (rm_id, branch_id, capacity, active) VALUES (:r, :b, :c, :a) "
                "ON CONFLICT (rm_id) DO UPDATE SET branch_id = :b, capacity = :c, active = :a"
            ),
            {"r": rm_id, "b": branch_id, "c": capacity, "a": active},
        )

    async def active_playbook(self) -> Playbook | None:
        document = await self._db.scalar(text("SELECT document FROM engagement.playbooks WHERE active"))
        return None if document is None else Playbook.model_validate(document)

    async def install_playbook(self, playbook: Playbook, actor: str, active: bool) -> None:
        await self._db.execute(
            text(
                "INSERT INTO engagement.playbooks (version, document, created_by, active) "
                "VALUES (:v, CAST(:d AS jsonb), :a, :active)"
            ),
            {"v": playbook.version, "d": playbook.model_dump_json(), "a": actor, "active": active},
        )

    async def offer_playbook(self, playbook: Playbook, actor: str) -> bool:
        """Install the playbook inactive unless its version exists; whether it was installed."""
        installed = await self._db.scalar(
            text(
                "INSERT INTO engagement.playbooks (version, document, created_by, active) "
                "VALUES (:v, CAST(:d AS jsonb), :a, false) ON CONFLICT (version) DO NOTHING RETURNING version"
            ),
            {"v": playbook.version, "d": playbook.model_dump_json(), "a": actor},
        )
        return installed is not None

    async def activate_playbook(self, version: str) -> bool:
        exists = await self._db.scalar(
            text("SELECT 1 FROM engagement.playbooks WHERE version = :v"), {"v": version}
        )
        if exists is None:
            return False
        await self._db.execute(text("UPDATE engagement.playbooks SET active = false WHERE active"))
        await self._db.execute(
            text("UPDATE engagement.playbooks SET active = true WHERE version = :v"), {"v": version}
        )
        return True


def item_state(row: dict[str, Any]) -> ItemState:
    return ItemState(
        id=str(row["id"]),
        status=ItemStatus(row["status"]),
        assigned_to=row["assigned_to"],
        outcome=OutreachOutcome(row["outcome"]) if row["outcome"] else None,
        cancel_reason=row["cancel_reason"],
        first_contact_at=row["first_contact_at"],
        closed_at=row["closed_at"],
    )


async def expire(connection: AsyncConnection, cutoffs: Cutoffs, limit: int) -> dict[str, int]:
    """Engagement's retention, up to `limit` rows a table. Open items are never deleted, however
    old; an item's audit is kept for the audit retention, longer than the item, as the record of
    who did what."""
    expiries = [
        Expiry("engagement.items", "closed_at", cutoffs.closed_outreach),
        Expiry("engagement.item_audit", "at", cutoffs.audits),
    ]
    return await delete_expired(connection, expiries, limit)
