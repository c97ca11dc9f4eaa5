"""Outbox records the broker refused for good, set aside with the reason by the relay.

Revision ID: scoring_0004
Revises: scoring_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_outbox_rejected, drop_outbox_rejected

revision: str = "scoring_0004"
down_revision: str | None = "scoring_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_rejected("scoring")


def downgrade() -> None:
    drop_outbox_rejected("scoring")
