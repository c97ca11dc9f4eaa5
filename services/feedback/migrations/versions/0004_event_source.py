"""Applied-event markers and the observed tier history keyed by CloudEvents source and id.

CloudEvents defines an event's identity as `source` + `id`: two systems that both send id
`1` send two events. Markers written before this change did not record the source, so
they get the empty source, which no CloudEvent can have (`source` is at least one
character): the claim reads such a marker as "this id was applied, whatever its source", so
an event applied before the upgrade and redelivered after it is still applied once. Tier
changes observed before keep the empty source in the history for the same reason.

Revision ID: feedback_0004
Revises: feedback_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import key_by_event_id, key_by_event_source

revision: str = "feedback_0004"
down_revision: str | None = "feedback_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    key_by_event_source("feedback.applied_events", primary=True)
    key_by_event_source("feedback.tier_history", primary=False)


def downgrade() -> None:
    key_by_event_id("feedback.tier_history", primary=False)
    key_by_event_id("feedback.applied_events", primary=True)
