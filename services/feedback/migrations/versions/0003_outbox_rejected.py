"""Outbox records the broker refused for good, set aside with the reason by the relay.

Revision ID: feedback_0003
Revises: feedback_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_outbox_rejected, drop_outbox_rejected

revision: str = "feedback_0003"
down_revision: str | None = "feedback_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_rejected("feedback")


def downgrade() -> None:
    drop_outbox_rejected("feedback")
