"""A branch transfer, a new RM or segment without a tier change: subscribers must still learn it.

A tier change carries the customer's profile, so engagement and feedback follow the customer's
branch on every tier change. A transfer that leaves tier and stage as they were produces no
tier change; this is the decision that it is published on its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.scoring.domain.customer import CustomerState, event_cause_key
from services.scoring.domain.features import Features
from shared.contracts.outbound import EventCause

# What a subscriber routes or scopes by: the branch (who sees the customer), the RM (who works
# them), the segment (the customer type playbooks and reports split on).
FOLLOWED_FIELDS = ("branch_id", "rm_id", "segment")
_IDS = uuid.UUID("0c6f4a2e-7f1b-4d8e-9a35-6b1d2c9e4f70")


@dataclass(frozen=True)
class ProfileChange:
    id: str
    customer_id: str
    at: datetime
    changed: tuple[str, ...]
    previous_branch_id: str | None
    previous_rm_id: str | None
    # The customer's features after the event: the new profile subscribers receive.
    features: Features


def profile_change(
    before: CustomerState, after: CustomerState, cause: EventCause, at: datetime
) -> ProfileChange | None:
    """The followed fields the event changed, for a customer subscribers already know (one with
    a decision); None if none changed. Deterministic id: a resend is recognisable."""
    if before.decision is None or after.decision is None:
        return None
    old, new = before.features.profile, after.features.profile
    if old is new:
        return None  # the usual case: an event other than a profile update keeps the very dict
    changed = tuple(name for name in FOLLOWED_FIELDS if old.get(name) != new.get(name))
    if not changed:
        return None
    return ProfileChange(
        id=str(uuid.uuid5(_IDS, f"profile-change|{before.customer_id}|{event_cause_key(cause)}")),
        customer_id=before.customer_id,
        at=at,
        changed=changed,
        previous_branch_id=old.get("branch_id"),
        previous_rm_id=old.get("rm_id"),
        features=after.features,
    )
