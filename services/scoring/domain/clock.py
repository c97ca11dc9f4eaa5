"""Event time per partition: what "now" is for a customer when the clock is the events' own.

Each partition of the events topic is read in order, so the latest event time applied from
it (its watermark) only depends on that partition. A customer's events all come from one
partition (they are keyed by customer id), so judging the customer by its partition's
watermark gives the same decisions however partitions interleave.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from services.scoring.domain.customer import CustomerState


class PartitionClocks:
    """The watermarks of the events topic's partitions, advanced by the events of a micro-batch."""

    def __init__(self, watermarks: Mapping[int, datetime]) -> None:
        self._watermarks = dict(watermarks)
        self._advanced: dict[int, datetime] = {}

    def advance(self, partition: int, event_time: datetime) -> datetime:
        """Apply an event of `partition`: its clock moves to the event's time if that is later."""
        current = self._watermarks.get(partition)
        moved = event_time if current is None else max(current, event_time)
        self._watermarks[partition] = moved
        self._advanced[partition] = moved
        return moved

    @property
    def advanced(self) -> dict[int, datetime]:
        """The partitions this batch moved, with their new watermarks."""
        return dict(self._advanced)


def customer_clock(watermarks: Mapping[int, datetime], partition: int | None) -> datetime | None:
    """The clock a customer is judged by: its partition's, or, before its first event from the
    events topic, the earliest partition clock (it cannot be judged later than any of them)."""
    if partition is not None and partition in watermarks:
        return watermarks[partition]
    return min(watermarks.values(), default=None)


def not_before_last_decision(moment: datetime, state: CustomerState) -> datetime:
    """A customer's time never goes back: an event from a topic whose partitions run behind (feedback)
    is decided no earlier than the customer's last decision."""
    if state.decision is None:
        return moment
    return max(moment, state.decision.evaluated_at)
