"""The event clock per partition of the events topic, and the partition that holds each customer.

One watermark for the bank let a partition consumed far ahead of the others move every
customer's clock. Each partition now keeps the latest event time applied from it, and each
customer records the partition of the events topic its events come from, so the review loop
judges a customer by that partition's clock (and, with the wall clock, holds back customers
whose partition lags). The old bank-wide watermark cannot be split by partition, so it is
dropped: partitions start again from their next event (a replay rebuilds them anyway).

Revision ID: scoring_0006
Revises: scoring_0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "scoring_0006"
down_revision: str | None = "scoring_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE scoring.partition_clock (
            topic      text NOT NULL,
            partition  integer NOT NULL CHECK (partition >= 0),
            watermark  timestamptz NOT NULL,
            PRIMARY KEY (topic, partition)
        );
        ALTER TABLE scoring.customers ADD COLUMN clock_partition integer;
        DROP TABLE scoring.clock;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        CREATE TABLE scoring.clock (
            id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            watermark  timestamptz NOT NULL
        );
        INSERT INTO scoring.clock (id, watermark)
            SELECT 1, max(watermark) FROM scoring.partition_clock HAVING count(*) > 0;
        ALTER TABLE scoring.customers DROP COLUMN clock_partition;
        DROP TABLE scoring.partition_clock;
        """
    )
