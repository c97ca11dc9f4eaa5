"""Holdouts and the event clock: the members of each experiment (treated or held out, from
engagement's outreach events), and feedback's latest applied event time.

Revision ID: feedback_0007
Revises: feedback_0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import create_clock, drop_clock, execute_script

revision: str = "feedback_0007"
down_revision: str | None = "feedback_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback.experiment_members (
    outreach_id  text PRIMARY KEY,
    customer_id  text NOT NULL,
    experiment   text NOT NULL,
    arm          text NOT NULL CHECK (arm IN ('treated', 'held_out')),
    action       text NOT NULL,
    tier         text,
    enrolled_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS experiment_members_enrolled
    ON feedback.experiment_members (enrolled_at, experiment);
CREATE INDEX IF NOT EXISTS experiment_members_customer ON feedback.experiment_members (customer_id);
"""


def upgrade() -> None:
    create_clock("feedback")
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS feedback.experiment_members")
    drop_clock("feedback")
