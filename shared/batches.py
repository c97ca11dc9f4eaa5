"""All-or-nothing validation of one item or a JSON array of items, with every error located."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts.envelope import field_errors

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


class BatchRefused(ValueError):
    """Nothing of the batch is accepted."""


class BatchRejected(BatchRefused):
    def __init__(self, errors: list[ItemError]) -> None:
        super().__init__(f"{len(errors)} validation errors")
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
    for index, item in enumerate(items):
        try:
            accepted.append(validate(item))
        except ItemInvalid as invalid:
            errors.extend(ItemError(index, field, message) for field, message in invalid.problems)
    if errors:
        raise BatchRejected(errors)
    return accepted


def model_validator(model: type[M]) -> Callable[[object], M]:
    """An item validator for `accept_all` from a pydantic model; messages never echo the input."""

    def validate(item: object) -> M:
        try:
            return model.model_validate(item)
        except ValidationError as exc:
            raise ItemInvalid([(e.field, e.message) for e in field_errors(exc)]) from None

    return validate
