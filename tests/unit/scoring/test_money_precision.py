"""Money sums stay exact at the contract's bounds: no silent rounding by the default context."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.scoring.domain.features import DayBucket, Features, apply_event, day_of, window_totals
from services.scoring.domain.money import amount_in_base
from tests.unit.scoring.builders import T0, days, txn

# 29 significant digits: one more than the default decimal context keeps.
LARGE_TOTAL = "1234567890123456789012345.6789"


def test_a_lifetime_total_past_28_digits_keeps_its_last_place() -> None:
    event, amount = txn(T0, "0.0002")
    before = replace(Features(), txn_amount=Decimal(LARGE_TOTAL))
    assert apply_event(before, event, amount).txn_amount == Decimal("1234567890123456789012345.6791")


def test_a_day_bucket_past_28_digits_keeps_its_last_place() -> None:
    event, amount = txn(T0, "0.0002")
    before = replace(Features(), days={day_of(T0): DayBucket(1, Decimal(LARGE_TOTAL))})
    after = apply_event(before, event, amount)
    assert after.days[day_of(T0)].txn_amount == Decimal("1234567890123456789012345.6791")


def test_window_sums_past_28_digits_are_exact() -> None:
    buckets = {day_of(T0 + days(n)): DayBucket(1, Decimal(LARGE_TOTAL)) for n in range(3)}
    total = window_totals(replace(Features(), days=buckets), day_of(T0 + days(2)), (30,))[30].txn_amount
    assert total == Decimal("3703703670370370367037037.0367")


def test_a_converted_amount_is_rounded_once_to_four_places() -> None:
    # The exact product ends ...709.73094...; rounded to 28 digits first it would end ...709.7310.
    event, _ = txn(T0, "578039304131766483.8201", currency="USD")
    converted = amount_in_base(event.data, "CNY", {"USD": Decimal("7.123456789")})
    assert converted == Decimal("4117638005326267709.7309")
