"""Baseline: the engagement schema, owned by the engagement service alone.

Revision ID: engagement_0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "engagement_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE SCHEMA IF NOT EXISTS "engagement"')


def downgrade() -> None:
    op.execute('DROP SCHEMA IF EXISTS "engagement" CASCADE')
