"""Duplicate-marker partitions: which to create and drop; events beyond the horizon refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from services.engagement.handlers import change_decoder
from services.feedback.handlers import event_decoder as feedback_decoder
from services.scoring.handlers import event_decoder as scoring_decoder
from shared.consumer import PoisonMessage
from shared.retention import PARTITIONS_AHEAD, Span, plan_partitions
from shared.settings import Settings
from tests import factories

NOW = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)
DAY = timedelta(days=1)
HORIZON = timedelta(days=10)
SLACK = timedelta(minutes=5)


def test_a_fresh_table_gets_partitions_from_the_horizon_to_two_widths_ahead() -> None:
    plan = plan_partitions([], NOW, HORIZON, DAY, SLACK)
    assert plan.drop == []
    assert plan.create[0].start <= NOW - HORIZON - SLACK < plan.create[0].end
    assert plan.create[-1].end == datetime(2026, 11, 24, tzinfo=UTC) + (PARTITIONS_AHEAD + 1) * DAY
    assert all(a.end == b.start for a, b in zip(plan.create, plan.create[1:], strict=False))
    assert all(span.end - span.start == DAY for span in plan.create)


def test_only_partitions_wholly_before_the_horizon_and_its_slack_are_dropped() -> None:
    existing = plan_partitions([], NOW, HORIZON, DAY, SLACK).create
    later = NOW + 3 * DAY
    plan = plan_partitions(existing, later, HORIZON, DAY, SLACK)
    assert plan.drop == [span for span in existing if span.end <= later - HORIZON - SLACK]
    assert len(plan.drop) == 3
    # The partition holding the earliest time still accepted is kept.
    assert not any(span.start <= later - HORIZON < span.end for span in plan.drop)
    assert [span.start for span in plan.create] == [existing[-1].end + n * DAY for n in range(3)]


def test_a_new_width_fills_only_what_existing_partitions_leave_uncovered() -> None:
    existing = plan_partitions([], NOW, HORIZON, DAY, SLACK).create
    plan = plan_partitions(existing, NOW, HORIZON, timedelta(days=7), SLACK)
    covered = sorted([*existing, *plan.create])
    assert all(a.end <= b.start for a, b in pairwise(covered))


@given(
    existing_width_h=st.integers(12, 24 * 40),
    width_h=st.integers(12, 24 * 40),
    moved_h=st.integers(0, 24 * 400),
)
def test_partitions_never_overlap_and_cover_what_consumers_accept(
    existing_width_h: int, width_h: int, moved_h: int
) -> None:
    horizon = timedelta(days=90)
    existing = plan_partitions([], NOW, horizon, timedelta(hours=existing_width_h), SLACK).create
    later = NOW + timedelta(hours=moved_h)
    plan = plan_partitions(existing, later, horizon, timedelta(hours=width_h), SLACK)
    kept = sorted({*existing} - {*plan.drop} | {*plan.create})
    assert all(a.end <= b.start for a, b in pairwise(kept)), "overlapping partitions"
    assert all(a.end == b.start for a, b in pairwise(kept)), "a gap"
    assert kept[0].start <= later - horizon - SLACK
    assert kept[-1].end > later + timedelta(hours=width_h)


def test_a_partition_name_gives_back_its_span() -> None:
    span = Span(NOW, NOW + DAY)
    assert Span.parse(span.name) == span
    assert Span.parse("applied_events_legacy") is None


SETTINGS = Settings(applied_events_horizon=HORIZON, applied_events_partition=DAY)


def record(event: dict[str, object], key: bytes = b"C0001") -> ConsumerRecord[bytes, bytes]:
    value = json.dumps(event).encode()
    return ConsumerRecord("t", 0, 0, 0, 0, key, value, None, 2, len(value), [])


def test_every_consumer_dead_letters_an_event_older_than_the_horizon_and_reads_one_inside() -> None:
    # Times taken when the test runs, not when the module is imported: the horizon moves with
    # the clock, and a long test run would otherwise carry INSIDE past it.
    now = datetime.now(UTC)
    old, inside = (
        (now - HORIZON - timedelta(minutes=1)).isoformat(),
        (now - HORIZON + timedelta(minutes=5)).isoformat(),
    )
    reason = re.escape("is before the duplicate horizon (10 days")
    bank_event = factories.transaction()
    with pytest.raises(PoisonMessage, match=reason):
        scoring_decoder(SETTINGS)(record({**bank_event, "time": old}))
    assert scoring_decoder(SETTINGS)(record({**bank_event, "time": inside})).id == bank_event["id"]
    change = factories.tier_changed()
    for decode in (change_decoder(SETTINGS), feedback_decoder(SETTINGS)):
        with pytest.raises(PoisonMessage, match=reason):
            decode(record({**change, "time": old}))
        assert decode(record({**change, "time": inside})) is not None


def test_the_horizon_must_span_at_least_two_partitions() -> None:
    with pytest.raises(ValueError, match="at least twice"):
        Settings(applied_events_horizon=DAY, applied_events_partition=DAY)
