"""Scoring's rule on top of the partition clocks (`shared.partition_clocks`): a customer's
time never goes back, whichever topic the event came from."""

from __future__ import annotations

from datetime import datetime

from services.scoring.domain.customer import CustomerState


def not_before_last_decision(moment: datetime, state: CustomerState) -> datetime:
    """A customer's time never goes back: an event from a topic whose partitions run behind (feedback)
    is decided no earlier than the customer's last decision."""
    if state.decision is None:
        return moment
    return max(moment, state.decision.evaluated_at)
