"""The one calendar: wall, event and fixed clocks, and when a stated time is honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import Clock, ClockMode, StatedTimeRefused
from shared.settings import Settings

WALL = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
MARK = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def test_each_clock_tells_its_own_now() -> None:
    assert Clock().now(MARK, WALL) == WALL
    assert Clock(ClockMode.EVENT).now(MARK, WALL) == MARK
    assert Clock(ClockMode.EVENT).now(None, WALL) == WALL  # nothing applied yet
    assert Clock(ClockMode.FIXED, AS_OF).now(MARK, WALL) == AS_OF


def test_a_stated_time_is_honoured_only_off_the_wall_clock_and_not_ahead_of_it() -> None:
    assert Clock(ClockMode.EVENT).when(MARK - timedelta(hours=1), MARK, WALL) == MARK - timedelta(hours=1)
    assert Clock(ClockMode.FIXED, AS_OF).when(MARK, None, WALL) == MARK
    assert Clock(ClockMode.EVENT).when(None, MARK, WALL) == MARK
    with pytest.raises(StatedTimeRefused, match="event or fixed clock"):
        Clock().when(MARK, None, WALL)
    with pytest.raises(StatedTimeRefused, match="ahead"):
        Clock(ClockMode.EVENT).when(WALL + timedelta(hours=1), MARK, WALL)


def test_engagement_and_feedback_follow_scoring_unless_told_otherwise() -> None:
    one_calendar = Settings(scoring_clock="event")
    assert one_calendar.clock_of("engagement") == Clock(ClockMode.EVENT)
    assert one_calendar.clock_of("feedback") == Clock(ClockMode.EVENT)
    apart = Settings(scoring_clock="event", feedback_clock="wall")
    assert apart.clock_of("feedback") == Clock(ClockMode.WALL)
    with pytest.raises(ValueError, match="TIERFLOW_SCORING_AS_OF"):
        Settings(engagement_clock="fixed")
