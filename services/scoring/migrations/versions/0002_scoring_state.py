"""Customer state, the applied-event marker, tier history, the outbox, policies, overrides.

Revision ID: scoring_0002
Revises: scoring_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import execute_script

revision: str = "scoring_0002"
down_revision: str | None = "scoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SCHEMA = """
        CREATE TABLE scoring.customers (
            customer_id     text PRIMARY KEY,
            state           jsonb,
            tier            text,
            stage           text,
            score           double precision,
            policy_version  text,
            tier_since      timestamptz,
            next_review_at  timestamptz,
            branch_id       text,
            segment         text,
            region          text,
            updated_at      timestamptz
        );
        CREATE INDEX customers_due ON scoring.customers (next_review_at);
        CREATE INDEX customers_tier_stage ON scoring.customers (tier, stage);
        CREATE INDEX customers_branch ON scoring.customers (branch_id, tier, stage);

        -- The record that an event's effects are committed: written in the same
        -- transaction as the new state, so a redelivered event is recognised.
        CREATE TABLE scoring.applied_events (
            event_id     text PRIMARY KEY,
            customer_id  text NOT NULL,
            applied_at   timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE scoring.tier_history (
            id              bigserial PRIMARY KEY,
            change_id       uuid NOT NULL UNIQUE,
            customer_id     text NOT NULL,
            at              timestamptz NOT NULL,
            previous_tier   text,
            tier            text NOT NULL,
            previous_stage  text,
            stage           text NOT NULL,
            direction       text NOT NULL,
            score           double precision NOT NULL,
            policy_version  text NOT NULL,
            reasons         jsonb NOT NULL,
            caused_by       text NOT NULL,
            trigger         text NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX tier_history_customer ON scoring.tier_history (customer_id, at DESC, id DESC);
        CREATE INDEX tier_history_at ON scoring.tier_history (at);

        -- Tier-change events waiting for the relay to put them on the stream.
        CREATE TABLE scoring.outbox (
            id          bigserial PRIMARY KEY,
            topic       text NOT NULL,
            key         bytea NOT NULL,
            value       bytea NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE scoring.policies (
            version       text PRIMARY KEY,
            document      jsonb NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            created_by    text NOT NULL,
            activated_at  timestamptz,
            active        boolean NOT NULL DEFAULT false
        );
        CREATE UNIQUE INDEX policies_one_active ON scoring.policies (active) WHERE active;

        CREATE TABLE scoring.override_audit (
            id           bigserial PRIMARY KEY,
            customer_id  text NOT NULL,
            action       text NOT NULL,
            tier         text,
            reason       text,
            expires_at   timestamptz,
            actor        text NOT NULL,
            at           timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX override_audit_customer ON scoring.override_audit (customer_id, at DESC);

        -- Event-time clock for replay and backfill: the latest event time applied.
        CREATE TABLE scoring.clock (
            id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            watermark  timestamptz NOT NULL
        );
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    for table in (
        "clock",
        "override_audit",
        "policies",
        "outbox",
        "tier_history",
        "applied_events",
        "customers",
    ):
        op.execute(f"DROP TABLE IF EXISTS scoring.{table}")
