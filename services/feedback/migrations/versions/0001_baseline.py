"""Baseline: the feedback schema, owned by the feedback service alone.

Revision ID: feedback_0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "feedback_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE SCHEMA IF NOT EXISTS "feedback"')


def downgrade() -> None:
    op.execute('DROP SCHEMA IF EXISTS "feedback" CASCADE')
