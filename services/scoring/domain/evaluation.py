"""Tier and stage decisions: a pure function of aggregates, policy, clock and the last decision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.scoring.domain.features import (
    ZERO,
    Features,
    aum_at,
    average_daily_balance,
    day_of,
    moment_of,
    open_complaints,
    open_high_complaints,
    products_held,
    seconds_of,
    window_totals,
)
from services.scoring.domain.policy import Condition, Groups, Op, Policy, ScoreTerm
from shared.contracts.outbound import TIER_RANK, nps_category
from shared.contracts.types import Stage, Tier

MAX_CATCH_UP_REVIEWS = 400


@dataclass(frozen=True)
class Reason:
    rule: str
    detail: str


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
    due_at: datetime | None
    next_review_at: datetime
    clv: Decimal


def derive(features: Features, now: datetime) -> dict[str, Any]:
    """Every feature a policy may name, as of `now`."""
    today = day_of(now)
    windows = window_totals(features, today, (30, 90, 365))
    aum_avg_30d = average_daily_balance(features, now, 30)
    aum_avg_90d = average_daily_balance(features, now, 90)
    last_activity = _latest(features.last_txn_at, features.last_interaction_at)
    complaints = open_complaints(features)
    opened = features.profile.get("opened_at")
    tenure_start = datetime.fromisoformat(opened) if opened else features.first_seen_at
    nps = features.nps_latest
    return {
        "txn_count": features.txn_count,
        "txn_amount": features.txn_amount,
        "txn_count_30d": windows[30].txn_count,
        "txn_count_90d": windows[90].txn_count,
        "txn_count_365d": windows[365].txn_count,
        "txn_amount_30d": windows[30].txn_amount,
        "txn_amount_90d": windows[90].txn_amount,
        "txn_amount_365d": windows[365].txn_amount,
        "interaction_count": features.interaction_count,
        "interactions_30d": windows[30].interactions,
        "interactions_90d": windows[90].interactions,
        "activity_count": features.txn_count + features.interaction_count,
        "days_since_last_txn": _days_since(features.last_txn_at, now),
        "days_since_last_interaction": _days_since(features.last_interaction_at, now),
        "days_since_last_activity": _days_since(last_activity, now),
        "aum": aum_at(features, now),
        "aum_avg_30d": aum_avg_30d,
        "aum_avg_90d": aum_avg_90d,
        "aum_trend_30_90": (aum_avg_30d / aum_avg_90d) if aum_avg_90d > 0 else None,
        "products_held": products_held(features, today),
        "tenure_days": _days_since(tenure_start, now),
        "nps_latest": nps,
        "nps_age_days": _days_since(features.nps_at, now),
        "nps_category": None if nps is None else nps_category(nps).value,
        "csat_avg": (Decimal(features.csat_sum) / features.csat_count) if features.csat_count else None,
        "complaints_open": sum(complaints.values()),
        "complaints_open_high": open_high_complaints(features),
        "segment": features.profile.get("segment"),
        "region": features.profile.get("region"),
        "risk_profile": features.profile.get("risk_profile"),
    }


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
    total_weight = sum(float(term.weight) for term in terms)
    weighted = sum(float(term.weight) * _normalise(vector.get(term.feature), term) for term in terms)
    return round(100 * weighted / total_weight, 1)


def _normalise(value: Any, term: ScoreTerm) -> float:
    if value is None:
        return float(term.missing)
    x, low, high = float(value), float(term.low), float(term.high)
    if term.transform == "log":
        if x <= 0:
            return 0.0 if low < high else 1.0
        x, low, high = math.log(x), math.log(low), math.log(high)
    return min(1.0, max(0.0, (x - low) / (high - low)))


def holds(condition: Condition, vector: dict[str, Any], margin: Decimal = ZERO) -> bool:
    """Whether the condition holds; a margin relaxes lower bounds (gte/gt) by that fraction."""
    actual = vector.get(condition.feature)
    if actual is None:
        return False
    expected = condition.value
    if isinstance(expected, Decimal) and condition.op in (Op.GTE, Op.GT):
        expected = expected * (1 - margin)
    match condition.op:
        case Op.GTE:
            return bool(actual >= expected)
        case Op.GT:
            return bool(actual > expected)
        case Op.LTE:
            return bool(actual <= expected)
        case Op.LT:
            return bool(actual < expected)
        case Op.EQ:
            return bool(actual == expected)
        case Op.NE:
            return bool(actual != expected)


def first_group(groups: Groups, vector: dict[str, Any], margin: Decimal = ZERO) -> list[Condition] | None:
    """The first group whose conditions all hold; an empty rule matches everyone."""
    if not groups:
        return []
    return next((group for group in groups if all(holds(c, vector, margin) for c in group)), None)


def explain(conditions: list[Condition], vector: dict[str, Any]) -> str:
    symbols = {Op.GTE: ">=", Op.GT: ">", Op.LTE: "<=", Op.LT: "<", Op.EQ: "=", Op.NE: "!="}
    parts = [
        f"{c.feature} {_show(vector.get(c.feature))} {symbols[c.op]} {_show(c.value)}" for c in conditions
    ]
    return "; ".join(parts) or "no other rule matched"


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value != value.to_integral_value() else f"{value:.0f}"
    return str(value)


def policy_tier(vector: dict[str, Any], policy: Policy) -> tuple[Tier, Reason]:
    for gate in policy.tiers:
        matched = first_group(gate.any_of, vector)
        if matched is not None:
            return gate.tier, Reason(f"tier.{gate.tier.value}", explain(matched, vector))
    raise AssertionError("the last gate matches everyone")  # guaranteed by the policy schema


def evaluate(
    features: Features,
    policy: Policy,
    now: datetime,
    previous: Decision | None,
    override: Override | None = None,
) -> Decision:
    vector = derive(features, now)
    vector["score"] = score(vector, policy.score)
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
    due = exact_review_at(features, policy, now, below_since, override)
    refresh = now + timedelta(hours=policy.review.refresh_hours)
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
        due_at=due,
        next_review_at=min(due, refresh) if due else refresh,
        clv=customer_lifetime_value(vector, stage, policy),
    )


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
    for rule in policy.stages:
        matched = first_group(rule.any_of, vector)
        if matched is not None:
            return rule.stage, Reason(f"stage.{rule.stage.value}", explain(matched, vector))
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


def exact_review_at(
    features: Features,
    policy: Policy,
    now: datetime,
    below_since: datetime | None,
    override: Override | None,
) -> datetime | None:
    """The earliest moment a rule could flip with no new event, or None if none can."""
    candidates: list[datetime] = []
    if below_since is not None:
        candidates.append(below_since + timedelta(days=policy.hysteresis.downgrade_grace_days))
    if override is not None:
        candidates.append(override.expires_at)
    anchors = {
        "days_since_last_txn": features.last_txn_at,
        "days_since_last_interaction": features.last_interaction_at,
        "days_since_last_activity": _latest(features.last_txn_at, features.last_interaction_at),
        "nps_age_days": features.nps_at,
        "tenure_days": _tenure_start(features),
    }
    for feature, days in _compiled(policy).day_thresholds:
        anchor = anchors[feature]
        if anchor is not None:
            candidates.append(anchor + timedelta(days=days))
    for window, thresholds in _compiled(policy).balance_thresholds.items():
        crossing = balance_average_crossing(features, now, window, thresholds)
        if crossing is not None:
            candidates.append(crossing)
    future = [moment for moment in candidates if moment > now]
    return min(future) if future else None


def balance_average_crossing(
    features: Features, now: datetime, window_days: int, thresholds: frozenset[Decimal]
) -> datetime | None:
    """When the average daily balance next crosses a threshold, with no new balance.

    Between the moments a balance point enters or leaves the window the average moves in a
    straight line, so each crossing is found by interpolation on its segment.
    """
    if not features.balances or not thresholds:
        return None
    window = window_days * 86_400
    start = seconds_of(now)
    breaks = sorted({t + window for t, _ in features.balances if t + window > start})
    if not breaks:
        return None  # every balance has been in the window for its whole length: the average is flat
    previous_at, previous_value = start, average_daily_balance(features, now, window_days)
    for at in breaks:
        value = average_daily_balance(features, moment_of(at), window_days)
        crossed = [
            (threshold - previous_value) / (value - previous_value)
            for threshold in thresholds
            if (previous_value < threshold <= value) or (value < threshold <= previous_value)
        ]
        if crossed:
            return moment_of(previous_at + int(min(crossed) * (at - previous_at)) + 1)
        previous_at, previous_value = at, value
    return None


_DAY_FEATURES = frozenset(
    {
        "days_since_last_txn",
        "days_since_last_interaction",
        "days_since_last_activity",
        "nps_age_days",
        "tenure_days",
    }
)


@dataclass(frozen=True)
class _CompiledPolicy:
    day_thresholds: tuple[tuple[str, int], ...]
    balance_thresholds: dict[int, frozenset[Decimal]]


_COMPILED: dict[int, tuple[Policy, _CompiledPolicy]] = {}


def _compiled(policy: Policy) -> _CompiledPolicy:
    """Per-policy lookups computed once (the policy object is kept so its id stays unique)."""
    cached = _COMPILED.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    rules = [gate.any_of for gate in policy.tiers] + [rule.any_of for rule in policy.stages]
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
    compiled = _CompiledPolicy(
        tuple(sorted(day_thresholds)), {w: frozenset(v) for w, v in thresholds.items()}
    )
    if len(_COMPILED) > 32:
        _COMPILED.clear()
    _COMPILED[id(policy)] = (policy, compiled)
    return compiled


def _tenure_start(features: Features) -> datetime | None:
    opened = features.profile.get("opened_at")
    return datetime.fromisoformat(opened) if opened else features.first_seen_at
