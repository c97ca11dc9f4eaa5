"""The per-key request rate and the per-address window of failed authentications."""

from __future__ import annotations

import pytest

from shared.throttle import FailureWindows, KeyRates


def test_a_key_may_burst_then_waits_for_its_rate_and_other_keys_are_unaffected() -> None:
    rates = KeyRates(rate_per_s=10, burst=3)
    assert [rates.take("k1", 100.0) for _ in range(3)] == [None, None, None]
    assert rates.take("k1", 100.0) == pytest.approx(0.1)
    assert rates.take("k2", 100.0) is None
    assert rates.take("k1", 100.05) == pytest.approx(0.05)
    assert rates.take("k1", 100.11) is None  # one request's worth came back
    assert rates.take("k1", 100.11) is not None


def test_a_long_quiet_key_gets_its_burst_back_not_more() -> None:
    rates = KeyRates(rate_per_s=10, burst=2)
    assert rates.take("k1", 0.0) is None
    assert [rates.take("k1", 3600.0) for _ in range(3)][-1] is not None


def test_an_address_with_too_many_failures_waits_out_its_window() -> None:
    failures = FailureWindows(limit=3, window_s=60)
    for at in (0.0, 1.0):
        failures.failed("10.0.0.1", at)
    assert failures.refused_for("10.0.0.1", 2.0) is None
    failures.failed("10.0.0.1", 2.0)
    assert failures.refused_for("10.0.0.1", 2.0) == pytest.approx(58.0)
    assert failures.refused_for("10.0.0.2", 2.0) is None
    assert failures.refused_for("10.0.0.1", 60.0) is None
    failures.failed("10.0.0.1", 61.0)  # a new window starts counting afresh
    assert failures.refused_for("10.0.0.1", 61.0) is None


def test_failures_from_many_addresses_are_remembered_within_a_bound() -> None:
    failures = FailureWindows(limit=1, window_s=60, max_addresses=100)
    for n in range(1000):
        failures.failed(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert failures.refused_for("10.0.3.231", 1.0) is not None  # the latest is still refused
    assert failures.refused_for("10.0.0.0", 1.0) is None  # the oldest were let go
    assert len(failures._windows) == 100
