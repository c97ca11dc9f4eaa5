"""An item's audit rows name its customer, so an erasure finds the RMs' notes after retention has
deleted the (closed) item itself, which it does years before the audit's own retention ends.

Revision ID: engagement_0008
Revises: engagement_0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "engagement_0008"
down_revision: str | None = "engagement_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE engagement.item_audit ADD COLUMN customer_id text;
        UPDATE engagement.item_audit AS a SET customer_id = i.customer_id
            FROM engagement.items AS i WHERE i.id = a.item_id;
        CREATE INDEX item_audit_customer ON engagement.item_audit (customer_id)
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX engagement.item_audit_customer;
        ALTER TABLE engagement.item_audit DROP COLUMN customer_id
        """
    )
