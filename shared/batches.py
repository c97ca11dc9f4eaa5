"""All-or-nothing validation of one item or a JSON array of items, with every error located."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# Errors a rejection lists; the rest are counted. A hostile batch can hold an error in every
# few bytes, and listing them all would cost more memory than the batch and answer it in kind.
MAX_LISTED_ERRORS = 100


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


class BatchRejected(ValueError):
    """`errors` lists the first problems found (at most MAX_LISTED_ERRORS); `total` counts all."""

    def __init__(self, errors: list[ItemError], total: int | None = None) -> None:
        self.total = len(errors) if total is None else total
        super().__init__(f"{self.total} validation errors")
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
    total = 0
    for index, item in enumerate(items):
        try:
            validated = validate(item)
        except ItemInvalid as invalid:
            total += len(invalid.problems)
            listed = invalid.problems[: MAX_LISTED_ERRORS - len(errors)]
            errors.extend(ItemError(index, field, message) for field, message in listed)
            continue
        if not total:
            accepted.append(validated)  # once one item failed, the valid ones are not kept
    if total:
        raise BatchRejected(errors, total)
    return accepted
