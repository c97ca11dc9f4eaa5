"""Replay generations: each replay consumes the topics again under a fresh consumer group.

Revision ID: scoring_0003
Revises: scoring_0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "scoring_0003"
down_revision: str | None = "scoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE scoring.replays (generation integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS scoring.replays")
