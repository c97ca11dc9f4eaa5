"""Batch intake rules: all-or-nothing validation of one event or a JSON array of events."""

from __future__ import annotations

from shared.batches import BatchRejected, BatchTooLarge, ItemError, ItemInvalid, accept_all
from shared.contracts.envelope import InvalidEvent, ValidationRules, ValidEvent, validate_event

__all__ = ["BatchRejected", "BatchTooLarge", "ItemError", "accept_batch"]


def accept_batch(body: object, rules: ValidationRules, max_events: int) -> list[ValidEvent]:
    """Every event valid, or `BatchRejected` listing each bad item's index, field and message."""

    def validate(item: object) -> ValidEvent:
        try:
            return validate_event(item, rules)
        except InvalidEvent as invalid:
            raise ItemInvalid([(e.field, e.message) for e in invalid.errors]) from None

    return accept_all(body, validate, max_events)
