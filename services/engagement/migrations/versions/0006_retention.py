"""Duplicate markers partitioned by event time; indexes retention deletes by.

Markers already written move to `engagement.applied_events_legacy` (renamed, not copied); see
`shared.migrations.partition_markers`.

Revision ID: engagement_0006
Revises: engagement_0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script, partition_markers, unpartition_markers

revision: str = "engagement_0006"
down_revision: str | None = "engagement_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    partition_markers("engagement", "applied_at timestamptz NOT NULL DEFAULT now()")
    execute_script(
        """
        CREATE INDEX item_audit_at ON engagement.item_audit (at);
        CREATE INDEX items_closed ON engagement.items (closed_at) WHERE closed_at IS NOT NULL
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX engagement.items_closed;
        DROP INDEX engagement.item_audit_at
        """
    )
    unpartition_markers("engagement", "applied_at")
