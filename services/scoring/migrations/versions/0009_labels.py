"""Customer labels: the current ones on each customer row, and with every recorded change.

`scoring.customers.labels` holds the label names the customer holds now (the state keeps
their reasons), indexed for the `label=` filters. Each tier-history row records the labels
after the change and those it added or removed, so label flows between two dates are read
from history as tier migrations are. Rows from before hold none.

Revision ID: scoring_0009
Revises: scoring_0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "scoring_0009"
down_revision: str | None = "scoring_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE scoring.customers ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
        CREATE INDEX customers_labels ON scoring.customers USING gin (labels);
        ALTER TABLE scoring.tier_history
            ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
            ADD COLUMN labels_entered text[] NOT NULL DEFAULT '{}',
            ADD COLUMN labels_left text[] NOT NULL DEFAULT '{}';
        """
    )


def downgrade() -> None:
    execute_script(
        """
        ALTER TABLE scoring.tier_history
            DROP COLUMN labels, DROP COLUMN labels_entered, DROP COLUMN labels_left;
        DROP INDEX scoring.customers_labels;
        ALTER TABLE scoring.customers DROP COLUMN labels;
        """
    )
