"""Each partition keeps its own event clock; a customer's time never goes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scoring.domain.clock import not_before_last_decision
from services.scoring.domain.customer import CustomerState, apply
from services.scoring.domain.policy import default_policy
from shared.partition_clocks import PartitionClocks, customer_clock
from tests.unit.scoring.builders import days, txn

START = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_partition_ahead_does_not_move_the_others() -> None:
    clocks = PartitionClocks({0: START, 1: START})
    assert clocks.advance(0, START + timedelta(days=30)) == START + timedelta(days=30)
    assert clocks.advance(1, START + timedelta(days=1)) == START + timedelta(days=1)
    assert clocks.advanced == {0: START + timedelta(days=30), 1: START + timedelta(days=1)}


def test_an_event_older_than_its_partition_clock_is_decided_at_the_clock() -> None:
    clocks = PartitionClocks({2: START + timedelta(days=5)})
    assert clocks.advance(2, START) == START + timedelta(days=5)
    assert clocks.advance(3, START) == START  # a partition's first event starts its clock
    assert clocks.advanced == {2: START + timedelta(days=5), 3: START}


def test_a_customer_goes_by_its_partitions_clock_or_else_the_earliest() -> None:
    watermarks = {0: START + timedelta(days=30), 1: START}
    assert customer_clock(watermarks, 0) == START + timedelta(days=30)
    assert customer_clock(watermarks, None) == START
    assert customer_clock(watermarks, 7) == START
    assert customer_clock({}, 0) is None


def test_a_customer_is_not_decided_before_its_last_decision() -> None:
    event, amount = txn(START + days(10))
    decided, _ = apply(CustomerState.new("C1"), event, amount, default_policy(), START + days(10))
    assert not_before_last_decision(START + days(3), CustomerState.new("C1")) == START + days(3)
    assert not_before_last_decision(START + days(3), decided) == START + days(10)
    assert not_before_last_decision(START + days(12), decided) == START + days(12)
