"""Duplicate markers partitioned by event time; indexes retention deletes by; the span of history.

Markers already written move to `scoring.applied_events_legacy` (renamed, not copied); see
`shared.migrations.partition_markers`. `scoring.history_span` keeps the earliest event time
scoring has applied, so a replay can tell whether the topic still holds everything its state
was built from; it starts from the earliest time the existing tables show.

Revision ID: scoring_0008
Revises: scoring_0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script, partition_markers, unpartition_markers

revision: str = "scoring_0008"
down_revision: str | None = "scoring_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "customer_id text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()"


def upgrade() -> None:
    partition_markers("scoring", COLUMNS)
    execute_script(
        """
        CREATE INDEX override_audit_at ON scoring.override_audit (at);
        -- An erasure removes a customer's markers in every partition.
        CREATE INDEX applied_events_by_customer ON scoring.applied_events (customer_id);
        CREATE TABLE scoring.history_span (
            id                 smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            earliest_event_at  timestamptz NOT NULL
        );
        INSERT INTO scoring.history_span (earliest_event_at) SELECT least(
            (SELECT min(at) FROM scoring.tier_history),
            (SELECT min(applied_at) FROM scoring.applied_events_legacy),
            'infinity'::timestamptz)
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE scoring.history_span;
        DROP INDEX scoring.override_audit_at
        """
    )
    unpartition_markers("scoring", "customer_id, applied_at")
