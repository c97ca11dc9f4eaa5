"""The event clock per partition of the tier-change topic, and the partition that holds each
customer.

One watermark for the bank let a partition consumed a month ahead of the others expire every
other customer's items. Each partition of `customer.tier-changes.v1` now keeps the latest
change time applied from it, and each customer records the partition its changes come from,
so an item expires by its customer's partition's clock. The bank-wide watermark stays: it is
engagement's "now" for reports that span every customer.

Revision ID: engagement_0009
Revises: engagement_0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "engagement_0009"
down_revision: str | None = "engagement_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE engagement.partition_clock (
            topic      text NOT NULL,
            partition  integer NOT NULL CHECK (partition >= 0),
            watermark  timestamptz NOT NULL,
            PRIMARY KEY (topic, partition)
        );
        ALTER TABLE engagement.customers ADD COLUMN clock_partition integer
        """
    )


def downgrade() -> None:
    execute_script(
        """
        ALTER TABLE engagement.customers DROP COLUMN clock_partition;
        DROP TABLE engagement.partition_clock
        """
    )
