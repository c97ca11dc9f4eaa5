"""Event time per partition: what "now" is for a customer when the clock is the events' own.

Each partition of a topic is read in order, so the latest event time applied from it (its
watermark) only depends on that partition. A customer's records all come from one partition
(they are keyed by customer id), so judging the customer by its partition's watermark gives
the same decisions however partitions interleave. Scoring keeps one per partition of
`bank.events.v1`, engagement one per partition of `customer.tier-changes.v1`. Pure: the
watermarks are read and written by `shared.clock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime


class PartitionClocks:
    """The watermarks of a topic's partitions, advanced by the records of a micro-batch."""

    def __init__(self, watermarks: Mapping[int, datetime]) -> None:
        self._watermarks = dict(watermarks)
        self._advanced: dict[int, datetime] = {}

    def advance(self, partition: int, event_time: datetime) -> datetime:
        """Apply a record of `partition`: its clock moves to the record's time if that is later."""
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
    """The clock a customer is judged by: its partition's, or, before its first record from the
    topic, the earliest partition clock (it cannot be judged later than any of them)."""
    if partition is not None and partition in watermarks:
        return watermarks[partition]
    return min(watermarks.values(), default=None)
