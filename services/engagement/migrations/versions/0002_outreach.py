"""Outreach items with their audit, customers' contact context, RMs, playbooks, inbox, outbox.

Revision ID: engagement_0002
Revises: engagement_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import execute_script

revision: str = "engagement_0002"
down_revision: str | None = "engagement_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = """
CREATE TABLE engagement.customers (
    customer_id           text PRIMARY KEY,
    branch_id             text,
    rm_id                 text,
    profile               jsonb NOT NULL DEFAULT '{}'::jsonb,
    tier                  text,
    stage                 text,
    complaints_open_high  integer NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE engagement.rms (
    rm_id      text PRIMARY KEY,
    branch_id  text NOT NULL,
    capacity   integer NOT NULL CHECK (capacity >= 0),
    active     boolean NOT NULL DEFAULT true
);
CREATE INDEX rms_branch ON engagement.rms (branch_id) WHERE active;
CREATE TABLE engagement.items (
    id                uuid PRIMARY KEY,
    customer_id       text NOT NULL,
    branch_id         text,
    rule              text NOT NULL,
    kind              text NOT NULL,
    category          text NOT NULL,
    channel           text,
    priority          text NOT NULL,
    status            text NOT NULL,
    due_at            timestamptz NOT NULL,
    sla_due_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    template          text NOT NULL,
    product           text,
    reason            text NOT NULL,
    needs_rm          boolean NOT NULL,
    trigger_event_id  text NOT NULL,
    context_tier      text NOT NULL,
    context_stage     text NOT NULL,
    assigned_to       text,
    outcome           text,
    cancel_reason     text,
    first_contact_at  timestamptz,
    closed_at         timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX items_customer ON engagement.items (customer_id, status);
CREATE INDEX items_assignee ON engagement.items (assigned_to, status);
CREATE INDEX items_branch ON engagement.items (branch_id, status);
CREATE INDEX items_open_expiry ON engagement.items (expires_at)
    WHERE status IN ('queued', 'assigned', 'in_progress');
CREATE INDEX items_created ON engagement.items (created_at);
CREATE TABLE engagement.item_audit (
    id           bigserial PRIMARY KEY,
    item_id      uuid NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    actor        text NOT NULL,
    note         text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_audit_item ON engagement.item_audit (item_id, id);
CREATE TABLE engagement.applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE engagement.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE engagement.playbooks (
    version       text PRIMARY KEY,
    document      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    active        boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX playbooks_one_active ON engagement.playbooks (active) WHERE active
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    for table in ("playbooks", "outbox", "applied_events", "item_audit", "items", "rms", "customers"):
        op.execute(f"DROP TABLE IF EXISTS engagement.{table}")
