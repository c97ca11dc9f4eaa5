"""Erasure: the tombstone list of erased customers and the record of each erasure.

The record keeps what a bank must be able to show (that an erasure happened, when, on whose
request or event, why, and how many rows of each kind it removed) and names the customer only
by a salted reference; see `shared.erasure`.

Revision ID: feedback_0005
Revises: feedback_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_erasures, drop_erasures

revision: str = "feedback_0005"
down_revision: str | None = "feedback_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_erasures("feedback")


def downgrade() -> None:
    drop_erasures("feedback")
