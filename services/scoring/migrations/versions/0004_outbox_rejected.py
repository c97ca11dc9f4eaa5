"""Outbox records the broker refused for good, set aside with the reason by the relay.

Revision ID: scoring_0004
Revises: scoring_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "scoring_0004"
down_revision: str | None = "scoring_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE scoring.outbox_rejected (
            id           bigint PRIMARY KEY,
            topic        text NOT NULL,
            key          bytea NOT NULL,
            value        bytea NOT NULL,
            created_at   timestamptz NOT NULL,
            rejected_at  timestamptz NOT NULL DEFAULT now(),
            attempts     integer NOT NULL,
            reason       text NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS scoring.outbox_rejected")
