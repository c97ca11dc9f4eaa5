"""One RM contact per household change: an RM item records the household change it serves, the
household's contact lists the members it covers, and a covered member's item names it.

Revision ID: engagement_0010
Revises: engagement_0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "engagement_0010"
down_revision: str | None = "engagement_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE engagement.items ADD COLUMN household_id text;
        ALTER TABLE engagement.items ADD COLUMN household_change text;
        ALTER TABLE engagement.items ADD COLUMN covered_by uuid;
        -- Customer ids: an erasure removes the customer's id from every contact that lists it.
        ALTER TABLE engagement.items ADD COLUMN covered_members text[] NOT NULL DEFAULT '{}';
        CREATE INDEX items_household_change ON engagement.items (household_id, household_change)
            WHERE household_change IS NOT NULL;
        CREATE INDEX items_covered_members ON engagement.items USING gin (covered_members)
            WHERE covered_members <> '{}'
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX engagement.items_covered_members;
        DROP INDEX engagement.items_household_change;
        ALTER TABLE engagement.items DROP COLUMN covered_members;
        ALTER TABLE engagement.items DROP COLUMN covered_by;
        ALTER TABLE engagement.items DROP COLUMN household_change;
        ALTER TABLE engagement.items DROP COLUMN household_id
        """
    )
