"""Batch intake rules: all-or-nothing validation of one event or a JSON array of events."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.envelope import InvalidEvent, ValidationRules, ValidEvent, validate_event


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


class BatchRejected(ValueError):
    def __init__(self, errors: list[ItemError]) -> None:
        super().__init__(f"{len(errors)} validation errors")
        self.errors = errors


class BatchTooLarge(ValueError):
    pass


def accept_batch(body: object, rules: ValidationRules, max_events: int) -> list[ValidEvent]:
    """Every event valid, or `BatchRejected` listing each bad item's index, field and message."""
    items = body if isinstance(body, list) else [body]
    if len(items) > max_events:
        raise BatchTooLarge(f"a batch holds at most {max_events} events; this one has {len(items)}")
    if not items:
        raise BatchRejected([ItemError(0, "(batch)", "the batch is empty")])
    accepted: list[ValidEvent] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            accepted.append(validate_event(item, rules))
        except InvalidEvent as invalid:
            errors.extend(ItemError(index, e.field, e.message) for e in invalid.errors)
    if errors:
        raise BatchRejected(errors)
    return accepted
