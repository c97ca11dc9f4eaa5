"""What the scoring domain sees of an inbound event: source and id, type, event time and typed data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from pydantic import BaseModel


@dataclass(frozen=True)
class ScoringEvent:
    # CloudEvents identity: the same id from two sources is two events.
    source: str
    id: str
    type: str
    time: datetime
    data: BaseModel

    @cached_property
    def customer_id(self) -> str:
        # Read several times an event on the hot path (duplicate claim, row lock, state lookup).
        return str(getattr(self.data, "customer_id"))  # noqa: B009
