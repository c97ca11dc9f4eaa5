"""What an outreach causes: treated against held-out customers, with a 95% confidence interval.

Pure statistics over counts the report query gathers. The groups were drawn at random (a
holdout), so a difference between them is the effect of the outreach, up to chance; the
interval says how large chance could make it. Both groups are compared as drawn (intention
to treat): a treated customer the RM never reached still counts as treated, which is what a
budget decision about the playbook needs to know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

# Two-sided 95%: the normal quantile. The groups compared are large enough for the normal
# approximation whenever the report concludes anything (see MIN_GROUP).
Z_95 = 1.959963984540054
# Below this many customers in either group, or with no event of the kind in either, the
# report does not conclude: the normal approximation and the interval are not to be trusted.
MIN_GROUP = 30


class Conclusion(StrEnum):
    HIGHER = "treated higher"
    LOWER = "treated lower"
    NO_DIFFERENCE = "no difference shown"
    TOO_SMALL = "too small to conclude"


@dataclass(frozen=True)
class Share:
    """How many of a group's customers had an outcome (moved up a tier, say)."""

    hits: int
    customers: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.customers if self.customers else None


@dataclass(frozen=True)
class Sample:
    """Sufficient statistics of a measured outcome (a later NPS score): count, sum, sum of squares."""

    count: int
    total: float
    total_of_squares: float

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def variance(self) -> float | None:
        """The unbiased sample variance; None below two observations."""
        if self.count < 2:
            return None
        centred = self.total_of_squares - self.total * self.total / self.count
        return max(centred, 0.0) / (self.count - 1)


@dataclass(frozen=True)
class Comparison:
    treated: float | None
    held_out: float | None
    treated_n: int
    held_out_n: int
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    conclusion: Conclusion


def compare_shares(treated: Share, held_out: Share) -> Comparison:
    """Difference of two proportions, treated minus held out, with the Wald interval."""
    p, q = treated.rate, held_out.rate
    sizes = (treated.customers, held_out.customers)
    if p is None or q is None:
        return _undecided(p, q, sizes)
    standard_error = math.sqrt(p * (1 - p) / treated.customers + q * (1 - q) / held_out.customers)
    # With no hit (or only hits) in both groups the Wald interval collapses to a point.
    degenerate = treated.hits + held_out.hits in (0, sum(sizes))
    return _compared(p, q, sizes, standard_error, small=degenerate)


def compare_means(treated: Sample, held_out: Sample) -> Comparison:
    """Difference of two means, treated minus held out, with Welch's standard error."""
    sizes = (treated.count, held_out.count)
    v, w = treated.variance, held_out.variance
    if treated.mean is None or held_out.mean is None or v is None or w is None:
        return _undecided(treated.mean, held_out.mean, sizes)
    standard_error = math.sqrt(v / treated.count + w / held_out.count)
    return _compared(treated.mean, held_out.mean, sizes, standard_error, small=False)


def _compared(
    treated: float, held_out: float, sizes: tuple[int, int], standard_error: float, *, small: bool
) -> Comparison:
    difference = treated - held_out
    low, high = difference - Z_95 * standard_error, difference + Z_95 * standard_error
    if small or min(sizes) < MIN_GROUP:
        conclusion = Conclusion.TOO_SMALL
    elif low > 0:
        conclusion = Conclusion.HIGHER
    elif high < 0:
        conclusion = Conclusion.LOWER
    else:
        conclusion = Conclusion.NO_DIFFERENCE
    return Comparison(
        treated=_rounded(treated),
        held_out=_rounded(held_out),
        treated_n=sizes[0],
        held_out_n=sizes[1],
        difference=_rounded(difference),
        ci_low=_rounded(low),
        ci_high=_rounded(high),
        conclusion=conclusion,
    )


def _undecided(treated: float | None, held_out: float | None, sizes: tuple[int, int]) -> Comparison:
    return Comparison(
        treated=_rounded(treated),
        held_out=_rounded(held_out),
        treated_n=sizes[0],
        held_out_n=sizes[1],
        difference=None,
        ci_low=None,
        ci_high=None,
        conclusion=Conclusion.TOO_SMALL,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
