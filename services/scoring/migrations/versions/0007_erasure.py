"""Erasure: the tombstone list of erased customers and the record of each erasure.

The record keeps what a bank must be able to show (that an erasure happened, when, on whose
request or event, why, and how many rows of each kind it removed) and names the customer only
by a salted reference; see `shared.erasure`.

Revision ID: scoring_0007
Revises: scoring_0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_erasures, drop_erasures

revision: str = "scoring_0007"
down_revision: str | None = "scoring_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_erasures("scoring")
    # Erasing a customer removes their applied-event markers; without the index that is a scan
    # of every marker.
    op.execute("CREATE INDEX applied_events_customer ON scoring.applied_events (customer_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS scoring.applied_events_customer")
    drop_erasures("scoring")
