"""Applied-event markers keyed by CloudEvents source and id; tier history names both as the cause.

CloudEvents defines an event's identity as `source` + `id`: two systems that both send id
`1` send two events. Markers written before this change did not record the source, so
they get the empty source, which no CloudEvent can have (`source` is at least one
character): the claim reads such a marker as "this id was applied, whatever its source", so
an event applied before the upgrade and resent after it is still not counted twice. Tier
changes caused by an event name it as `{"source": ..., "id": ...}`; those recorded before
carry the empty source for the same reason. `review` and `override` stay plain strings.

Revision ID: scoring_0005
Revises: scoring_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script, key_by_event_id, key_by_event_source

revision: str = "scoring_0005"
down_revision: str | None = "scoring_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    key_by_event_source("scoring.applied_events", primary=True)
    execute_script(
        """
        ALTER TABLE scoring.tier_history ALTER COLUMN caused_by TYPE jsonb USING
            CASE WHEN trigger = 'event' THEN jsonb_build_object('source', '', 'id', caused_by)
                 ELSE to_jsonb(caused_by) END
        """
    )


def downgrade() -> None:
    execute_script(
        """
        ALTER TABLE scoring.tier_history ALTER COLUMN caused_by TYPE text USING
            CASE WHEN jsonb_typeof(caused_by) = 'object' THEN caused_by ->> 'id'
                 ELSE caused_by #>> '{}' END
        """
    )
    key_by_event_id("scoring.applied_events", primary=True)
