"""Surveys, complaints with their lifecycle, survey invitations, customers' tiers over time.

Revision ID: feedback_0002
Revises: feedback_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import execute_script

revision: str = "feedback_0002"
down_revision: str | None = "feedback_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = """
CREATE TABLE feedback.customers (
    customer_id  text PRIMARY KEY,
    tier         text,
    stage        text,
    branch_id    text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE feedback.tier_history (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    customer_id  text NOT NULL,
    at           timestamptz NOT NULL,
    tier         text NOT NULL,
    stage        text NOT NULL
);
CREATE INDEX feedback_tier_history_customer ON feedback.tier_history (customer_id, at);
CREATE TABLE feedback.surveys (
    survey_id    text PRIMARY KEY,
    customer_id  text NOT NULL,
    kind         text NOT NULL,
    score        integer NOT NULL,
    comment      text,
    outreach_id  text,
    answered_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    tier         text,
    stage        text,
    branch_id    text,
    channel      text
);
CREATE INDEX surveys_answered ON feedback.surveys (answered_at, kind);
CREATE INDEX surveys_outreach ON feedback.surveys (outreach_id) WHERE outreach_id IS NOT NULL;
CREATE INDEX surveys_customer ON feedback.surveys (customer_id, answered_at);
CREATE TABLE feedback.complaints (
    complaint_id  text PRIMARY KEY,
    customer_id   text NOT NULL,
    severity      text NOT NULL,
    category      text NOT NULL,
    status        text NOT NULL,
    opened_at     timestamptz NOT NULL,
    resolved_at   timestamptz,
    updated_at    timestamptz NOT NULL,
    tier          text,
    branch_id     text
);
CREATE INDEX complaints_opened ON feedback.complaints (opened_at);
CREATE INDEX complaints_open ON feedback.complaints (customer_id) WHERE status <> 'resolved';
CREATE TABLE feedback.complaint_audit (
    id            bigserial PRIMARY KEY,
    complaint_id  text NOT NULL,
    from_status   text,
    to_status     text NOT NULL,
    actor         text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE feedback.invitations (
    outreach_id   text PRIMARY KEY,
    customer_id   text NOT NULL,
    action        text NOT NULL,
    tier          text,
    channel       text,
    outcome       text,
    requested_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    survey_id     text
);
CREATE INDEX invitations_customer ON feedback.invitations (customer_id, requested_at DESC);
CREATE TABLE feedback.applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE feedback.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    tables = (
        "outbox",
        "applied_events",
        "invitations",
        "complaint_audit",
        "complaints",
        "surveys",
        "tier_history",
        "customers",
    )
    for table in tables:
        op.execute(f"DROP TABLE IF EXISTS feedback.{table}")
