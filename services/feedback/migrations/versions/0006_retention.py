"""Duplicate markers partitioned by event time; indexes retention deletes by.

Markers already written move to `feedback.applied_events_legacy` (renamed, not copied); see
`shared.migrations.partition_markers`.

Revision ID: feedback_0006
Revises: feedback_0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script, partition_markers, unpartition_markers

revision: str = "feedback_0006"
down_revision: str | None = "feedback_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("tier_history_at", "tier_history (at)"),
    ("complaints_resolved", "complaints (resolved_at) WHERE status = 'resolved'"),
    ("complaint_audit_at", "complaint_audit (at)"),
    ("invitations_expires", "invitations (expires_at)"),
)


def upgrade() -> None:
    partition_markers("feedback", "applied_at timestamptz NOT NULL DEFAULT now()")
    execute_script(";".join(f"CREATE INDEX {name} ON feedback.{target}" for name, target in INDEXES))


def downgrade() -> None:
    execute_script(";".join(f"DROP INDEX feedback.{name}" for name, _ in INDEXES))
    unpartition_markers("feedback", "applied_at")
