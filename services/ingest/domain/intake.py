"""Intake rules: all-or-nothing validation of one event or a JSON array of events, and profiles."""

from __future__ import annotations

from datetime import datetime

from shared.batches import BatchRejected, BatchTooLarge, ItemError, ItemInvalid, accept_all
from shared.contracts.envelope import InvalidEvent, ValidationRules, ValidEvent, validate_event
from shared.contracts.inbound import CUSTOMER

__all__ = ["BatchRejected", "BatchTooLarge", "ItemError", "ProfileRejected", "accept_batch", "profile_event"]
PROFILE_SOURCE = "tierflow/ingest/profile"


class ProfileRejected(ValueError):
    pass


def accept_batch(body: object, rules: ValidationRules, max_events: int) -> list[ValidEvent]:
    """Every event valid, or `BatchRejected` listing each bad item's index, field and message."""

    def validate(item: object) -> ValidEvent:
        try:
            return validate_event(item, rules)
        except InvalidEvent as invalid:
            raise ItemInvalid([(e.field, e.message) for e in invalid.errors]) from None

    return accept_all(body, validate, max_events)


def profile_event(customer_id: str, profile: object, event_id: str, now: datetime) -> dict[str, object]:
    """A profile posted on its own becomes the `bank.customer.v1` event a core system would send."""
    if not isinstance(profile, dict):
        raise ProfileRejected("the profile must be a JSON object")
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": PROFILE_SOURCE,
        "type": CUSTOMER,
        "time": now.isoformat(),
        "subject": customer_id,
        "data": {**profile, "customer_id": customer_id},
    }
