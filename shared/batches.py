"""All-or-nothing validation of one item or a JSON array of items, with every error located."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts.envelope import field_errors
from shared.contracts.types import TimeBounds

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# Errors a rejection lists; the rest are counted. A hostile batch can hold an error in every
# few bytes, and listing them all would cost more memory than the batch and answer it in kind.
MAX_LISTED_ERRORS = 100


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


class BatchRefused(ValueError):
    """Nothing of the batch is accepted."""


class BatchRejected(BatchRefused):
    """`errors` lists the first problems found (at most MAX_LISTED_ERRORS); `total` counts all."""

    def __init__(self, errors: list[ItemError], total: int | None = None) -> None:
        self.total = len(errors) if total is None else total
        super().__init__(f"{self.total} validation errors")
        self.errors = errors


class BatchTooLarge(BatchRefused):
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


def model_validator(model: type[M], bounds: TimeBounds | None = None) -> Callable[[object], M]:
    """An item validator for `accept_all` from a pydantic model; messages never echo the input.
    With `bounds`, every time in the item obeys the future-skew rule against that clock."""
    context = bounds.context() if bounds is not None else None

    def validate(item: object) -> M:
        try:
            return model.model_validate(item, context=context)
        except ValidationError as exc:
            raise ItemInvalid([(e.field, e.message) for e in field_errors(exc)]) from None

    return validate
