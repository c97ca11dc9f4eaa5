"""What the scoring domain sees of an inbound event: source and id, type, event time and typed data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from shared.contracts.outbound import EventCause


@dataclass(frozen=True)
class ScoringEvent:
    # CloudEvents identity: the same id from two sources is two events.
    source: str
    id: str
    type: str
    time: datetime
    data: BaseModel
    # Set once from the above: read several times an event on the hot path (duplicate claim,
    # row lock, state lookup, the cause of its tier change), where a cached_property would
    # take a lock on every event.
    customer_id: str = field(init=False, repr=False, compare=False)
    # Not validated again: source and id are the envelope's, read under the very types a cause holds.
    cause: EventCause = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "customer_id", str(getattr(self.data, "customer_id")))  # noqa: B009
        object.__setattr__(self, "cause", EventCause.model_construct(source=self.source, id=self.id))
