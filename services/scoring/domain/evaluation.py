"""Tier and stage decisions: a pure function of aggregates, policy, clock and the last decision."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar, cast

from services.scoring.domain.features import (
    ZERO,
    DayBucket,
    Features,
    aum_at,
    balance_average_at,
    credit_months,
    date_of_day,
    day_of,
    moment_of,
    open_complaints,
    open_high_complaints,
    products_held,
    seconds_of,
    window_totals,
)
from services.scoring.domain.policy import Condition, Groups, LabelRule, Op, Policy, ScoreTerm
from shared.contracts.inbound import BALANCE, CUSTOMER, INTERACTION, TRANSACTION
from shared.contracts.outbound import COMPLAINT, SURVEY, TIER_RANK, nps_category
from shared.contracts.types import MONEY_CONTEXT, Stage, Tier

MAX_CATCH_UP_REVIEWS = 400
T = TypeVar("T")


class Later(Generic[T]):
    """A value worked out the first time it is read, then kept.

    Most decisions are replaced by the next event's in the same micro-batch before anything
    asks when they fall due or what the customer is worth; only the decision that is stored,
    shown or reviewed pays for those. Equal when the values are equal.
    """

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make: Callable[[], T] | None = make
        self._value: T | None = None

    @classmethod
    def known(cls, value: T) -> Later[T]:
        later: Later[T] = cls(_never)
        later._make, later._value = None, value
        return later

    @property
    def value(self) -> T:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return cast(T, self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Later) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Later({self.value!r})"


def _never() -> Any:
    raise AssertionError("a known value is never made")


class ReviewTimes(NamedTuple):
    due_at: datetime | None  # the earliest moment a rule could flip with no new event
    next_review_at: datetime  # that, or the periodic refresh if sooner


class ReasonCondition(NamedTuple):
    """One condition of the rule that matched, with the customer's value, as the detail shows them,
    so each language can word the reason its own way."""

    feature: str
    operator: str
    value: str
    threshold: str


class Reason:
    """Why a decision is what it is: the rule, its detail in words and the conditions behind it.

    `conditions` is empty for reasons that are not a rule's conditions (hysteresis, override, a
    label kept or left). A rule that matched words its reason the first time it is read, then
    keeps it (`Reason.of_match`): most decisions are replaced by the next event's before anything
    publishes or stores them. Immutable, and equal, hashed and shown by its three parts, as a
    frozen dataclass of them would be.
    """

    __slots__ = ("_conditions", "_detail", "_match", "rule")

    rule: str
    _detail: str
    _conditions: tuple[ReasonCondition, ...]
    # The matched conditions and the features they were tested on, until the reason is worded.
    _match: tuple[Sequence[Condition], Mapping[str, Any]] | None

    def __init__(self, rule: str, detail: str, conditions: tuple[ReasonCondition, ...] = ()) -> None:
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "_detail", detail)
        object.__setattr__(self, "_conditions", conditions)
        object.__setattr__(self, "_match", None)

    @classmethod
    def of_match(cls, rule: str, conditions: Sequence[Condition], vector: Mapping[str, Any]) -> Reason:
        """The reason a rule matched, worded when read. `vector` must keep the values of these
        conditions' features as they are: a feature, once derived, is never set again."""
        reason = cls.__new__(cls)
        object.__setattr__(reason, "rule", rule)
        object.__setattr__(reason, "_match", (conditions, vector))
        return reason

    @property
    def detail(self) -> str:
        if self._match is not None:
            self._word()
        return self._detail

    @property
    def conditions(self) -> tuple[ReasonCondition, ...]:
        if self._match is not None:
            self._word()
        return self._conditions

    def _word(self) -> None:
        assert self._match is not None
        conditions, vector = self._match
        shown = _conditions(conditions, vector)
        object.__setattr__(self, "_conditions", shown)
        object.__setattr__(self, "_detail", detail_of(shown))
        object.__setattr__(self, "_match", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _parts(self) -> tuple[str, str, tuple[ReasonCondition, ...]]:
        return self.rule, self.detail, self.conditions

    def __reduce__(self) -> tuple[type[Reason], tuple[str, str, tuple[ReasonCondition, ...]]]:
        # Copied, deep-copied and pickled as its worded parts, as a frozen dataclass of them would be.
        return Reason, self._parts()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Reason)
        return self._parts() == other._parts()

    def __hash__(self) -> int:
        return hash(self._parts())

    def __repr__(self) -> str:
        return f"Reason(rule={self.rule!r}, detail={self.detail!r}, conditions={self.conditions!r})"


@dataclass(frozen=True)
class Override:
    tier: Tier
    reason: str
    expires_at: datetime
    set_by: str
    set_at: datetime

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class HeldLabel:
    """A label the customer holds, why, and since when; `outside_since` is set while its
    conditions no longer hold but its leave-after period keeps it."""

    name: str
    dimension: str
    since: datetime
    reason: Reason
    outside_since: datetime | None = None


@dataclass(frozen=True)
class Decision:
    tier: Tier
    stage: Stage
    score: float
    reasons: tuple[Reason, ...]
    policy_version: str
    evaluated_at: datetime
    tier_since: datetime
    policy_tier: Tier
    below_gate_since: datetime | None
    review_times: Later[ReviewTimes]
    lifetime_value: Later[Decimal]
    labels: tuple[HeldLabel, ...] = ()

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple([label.name for label in self.labels])

    @property
    def due_at(self) -> datetime | None:
        return self.review_times.value.due_at

    @property
    def next_review_at(self) -> datetime:
        return self.review_times.value.next_review_at

    @property
    def clv(self) -> Decimal:
        return self.lifetime_value.value


class FeatureVector(dict[str, Any]):
    """Every feature a policy may name, as of `now`, each derived the first time it is read.

    A decision reads only the features its policy names, and a rule stops at the first
    condition that fails, so most of the ~30 are never computed for a given event.
    """

    def __init__(self, features: Features, now: datetime) -> None:
        super().__init__()
        self.features = features
        self.now = now
        # `now` as the day ordinal and the seconds since the epoch that several features count from.
        self.today = day_of(now)
        self.seconds = seconds_of(now)
        self._windows: dict[int, DayBucket] | None = None

    def __missing__(self, name: str) -> Any:
        deriver = _DERIVERS.get(name)
        if deriver is None:
            if name in _DECIDED:
                return None  # the score and the tier are set as the decision reaches them
            raise KeyError(name)
        value = deriver(self)
        self[name] = value
        return value

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def window(self, days: int) -> DayBucket:
        if self._windows is None:
            self._windows = window_totals(self.features, self.today, (30, 90, 365))
        return self._windows[days]

    def days_since(self, moment: datetime | None) -> int | None:
        return _days_since(moment, self.now)


def _trend(v: FeatureVector) -> Decimal | None:
    long_average: Decimal = v["aum_avg_90d"]
    return (v["aum_avg_30d"] / long_average) if long_average > 0 else None


def _outflow_ratio(v: FeatureVector) -> Decimal | None:
    """Outflows over inflows in 30 days: above 1 the customer spends more than comes in."""
    window = v.window(30)
    if window.credit_amount <= 0:
        return None
    return MONEY_CONTEXT.divide(window.txn_amount - window.credit_amount, window.credit_amount)


def _channel_share(v: FeatureVector, channels: tuple[str, ...]) -> Decimal | None:
    """Percent of the activity whose channel is known that went through these channels."""
    counts = v.features.channels
    known = sum(counts.values())
    if known == 0:
        return None
    return Decimal(100 * sum([counts.get(c, 0) for c in channels])) / known


def _days_since_product(v: FeatureVector, product: str) -> int | None:
    day = v.features.products_seen.get(product)
    return None if day is None else max(0, v.today - day)


def _risk_level(v: FeatureVector) -> int | None:
    risk = v.features.profile.get("risk_profile")
    return int(risk[1:]) if isinstance(risk, str) and risk[1:].isdigit() else None


def _nps_category(v: FeatureVector) -> str | None:
    nps = v.features.nps_latest
    return None if nps is None else nps_category(nps).value


_DECIDED = frozenset({"score", "tier"})
DIGITAL_CHANNELS = ("mobile", "online")
# Served by a person: at a counter or on the phone.
ASSISTED_CHANNELS = ("branch", "phone")
_DERIVERS: dict[str, Callable[[FeatureVector], Any]] = {
    "txn_count": lambda v: v.features.txn_count,
    "txn_amount": lambda v: v.features.txn_amount,
    "txn_count_30d": lambda v: v.window(30).txn_count,
    "txn_count_90d": lambda v: v.window(90).txn_count,
    "txn_count_365d": lambda v: v.window(365).txn_count,
    "txn_amount_30d": lambda v: v.window(30).txn_amount,
    "txn_amount_90d": lambda v: v.window(90).txn_amount,
    "txn_amount_365d": lambda v: v.window(365).txn_amount,
    "interaction_count": lambda v: v.features.interaction_count,
    "interactions_30d": lambda v: v.window(30).interactions,
    "interactions_90d": lambda v: v.window(90).interactions,
    "activity_count": lambda v: v.features.txn_count + v.features.interaction_count,
    "days_since_last_txn": lambda v: v.days_since(v.features.last_txn_at),
    "days_since_last_interaction": lambda v: v.days_since(v.features.last_interaction_at),
    "days_since_last_activity": lambda v: v.days_since(
        _latest(v.features.last_txn_at, v.features.last_interaction_at)
    ),
    "aum": lambda v: aum_at(v.features, v.now),
    "aum_avg_30d": lambda v: balance_average_at(v.features.balances, v.seconds, 30),
    "aum_avg_90d": lambda v: balance_average_at(v.features.balances, v.seconds, 90),
    "aum_trend_30_90": _trend,
    "products_held": lambda v: products_held(v.features, v.today),
    "tenure_days": lambda v: v.days_since(_tenure_start(v.features)),
    "nps_latest": lambda v: v.features.nps_latest,
    "nps_age_days": lambda v: v.days_since(v.features.nps_at),
    "nps_category": _nps_category,
    "csat_avg": lambda v: (
        (Decimal(v.features.csat_sum) / v.features.csat_count) if v.features.csat_count else None
    ),
    "complaints_open": lambda v: sum(open_complaints(v.features).values()),
    "complaints_open_high": lambda v: open_high_complaints(v.features),
    "credits_30d": lambda v: v.window(30).credits,
    "credit_months_90d": lambda v: credit_months(v.features, v.today, 3),
    "outflow_ratio_30d": _outflow_ratio,
    "digital_share": lambda v: _channel_share(v, DIGITAL_CHANNELS),
    "branch_share": lambda v: _channel_share(v, ASSISTED_CHANNELS),
    "support_calls_30d": lambda v: v.window(30).support_calls,
    "login_failures_30d": lambda v: v.window(30).login_failures,
    "days_since_investment": lambda v: _days_since_product(v, "investments"),
    "days_since_loan": lambda v: _days_since_product(v, "loan"),
    "risk_level": _risk_level,
    # How far back balances are known: averages over a longer window count unknown days as 0.
    "balance_known_days": lambda v: v.days_since(_first_balance_at(v.features)),
    "segment": lambda v: v.features.profile.get("segment"),
    "region": lambda v: v.features.profile.get("region"),
    "risk_profile": lambda v: v.features.profile.get("risk_profile"),
}


def derive(features: Features, now: datetime) -> dict[str, Any]:
    """Every feature a policy may name, as of `now`, all computed (for views and explanations)."""
    vector = FeatureVector(features, now)
    return {name: vector[name] for name in _DERIVERS}


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _days_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, (now - moment).days)


def score(vector: dict[str, Any], terms: list[ScoreTerm]) -> float:
    """Weighted mean of normalised features, 0-100. Binary floats suffice: it is a ranking, not money."""
    return _ScoreTerms.of(terms).score(vector)


@dataclass(frozen=True)
class _Term:
    """A score term with its bounds as floats (and logarithms) computed once per policy."""

    feature: str
    weight: float
    missing: float
    log: bool
    rising: bool
    low: float
    high: float

    @classmethod
    def of(cls, term: ScoreTerm) -> _Term:
        low, high = float(term.low), float(term.high)
        log = term.transform == "log"
        if log:
            low, high = math.log(low), math.log(high)
        return cls(
            term.feature, float(term.weight), float(term.missing), log, term.low < term.high, low, high
        )

    def normalise(self, value: Any) -> float:
        if value is None:
            return self.missing
        x = float(value)
        if self.log:
            if x <= 0:
                return 0.0 if self.rising else 1.0
            x = math.log(x)
        return min(1.0, max(0.0, (x - self.low) / (self.high - self.low)))


@dataclass(frozen=True)
class _ScoreTerms:
    terms: tuple[_Term, ...]
    total_weight: float
    # The same sum written out term by term for this policy: the score runs for every event.
    score: Callable[[dict[str, Any]], float]

    @classmethod
    def of(cls, terms: list[ScoreTerm]) -> _ScoreTerms:
        compiled = tuple(_Term.of(t) for t in terms)
        total_weight = sum(float(term.weight) for term in terms)
        return cls(compiled, total_weight, _score_function(compiled, total_weight))


def _score_function(terms: tuple[_Term, ...], total_weight: float) -> Callable[[dict[str, Any]], float]:
    """`_Term.normalise` of each term inlined, weighted and summed in the terms' order, so the
    float operations, and so the score, are exactly those of the term-by-term definition."""
    namespace: dict[str, Any] = {"log": math.log, "total_weight": total_weight}
    lines = ["def score(vector):"]
    for i, term in enumerate(terms):
        namespace.update({f"f{i}": term.feature, f"m{i}": term.missing, f"w{i}": term.weight})
        namespace.update({f"lo{i}": term.low, f"hi{i}": term.high})
        lines += [f"    value = vector[f{i}]", "    if value is None:", f"        n{i} = m{i}", "    else:"]
        lines.append("        x = float(value)")
        clamp = f"min(1.0, max(0.0, (x - lo{i}) / (hi{i} - lo{i})))"
        if term.log:
            lines += [
                "        if x <= 0:",
                f"            n{i} = {0.0 if term.rising else 1.0!r}",
                "        else:",
                "            x = log(x)",
                f"            n{i} = {clamp}",
            ]
        else:
            lines.append(f"        n{i} = {clamp}")
    products = ", ".join(f"w{i} * n{i}" for i in range(len(terms)))
    lines.append(f"    weighted = sum(({products},))")
    lines.append("    return round(100 * weighted / total_weight, 1)")
    return cast(Callable[[dict[str, Any]], float], _define("score", lines, namespace))


def _define(name: str, lines: list[str], namespace: dict[str, Any]) -> Callable[..., Any]:
    """A function from generated source. The source holds only names bound in `namespace`
    and literals of the compiler's own making, never text taken from a policy."""
    exec("\n".join(lines), namespace)  # noqa: S102
    return cast(Callable[..., Any], namespace[name])


_COMPARE: dict[Op, Callable[[Any, Any], Any]] = {
    Op.GTE: operator.ge,
    Op.GT: operator.gt,
    Op.LTE: operator.le,
    Op.LT: operator.lt,
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
}
_LOWER_BOUNDS = (Op.GTE, Op.GT)


def holds(condition: Condition, vector: dict[str, Any], margin: Decimal = ZERO) -> bool:
    """Whether the condition holds; a margin relaxes lower bounds (gte/gt) by that fraction."""
    actual = vector[condition.feature]  # a known feature: the policy schema checks
    if actual is None:
        return False
    expected = condition.value
    op = condition.op
    if margin and op in _LOWER_BOUNDS and isinstance(expected, Decimal):
        expected = expected * (1 - margin)
    return bool(_COMPARE[op](actual, expected))


def first_group(groups: Groups, vector: dict[str, Any], margin: Decimal = ZERO) -> list[Condition] | None:
    """The first group whose conditions all hold; an empty rule matches everyone."""
    if not groups:
        return []
    return next((group for group in groups if all(holds(c, vector, margin) for c in group)), None)


_SYMBOLS: dict[str, str] = {Op.GTE: ">=", Op.GT: ">", Op.LTE: "<=", Op.LT: "<", Op.EQ: "=", Op.NE: "!="}


def because(rule: str, conditions: Sequence[Condition], vector: dict[str, Any]) -> Reason:
    """The reason a rule matched: its conditions with the customer's values, and the same in words."""
    return Reason.of_match(rule, conditions, vector)


def _conditions(conditions: Sequence[Condition], vector: Mapping[str, Any]) -> tuple[ReasonCondition, ...]:
    return tuple(
        ReasonCondition(c.feature, c.op.value, _show(vector.get(c.feature)), _show(c.value))
        for c in conditions
    )


def detail_of(conditions: tuple[ReasonCondition, ...]) -> str:
    """A rule's conditions in English words, as every reason's `detail` reads."""
    parts = [f"{c.feature} {c.value} {_SYMBOLS[c.operator]} {c.threshold}" for c in conditions]
    return "; ".join(parts) or "no other rule matched"


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value != value.to_integral_value() else f"{value:.0f}"
    return str(value)


def policy_tier(vector: dict[str, Any], policy: Policy) -> tuple[Tier, Reason]:
    for tier, name, rule in _compiled(policy).tiers:
        matched = rule.first_match(vector)
        if matched is not None:
            return tier, because(name, matched, vector)
    raise AssertionError("the last gate matches everyone")  # guaranteed by the policy schema


def evaluate(
    features: Features,
    policy: Policy,
    now: datetime,
    previous: Decision | None,
    override: Override | None = None,
    touched: frozenset[str] | None = None,
) -> Decision:
    """The decision as of `now`. `touched` names the features the latest event can have
    changed since `previous` (same policy, same day); labels over none of them are kept as
    they were. None re-evaluates every label."""
    vector = FeatureVector(features, now)
    vector["score"] = _compiled(policy).score.score(vector)
    candidate, gate_reason = policy_tier(vector, policy)
    tier, below_since, tier_reasons = _apply_hysteresis(candidate, gate_reason, vector, policy, now, previous)
    reasons = list(tier_reasons)
    chosen = tier
    if override is not None and override.active(now):
        chosen = override.tier
        expiry = override.expires_at.isoformat()
        reasons.insert(
            0,
            Reason(
                "override",
                f"{override.tier.value} set by {override.set_by} until {expiry}: {override.reason}",
            ),
        )
    vector["tier"] = chosen.value
    stage, stage_reason = _stage(vector, policy)
    reasons.append(stage_reason)
    tier_since = previous.tier_since if previous is not None and previous.tier is chosen else now
    labels = decide_labels(vector, policy, now, () if previous is None else previous.labels, touched)

    def review_times() -> ReviewTimes:
        averages = {30: vector["aum_avg_30d"], 90: vector["aum_avg_90d"]}
        due = exact_review_at(features, policy, now, below_since, override, labels, averages)
        refresh = now + timedelta(hours=policy.review.refresh_hours)
        return ReviewTimes(due, min(due, refresh) if due else refresh)

    return Decision(
        tier=chosen,
        stage=stage,
        score=vector["score"],
        reasons=tuple(reasons),
        policy_version=policy.version,
        evaluated_at=now,
        tier_since=tier_since,
        policy_tier=tier,
        below_gate_since=below_since,
        review_times=Later(review_times),
        lifetime_value=Later(lambda: customer_lifetime_value(vector, stage, policy)),
        labels=labels,
    )


# Which features an event of each type can change (besides tenure, which any first event
# starts). Within one day and one policy, a label over none of them cannot change with it.
_TXN_FEATURES = frozenset(
    {
        "txn_count", "txn_amount", "txn_count_30d", "txn_count_90d", "txn_count_365d",
        "txn_amount_30d", "txn_amount_90d", "txn_amount_365d", "activity_count",
        "days_since_last_txn", "days_since_last_activity", "products_held", "credits_30d",
        "credit_months_90d", "outflow_ratio_30d", "digital_share", "branch_share",
        "days_since_investment", "days_since_loan",
    }
)  # fmt: skip
_INTERACTION_FEATURES = frozenset(
    {
        "interaction_count", "interactions_30d", "interactions_90d", "activity_count",
        "days_since_last_interaction", "days_since_last_activity", "digital_share",
        "branch_share", "support_calls_30d", "login_failures_30d",
    }
)  # fmt: skip
EVENT_FEATURES: dict[str, frozenset[str]] = {
    TRANSACTION: _TXN_FEATURES | {"tenure_days"},
    INTERACTION: _INTERACTION_FEATURES | {"tenure_days"},
    BALANCE: frozenset(
        {"aum", "aum_avg_30d", "aum_avg_90d", "aum_trend_30_90", "products_held", "tenure_days"}
    ),
    CUSTOMER: frozenset({"segment", "region", "risk_profile", "risk_level", "tenure_days"}),
    SURVEY: frozenset({"nps_latest", "nps_age_days", "nps_category", "csat_avg", "tenure_days"}),
    COMPLAINT: frozenset({"complaints_open", "complaints_open_high", "tenure_days"}),
}


def touched_by(
    event_type: str, previous: Decision | None, policy: Policy, now: datetime
) -> frozenset[str] | None:
    """The features an event can have changed since `previous`, or None when everything may have:
    another policy, another day (windows move at midnight), or an event type not listed."""
    if previous is None or previous.policy_version != policy.version:
        return None
    if day_of(previous.evaluated_at) != day_of(now):
        return None
    return EVENT_FEATURES.get(event_type)


def decide_labels(
    vector: dict[str, Any],
    policy: Policy,
    now: datetime,
    previous: tuple[HeldLabel, ...],
    touched: frozenset[str] | None = None,
) -> tuple[HeldLabel, ...]:
    """Every label the customer holds now: entered at once, left after its leave-after period."""
    before = {label.name: label for label in previous}
    held: list[HeldLabel] = []
    compiled = _compiled(policy)
    for label, evaluated in zip(compiled.labels, compiled.evaluated_labels(touched), strict=True):
        was = before.get(label.name)
        if not evaluated:
            if was is not None:
                held.append(was)
            continue
        matched = label.groups.first_match(vector)
        if matched is not None:
            reason = because(label.reason_rule, matched, vector)
            held.append(HeldLabel(label.name, label.dimension, was.since if was else now, reason))
        elif was is not None and label.leave_after is not None:
            outside = was.outside_since or now
            until = outside + label.leave_after
            if now < until:
                detail = (
                    f"outside its conditions since {outside.date()}; "
                    f"kept until {until.date()} unless they hold again"
                )
                held.append(
                    HeldLabel(
                        label.name, was.dimension, was.since, Reason(label.reason_rule, detail), outside
                    )
                )
    return tuple(held)


_Match = Callable[[dict[str, Any]], tuple[Condition, ...] | None]
_OPERATORS: dict[Op, str] = {Op.GTE: ">=", Op.GT: ">", Op.LTE: "<=", Op.LT: "<", Op.EQ: "==", Op.NE: "!="}


@dataclass(frozen=True)
class _CompiledGroups:
    """A rule's condition groups, compiled once per policy into one function that tests them in
    order and returns the first group whose conditions all hold (a missing value holds none);
    an empty rule matches everyone."""

    groups: tuple[tuple[Condition, ...], ...]
    first_match: _Match

    @classmethod
    def of(cls, any_of: Groups) -> _CompiledGroups:
        groups = tuple(tuple(group) for group in any_of)
        return cls(groups, _match_function(groups))


def _match_function(groups: tuple[tuple[Condition, ...], ...]) -> _Match:
    """Each group as nested tests, stopping at the first condition that fails, as `holds` does
    one condition at a time: a feature is read (and so derived) only if the ones before held."""
    namespace: dict[str, Any] = {"everyone": ()}
    lines = ["def first_match(vector):"]
    if not groups:
        lines.append("    return everyone")
    for g, group in enumerate(groups):
        namespace[f"g{g}"] = group
        indent = "    "
        for c, condition in enumerate(group):
            namespace.update({f"f{g}_{c}": condition.feature, f"k{g}_{c}": condition.value})
            lines.append(f"{indent}actual = vector[f{g}_{c}]")
            lines.append(f"{indent}if actual is not None and actual {_OPERATORS[condition.op]} k{g}_{c}:")
            indent += "    "
        lines.append(f"{indent}return g{g}")
    lines.append("    return None")
    return cast(_Match, _define("first_match", lines, namespace))


@dataclass(frozen=True)
class _CompiledLabel:
    """A label rule with its conditions compiled once per policy."""

    rule: LabelRule
    groups: _CompiledGroups
    inputs: frozenset[str]
    always: bool  # names the score or the tier, which any event can move
    name: str
    dimension: str
    reason_rule: str  # the rule its reasons name
    leave_after: timedelta | None  # how long it is kept outside its conditions, if at all

    @classmethod
    def of(cls, rule: LabelRule) -> _CompiledLabel:
        inputs = frozenset(c.feature for group in rule.any_of for c in group)
        return cls(
            rule,
            _CompiledGroups.of(rule.any_of),
            inputs,
            not inputs.isdisjoint(_DECIDED),
            rule.name,
            rule.dimension.value,
            f"label.{rule.name}",
            timedelta(days=rule.leave_after_days) if rule.leave_after_days else None,
        )

    def evaluated(self, touched: frozenset[str] | None) -> bool:
        """Whether an event that can have changed `touched` (None: anything) can change this label."""
        return touched is None or self.always or not self.inputs.isdisjoint(touched)


def _apply_hysteresis(
    candidate: Tier,
    gate_reason: Reason,
    vector: dict[str, Any],
    policy: Policy,
    now: datetime,
    previous: Decision | None,
) -> tuple[Tier, datetime | None, list[Reason]]:
    """Upgrade at once; downgrade after the grace period below the gate, or beyond the margin."""
    if previous is None or TIER_RANK[candidate] >= TIER_RANK[previous.policy_tier]:
        return candidate, None, [gate_reason]
    held = previous.policy_tier
    gate = policy.gate_of(held)
    rules = policy.hysteresis
    within_margin = gate is not None and first_group(gate.any_of, vector, rules.downgrade_margin) is not None
    below_since = previous.below_gate_since or now
    grace_ends = below_since + timedelta(days=rules.downgrade_grace_days)
    if not within_margin:
        detail = f"more than {rules.downgrade_margin:%} below the {held.value} gate"
        return candidate, None, [gate_reason, Reason("hysteresis.downgrade", detail)]
    if now >= grace_ends:
        grace = rules.downgrade_grace_days
        detail = f"below the {held.value} gate since {below_since.date()}, {grace} days grace over"
        return candidate, None, [gate_reason, Reason("hysteresis.downgrade", detail)]
    detail = (
        f"below the {held.value} gate since {below_since.date()} but within {rules.downgrade_margin:%}; "
        f"kept until {grace_ends.date()} unless it recovers"
    )
    return held, below_since, [Reason("hysteresis.hold", detail)]


def _stage(vector: dict[str, Any], policy: Policy) -> tuple[Stage, Reason]:
    for stage, name, rule in _compiled(policy).stages:
        matched = rule.first_match(vector)
        if matched is not None:
            return stage, because(name, matched, vector)
    raise AssertionError("the last stage rule matches everyone")  # guaranteed by the policy schema


def customer_lifetime_value(vector: dict[str, Any], stage: Stage, policy: Policy) -> Decimal:
    """Yearly value (AUM margin + fees on volume) times the discounted expected remaining years."""
    clv = policy.clv
    yearly = (
        vector["aum_avg_90d"] * clv.annual_margin_on_aum + vector["txn_amount_365d"] * clv.fee_rate_on_volume
    )
    retention = clv.retention_by_stage.get(stage, Decimal("0.8"))
    multiplier = retention / (1 + clv.discount_rate - retention)
    return Decimal(yearly * multiplier).quantize(Decimal("0.01"))


_LONGEST_SPAN_DAYS = (datetime.max.replace(tzinfo=UTC) - datetime.min.replace(tzinfo=UTC)).days


def exact_review_at(
    features: Features,
    policy: Policy,
    now: datetime,
    below_since: datetime | None,
    override: Override | None,
    labels: tuple[HeldLabel, ...] = (),
    averages: Mapping[int, Decimal] | None = None,
) -> datetime | None:
    """The earliest moment a rule could flip with no new event, or None if none can.

    `averages` may give the average daily balance of a window as of `now`, already known."""
    candidates: list[datetime] = []
    compiled = _compiled(policy)
    leave_after = compiled.leave_after
    for label in labels:
        if label.outside_since is not None:
            candidates.append(label.outside_since + leave_after.get(label.name, _NO_TIME))
    if below_since is not None:
        candidates.append(below_since + compiled.downgrade_grace)
    if override is not None:
        candidates.append(override.expires_at)
    for feature, offsets in compiled.day_thresholds:
        # Only the anchors the policy's thresholds name are worked out. Of one anchor's moments,
        # in rising order, only the first still ahead can be the earliest.
        anchor = _DAY_ANCHORS[feature](features)
        if anchor is not None:
            for offset in offsets:
                try:
                    moment = anchor + offset
                except OverflowError:
                    break  # past the last representable moment: it never falls due, nor do later ones
                if moment > now:
                    candidates.append(moment)
                    break
    if features.balances:
        start = seconds_of(now)
        for window, thresholds in compiled.balance_thresholds.items():
            known = averages.get(window) if averages is not None else None
            crossing = _balance_crossing(features.balances, start, window, thresholds, known)
            if crossing is not None:
                candidates.append(crossing)
    future = [moment for moment in candidates if moment > now]
    return min(future) if future else None


def balance_average_crossing(
    features: Features,
    now: datetime,
    window_days: int,
    thresholds: frozenset[Decimal],
    average_now: Decimal | None = None,
) -> datetime | None:
    """When the average daily balance next crosses a threshold, with no new balance.

    Between the moments a balance point enters or leaves the window the average moves in a
    straight line, so each crossing is found by interpolation on its segment.
    """
    if not features.balances:
        return None
    return _balance_crossing(features.balances, seconds_of(now), window_days, thresholds, average_now)


def _balance_crossing(
    balances: tuple[tuple[int, Decimal], ...],
    start: int,
    window_days: int,
    thresholds: frozenset[Decimal],
    average_now: Decimal | None,
) -> datetime | None:
    """`balance_average_crossing` of these balance points from `start`, in seconds since the epoch."""
    if not thresholds:
        return None
    window = window_days * 86_400
    breaks = sorted({t + window for t, _ in balances if t + window > start})
    if not breaks:
        return None  # every balance has been in the window for its whole length: the average is flat
    if average_now is None:
        average_now = balance_average_at(balances, start, window_days)
    previous_at, previous_value = start, average_now
    for at in breaks:
        value = balance_average_at(balances, at, window_days)
        crossed = [
            (threshold - previous_value) / (value - previous_value)
            for threshold in thresholds
            if (previous_value < threshold <= value) or (value < threshold <= previous_value)
        ]
        if crossed:
            return moment_of(previous_at + int(min(crossed) * (at - previous_at)) + 1)
        previous_at, previous_value = at, value
    return None


# The moment each day-count feature counts from: a threshold on it is crossed that many days later.
_DAY_ANCHORS: dict[str, Callable[[Features], datetime | None]] = {
    "days_since_last_txn": lambda f: f.last_txn_at,
    "days_since_last_interaction": lambda f: f.last_interaction_at,
    "days_since_last_activity": lambda f: _latest(f.last_txn_at, f.last_interaction_at),
    "nps_age_days": lambda f: f.nps_at,
    "tenure_days": lambda f: _tenure_start(f),
    "days_since_investment": lambda f: _start_of_day(f.products_seen.get("investments")),
    "days_since_loan": lambda f: _start_of_day(f.products_seen.get("loan")),
    "balance_known_days": lambda f: _first_balance_at(f),
}
_DAY_FEATURES = frozenset(_DAY_ANCHORS)
_NO_TIME = timedelta()


@dataclass(frozen=True)
class _CompiledPolicy:
    # Each day-count feature a condition names, with its thresholds as offsets from the
    # feature's anchor, in rising order.
    day_thresholds: tuple[tuple[str, tuple[timedelta, ...]], ...]
    balance_thresholds: dict[int, frozenset[Decimal]]
    score: _ScoreTerms
    labels: tuple[_CompiledLabel, ...]
    leave_after: dict[str, timedelta]
    downgrade_grace: timedelta
    # Each tier and stage with the rule name its reason gives.
    tiers: tuple[tuple[Tier, str, _CompiledGroups], ...]
    stages: tuple[tuple[Stage, str, _CompiledGroups], ...]
    # Which labels an event can change, by the features it can have changed (see `touched_by`):
    # a handful of feature sets, each worked out once.
    _evaluated_labels: dict[frozenset[str] | None, tuple[bool, ...]] = field(default_factory=dict)

    def evaluated_labels(self, touched: frozenset[str] | None) -> tuple[bool, ...]:
        evaluated = self._evaluated_labels.get(touched)
        if evaluated is None:
            evaluated = tuple(label.evaluated(touched) for label in self.labels)
            if len(self._evaluated_labels) < 64:
                self._evaluated_labels[touched] = evaluated
        return evaluated


_COMPILED: dict[int, tuple[Policy, _CompiledPolicy]] = {}


def _compiled(policy: Policy) -> _CompiledPolicy:
    """Per-policy lookups computed once (the policy object is kept so its id stays unique)."""
    cached = _COMPILED.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    rules = (
        [gate.any_of for gate in policy.tiers]
        + [rule.any_of for rule in policy.stages]
        + [label.any_of for label in policy.labels]
    )
    conditions = tuple(condition for groups in rules for group in groups for condition in group)
    margin = policy.hysteresis.downgrade_margin
    thresholds: dict[int, set[Decimal]] = {30: set(), 90: set()}
    for condition in conditions:
        window = {"aum_avg_30d": 30, "aum_avg_90d": 90}.get(condition.feature)
        if window is not None and isinstance(condition.value, Decimal):
            thresholds[window] |= {condition.value, condition.value * (1 - margin)}
    day_thresholds = {
        (c.feature, int(c.value) + (1 if c.op in (Op.GT, Op.LTE) else 0))
        for c in conditions
        if c.feature in _DAY_FEATURES and isinstance(c.value, Decimal)
    }
    offsets: dict[str, list[timedelta]] = {}
    for feature, days in sorted(day_thresholds):
        # A threshold further off than any time span never falls due (the policy bounds no count).
        if abs(days) <= _LONGEST_SPAN_DAYS:
            offsets.setdefault(feature, []).append(timedelta(days=days))
    compiled = _CompiledPolicy(
        tuple((feature, tuple(days)) for feature, days in offsets.items()),
        {w: frozenset(v) for w, v in thresholds.items()},
        _ScoreTerms.of(policy.score),
        tuple(_CompiledLabel.of(label) for label in policy.labels),
        {label.name: timedelta(days=label.leave_after_days) for label in policy.labels},
        timedelta(days=policy.hysteresis.downgrade_grace_days),
        tuple(
            (gate.tier, f"tier.{gate.tier.value}", _CompiledGroups.of(gate.any_of)) for gate in policy.tiers
        ),
        tuple(
            (rule.stage, f"stage.{rule.stage.value}", _CompiledGroups.of(rule.any_of))
            for rule in policy.stages
        ),
    )
    if len(_COMPILED) > 32:
        _COMPILED.clear()
    _COMPILED[id(policy)] = (policy, compiled)
    return compiled


def _first_balance_at(features: Features) -> datetime | None:
    return moment_of(features.balances[0][0]) if features.balances else None


def _start_of_day(day: int | None) -> datetime | None:
    return None if day is None else datetime.combine(date_of_day(day), time(), UTC)


def _tenure_start(features: Features) -> datetime | None:
    opened = features.profile.get("opened_at")
    return datetime.fromisoformat(opened) if opened else features.first_seen_at
