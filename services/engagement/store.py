"""Engagement's tables, reached through the caller's transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.domain.guardrails import Contact
from services.engagement.domain.lifecycle import ItemState
from services.engagement.domain.planning import Change, OpenItem, PlannedItem
from services.engagement.domain.playbook import Category, ContactChannel, Playbook
from services.engagement.outbound import outreach_event, survey_request

ITEM_COLUMNS = (
    "id, customer_id, branch_id, rule, kind, category, channel, priority, status, due_at, sla_due_at, "
    "expires_at, template, product, reason, needs_rm, trigger_event_id, context_tier, context_stage, "
    "assigned_to, outcome, cancel_reason, first_contact_at, closed_at, created_at, updated_at"
)
COUNTED = ("queued", "assigned", "in_progress", "completed")


class EngagementStore:
    def __init__(self, connection: AsyncConnection, outreach_topic: str) -> None:
        self._db = connection
        self._topic = outreach_topic

    async def claim_event(self, event_id: str) -> bool:
        inserted = await self._db.scalar(
            text(
                "INSERT INTO engagement.applied_events (event_id) VALUES (:id) "
                "ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            {"id": event_id},
        )
        return inserted is not None

    async def remember_customer(self, change: Change) -> None:
        profile = change.profile
        await self._db.execute(
            text(
                """
                INSERT INTO engagement.customers (customer_id, branch_id, rm_id, profile, tier, stage,
                    complaints_open_high, updated_at)
                VALUES (:id, :branch, :rm, CAST(:profile AS jsonb), :tier, :stage, :complaints, now())
                ON CONFLICT (customer_id) DO UPDATE SET branch_id = EXCLUDED.branch_id,
                    rm_id = EXCLUDED.rm_id, profile = EXCLUDED.profile, tier = EXCLUDED.tier,
                    stage = EXCLUDED.stage, complaints_open_high = EXCLUDED.complaints_open_high,
                    updated_at = now()
                """
            ),
            {
                "id": change.customer_id,
                "branch": profile.get("branch_id"),
                "rm": profile.get("rm_id"),
                "profile": json.dumps(profile),
                "tier": change.tier,
                "stage": change.stage,
                "complaints": change.complaints_open_high,
            },
        )

    async def open_items(self, customer_id: str) -> list[OpenItem]:
        rows = await self._db.execute(
            text(
                "SELECT id::text, rule, kind, category, context_tier, context_stage FROM engagement.items "
                "WHERE customer_id = :c AND status IN ('queued', 'assigned', 'in_progress') FOR UPDATE"
            ),
            {"c": customer_id},
        )
        return [OpenItem(r[0], r[1], r[2], Category(r[3]), r[4], r[5]) for r in rows]

    async def recent_contacts(self, customer_id: str, since: datetime) -> list[Contact]:
        rows = await self._db.execute(
            text(
                "SELECT category, channel, created_at FROM engagement.items "
                "WHERE customer_id = :c AND created_at > :since AND status = ANY(:counted)"
            ),
            {"c": customer_id, "since": since, "counted": list(COUNTED)},
        )
        return [Contact(Category(r[0]), ContactChannel(r[1]) if r[1] else None, r[2]) for r in rows]

    async def branch_rms(self, branch_id: str | None) -> list[tuple[str, int, int]]:
        if branch_id is None:
            return []
        rows = await self._db.execute(
            text(
                """
                SELECT r.rm_id, r.capacity, count(i.id)
                FROM engagement.rms r
                LEFT JOIN engagement.items i
                    ON i.assigned_to = r.rm_id AND i.status IN ('assigned', 'in_progress')
                WHERE r.branch_id = :b AND r.active
                GROUP BY r.rm_id, r.capacity
                """
            ),
            {"b": branch_id},
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    async def add_item(
        self, item: PlannedItem, branch_id: str | None, assigned_to: str | None, now: datetime
    ) -> None:
        status = "assigned" if item.status == "queued" and assigned_to else item.status
        inserted = await self._db.scalar(
            text(
                f"""
                INSERT INTO engagement.items ({ITEM_COLUMNS})
                VALUES (CAST(:id AS uuid), :customer_id, :branch_id, :rule, :kind, :category, :channel,
                    :priority, :status, :due_at, :sla_due_at, :expires_at, :template, :product, :reason,
                    :needs_rm, :trigger_event_id, :context_tier, :context_stage, :assigned_to, NULL,
                    :cancel_reason, NULL, :closed_at, :now, :now)
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
                "status": status,
                "due_at": item.due_at,
                "sla_due_at": item.sla_due_at,
                "expires_at": item.expires_at,
                "template": item.template,
                "product": item.product,
                "reason": item.reason,
                "needs_rm": item.needs_rm,
                "trigger_event_id": item.trigger_event_id,
                "context_tier": item.context_tier,
                "context_stage": item.context_stage,
                "assigned_to": assigned_to if status == "assigned" else None,
                "cancel_reason": item.reason if status == "cancelled" else None,
                "closed_at": now if status == "cancelled" else None,
                "now": now,
            },
        )
        if inserted is not None:
            await self.audit(item.id, None, status, "tierflow", item.reason)
            await self.publish_item(item.id, now)

    async def item(self, item_id: str, lock: bool = False) -> dict[str, Any] | None:
        suffix = " FOR UPDATE" if lock else ""
        row = (
            await self._db.execute(
                text(f"SELECT {ITEM_COLUMNS} FROM engagement.items WHERE id = CAST(:id AS uuid){suffix}"),  # noqa: S608
                {"id": item_id},
            )
        ).first()
        return None if row is None else dict(row._mapping)

    async def save_transition(
        self, before: dict[str, Any], after: ItemState, actor: str, note: str | None, now: datetime
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
                "status": after.status,
                "assigned_to": after.assigned_to,
                "outcome": after.outcome,
                "cancel_reason": after.cancel_reason,
                "first_contact_at": after.first_contact_at,
                "closed_at": after.closed_at,
                "now": now,
            },
        )
        await self.audit(after.id, before["status"], after.status, actor, note)
        await self.publish_item(after.id, now)

    async def publish_item(self, item_id: str, now: datetime) -> None:
        item = await self.item(item_id)
        assert item is not None
        await self._outbox(item["customer_id"], outreach_event(item, now))

    async def request_survey(self, item_id: str, now: datetime) -> None:
        item = await self.item(item_id)
        assert item is not None
        await self._outbox(item["customer_id"], survey_request(item, now))

    async def _outbox(self, customer_id: str, value: bytes) -> None:
        await self._db.execute(
            text("INSERT INTO engagement.outbox (topic, key, value) VALUES (:t, :k, :v)"),
            {"t": self._topic, "k": customer_id.encode(), "v": value},
        )

    async def audit(self, item_id: str, before: str | None, after: str, actor: str, note: str | None) -> None:
        await self._db.execute(
            text(
                "INSERT INTO engagement.item_audit (item_id, from_status, to_status, actor, note) "
                "VALUES (CAST(:id AS uuid), :before, :after, :actor, :note)"
            ),
            {"id": item_id, "before": before, "after": after, "actor": actor, "note": note},
        )

    async def due_to_expire(self, now: datetime, limit: int) -> list[str]:
        rows = await self._db.execute(
            text(
                "SELECT id::text FROM engagement.items WHERE status IN ('queued', 'assigned', 'in_progress') "
                "AND expires_at <= :now ORDER BY expires_at LIMIT :n FOR UPDATE SKIP LOCKED"
            ),
            {"now": now, "n": limit},
        )
        return [r[0] for r in rows]

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

    async def playbooks(self) -> list[dict[str, Any]]:
        rows = await self._db.execute(
            text(
                "SELECT version, created_at, created_by, active FROM engagement.playbooks "
                "ORDER BY created_at DESC"
            )
        )
        return [dict(row._mapping) for row in rows]

    async def playbook_document(self, version: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await self._db.scalar(
            text("SELECT document FROM engagement.playbooks WHERE version = :v"), {"v": version}
        )
        return document


def cap_window(playbook: Playbook) -> timedelta:
    return timedelta(days=max((cap.days for cap in playbook.caps.values()), default=1))


def item_state(row: dict[str, Any]) -> ItemState:
    return ItemState(
        id=str(row["id"]),
        status=row["status"],
        assigned_to=row["assigned_to"],
        outcome=row["outcome"],
        cancel_reason=row["cancel_reason"],
        first_contact_at=row["first_contact_at"],
        closed_at=row["closed_at"],
    )
