"""Households: what each member last published, and the household stage's folded households.

`household_memberships` holds, per customer, the contribution scoring last published and the
member's sequence (never reset, across households), written in the transaction of the state.
The household stage folds contributions into `household_members` (a member's latest row by
sequence; a removal is kept with no contribution so a stale message cannot revive it), keeps
the aggregates in `households` and audits role changes it makes in `household_audit`. A member
row's sequence is the stage's processed marker: it commits with the aggregates it produced.

Revision ID: scoring_0010
Revises: scoring_0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "scoring_0010"
down_revision: str | None = "scoring_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE scoring.household_memberships (
            customer_id text PRIMARY KEY,
            household_id text,
            sequence bigint NOT NULL,
            contribution jsonb
        );
        CREATE TABLE scoring.household_members (
            household_id text NOT NULL,
            member_id text NOT NULL,
            sequence bigint NOT NULL,
            contribution jsonb,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (household_id, member_id)
        );
        CREATE INDEX household_members_member ON scoring.household_members (member_id);
        CREATE TABLE scoring.households (
            household_id text PRIMARY KEY,
            members integer NOT NULL,
            aum numeric NOT NULL,
            aum_avg_30d numeric NOT NULL,
            aum_avg_90d numeric NOT NULL,
            products text[] NOT NULL,
            tier text,
            primary_id text,
            rm_id text,
            branch_id text,
            updated_at timestamptz NOT NULL
        );
        CREATE INDEX households_branch ON scoring.households (branch_id);
        CREATE TABLE scoring.household_audit (
            id bigserial PRIMARY KEY,
            household_id text NOT NULL,
            member_id text NOT NULL,
            from_role text NOT NULL,
            to_role text NOT NULL,
            note text NOT NULL,
            at timestamptz NOT NULL
        );
        CREATE INDEX household_audit_household ON scoring.household_audit (household_id, at);
        -- An erasure removes the rows of the member erased.
        CREATE INDEX household_audit_member ON scoring.household_audit (member_id);
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE scoring.household_audit;
        DROP TABLE scoring.households;
        DROP TABLE scoring.household_members;
        DROP TABLE scoring.household_memberships;
        """
    )
