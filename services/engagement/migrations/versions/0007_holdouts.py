"""Holdouts and the event clock: an item records the experiment it was drawn for, and
engagement keeps the latest event time it applied as its "now" on the event clock.

Revision ID: engagement_0007
Revises: engagement_0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_clock, drop_clock

revision: str = "engagement_0007"
down_revision: str | None = "engagement_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_clock("engagement")
    # Set on the items a holdout draw decided (queued: treated; held_out: the control group).
    op.execute("ALTER TABLE engagement.items ADD COLUMN IF NOT EXISTS experiment text")
    op.execute(
        "CREATE INDEX IF NOT EXISTS items_experiment ON engagement.items (experiment, status)"
        " WHERE experiment IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS engagement.items_experiment")
    op.execute("ALTER TABLE engagement.items DROP COLUMN IF EXISTS experiment")
    drop_clock("engagement")
