"""Holdings with each observed tier: the customer's AUM (base currency) and products held when
scoring decided the change, so an experiment's groups compare on them; and invitations made
for held-out customers, told apart from those following a contact.

Revision ID: feedback_0008
Revises: feedback_0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

from shared.migrations import execute_script

revision: str = "feedback_0008"
down_revision: str | None = "feedback_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = """
ALTER TABLE feedback.tier_history ADD COLUMN IF NOT EXISTS aum numeric(22, 4);
ALTER TABLE feedback.tier_history ADD COLUMN IF NOT EXISTS products_held integer;
ALTER TABLE feedback.invitations ADD COLUMN IF NOT EXISTS held_out boolean NOT NULL DEFAULT false;
"""


def upgrade() -> None:
    execute_script(SCHEMA)


def downgrade() -> None:
    op.execute("ALTER TABLE feedback.invitations DROP COLUMN IF EXISTS held_out")
    op.execute("ALTER TABLE feedback.tier_history DROP COLUMN IF EXISTS products_held")
    op.execute("ALTER TABLE feedback.tier_history DROP COLUMN IF EXISTS aum")
