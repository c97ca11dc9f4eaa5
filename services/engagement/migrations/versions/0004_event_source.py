"""Applied-event markers keyed by CloudEvents source and id.

CloudEvents defines an event's identity as `source` + `id`: two systems that both send id
`1` send two events. Markers written before this change did not record the source, so
they get the empty source, which no CloudEvent can have (`source` is at least one
character): the claim reads such a marker as "this id was applied, whatever its source", so
an event applied before the upgrade and redelivered after it is still applied once.

Revision ID: engagement_0004
Revises: engagement_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import execute_script

revision: str = "engagement_0004"
down_revision: str | None = "engagement_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
        ALTER TABLE engagement.applied_events ADD COLUMN source text NOT NULL DEFAULT '';
        ALTER TABLE engagement.applied_events ALTER COLUMN source DROP DEFAULT;
        ALTER TABLE engagement.applied_events DROP CONSTRAINT applied_events_pkey;
        ALTER TABLE engagement.applied_events ADD PRIMARY KEY (source, event_id)
"""

# Going back to one marker per id keeps, of the same id from several sources, one marker.
DOWNGRADE = """
        DELETE FROM engagement.applied_events AS later USING engagement.applied_events AS earlier
            WHERE later.event_id = earlier.event_id AND later.source > earlier.source;
        ALTER TABLE engagement.applied_events DROP CONSTRAINT applied_events_pkey;
        ALTER TABLE engagement.applied_events ADD PRIMARY KEY (event_id);
        ALTER TABLE engagement.applied_events DROP COLUMN source
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
