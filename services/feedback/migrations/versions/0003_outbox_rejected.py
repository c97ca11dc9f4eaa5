"""Outbox records the broker refused for good, set aside with the reason by the relay.

Revision ID: feedback_0003
Revises: feedback_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "feedback_0003"
down_revision: str | None = "feedback_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE feedback.outbox_rejected (
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
    op.execute("DROP TABLE IF EXISTS feedback.outbox_rejected")
