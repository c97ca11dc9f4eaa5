"""All-or-nothing validation of one item or a JSON array of items, with every error located."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


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


class ItemInvalid(ValueError):
    """Raised by an item validator with (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


def accept_all(body: object, validate: Callable[[object], T], max_items: int) -> list[T]:
    """Every item valid, or `BatchRejected` listing each bad item's index, field and message."""
    items = body if isinstance(body, list) else [body]
    if len(items) > max_items:
        raise BatchTooLarge(f"a batch holds at most {max_items} items; this one has {len(items)}")
    if not items:
        raise BatchRejected([ItemError(0, "(batch)", "the batch is empty")])
    accepted: list[T] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            accepted.append(validate(item))
        except ItemInvalid as invalid:
            errors.extend(ItemError(index, field, message) for field, message in invalid.problems)
    if errors:
        raise BatchRejected(errors)
    return accepted
