"""Outbox records the broker refused for good, set aside with the reason by the relay.

Revision ID: engagement_0003
Revises: engagement_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_outbox_rejected, drop_outbox_rejected

revision: str = "engagement_0003"
down_revision: str | None = "engagement_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_rejected("engagement")


def downgrade() -> None:
    drop_outbox_rejected("engagement")
