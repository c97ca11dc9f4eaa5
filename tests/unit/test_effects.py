"""The holdout comparison's statistics against simulated experiments with a known truth.

Each experiment states its true effect and sample size and draws with a fixed seed, so the
outcome is reproducible: a real lift shows an interval above zero, no lift one around it.
"""

from __future__ import annotations

import random

import pytest

from services.feedback.domain.effects import (
    MIN_GROUP,
    Conclusion,
    Sample,
    Share,
    compare_means,
    compare_shares,
)

CUSTOMERS_PER_GROUP = 1_000
BASE_UPGRADE_RATE = 0.20


def upgrades(rng: random.Random, rate: float, customers: int) -> Share:
    return Share(sum(rng.random() < rate for _ in range(customers)), customers)


def nps_answers(rng: random.Random, mean: float, answers: int) -> Sample:
    scores = [min(10, max(0, round(rng.gauss(mean, 2.0)))) for _ in range(answers)]
    return Sample(len(scores), float(sum(scores)), float(sum(s * s for s in scores)))


def test_a_true_ten_point_lift_in_upgrades_shows_an_interval_above_zero() -> None:
    rng = random.Random(20)
    treated = upgrades(rng, BASE_UPGRADE_RATE + 0.10, CUSTOMERS_PER_GROUP)
    held_out = upgrades(rng, BASE_UPGRADE_RATE, CUSTOMERS_PER_GROUP)
    result = compare_shares(treated, held_out)
    assert result.conclusion is Conclusion.HIGHER
    assert result.ci_low is not None
    assert result.ci_low > 0
    assert result.difference == pytest.approx(0.10, abs=0.05)


def test_no_true_effect_shows_an_interval_that_includes_zero() -> None:
    rng = random.Random(20)
    treated = upgrades(rng, BASE_UPGRADE_RATE, CUSTOMERS_PER_GROUP)
    held_out = upgrades(rng, BASE_UPGRADE_RATE, CUSTOMERS_PER_GROUP)
    result = compare_shares(treated, held_out)
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low < 0 < result.ci_high
    assert result.conclusion is Conclusion.NO_DIFFERENCE


def test_a_true_one_point_nps_lift_is_found_and_a_null_one_is_not() -> None:
    rng = random.Random(20)
    lifted = compare_means(nps_answers(rng, 8.0, 400), nps_answers(rng, 7.0, 400))
    assert lifted.conclusion is Conclusion.HIGHER
    assert lifted.difference == pytest.approx(1.0, abs=0.3)
    same = compare_means(nps_answers(rng, 7.0, 400), nps_answers(rng, 7.0, 400))
    assert same.ci_low is not None
    assert same.ci_high is not None
    assert same.ci_low < 0 < same.ci_high


def test_a_worse_treatment_is_called_lower() -> None:
    result = compare_shares(Share(100, 1_000), Share(200, 1_000))
    assert result.conclusion is Conclusion.LOWER
    assert result.ci_high is not None
    assert result.ci_high < 0


def test_groups_too_small_or_without_any_event_do_not_conclude() -> None:
    small = compare_shares(Share(MIN_GROUP - 1, MIN_GROUP - 1), Share(0, 500))
    assert small.conclusion is Conclusion.TOO_SMALL
    assert small.difference == pytest.approx(1.0)
    assert compare_shares(Share(0, 500), Share(0, 500)).conclusion is Conclusion.TOO_SMALL
    assert compare_shares(Share(5, 500), Share(0, 0)).difference is None
    one_answer = compare_means(Sample(1, 9.0, 81.0), Sample(100, 700.0, 5_000.0))
    assert (one_answer.difference, one_answer.conclusion) == (None, Conclusion.TOO_SMALL)
