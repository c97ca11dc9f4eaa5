"""Per-customer aggregates, updated incrementally by each event (bounded size, event time).

Rules for late and out-of-order events:
- lifetime totals and latest times: always exact (sums and maxima commute);
- daily buckets: exact for events inside the longest window (365 days); an older event
  counts in the lifetime totals only;
- balances: kept as change points for 90 days (plus the last one before); a late balance
  inside that range is inserted in place; an older one only matters if no newer is known;
- profile fields and complaint states: the newest event time wins.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.scoring.domain.events import ScoringEvent
from shared.contracts.inbound import (
    BALANCE,
    CUSTOMER,
    INTERACTION,
    TRANSACTION,
    BalanceData,
    CustomerData,
    Direction,
    InteractionData,
    InteractionKind,
    TransactionData,
)
from shared.contracts.outbound import (
    COMPLAINT,
    SURVEY,
    ComplaintData,
    ComplaintSeverity,
    ComplaintStatus,
    SurveyData,
)
from shared.contracts.types import MONEY_CONTEXT

LONGEST_WINDOW_DAYS = 365
BALANCE_HORIZON_DAYS = 90
MAX_COMPLAINTS_KEPT = 50
HIGH_SEVERITIES = (ComplaintSeverity.HIGH, ComplaintSeverity.CRITICAL)
ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Products a transaction category shows the customer holds.
CATEGORY_PRODUCTS = {"investment": "investments", "insurance": "insurance", "loan_repayment": "loan"}


def day_of(moment: datetime) -> int:
    return moment.astimezone(UTC).date().toordinal()


def seconds_of(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def moment_of(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class DayBucket:
    txn_count: int = 0
    txn_amount: Decimal = ZERO
    interactions: int = 0
    # Inflows (a salary, a deposit) apart from all transactions; outflows are the difference.
    credits: int = 0
    credit_amount: Decimal = ZERO
    support_calls: int = 0
    login_failures: int = 0


@dataclass(frozen=True)
class Complaint:
    severity: str
    status: str
    updated_at: int


@dataclass(frozen=True)
class Features:
    first_seen_at: datetime | None = None
    txn_count: int = 0
    txn_amount: Decimal = ZERO
    first_txn_at: datetime | None = None
    last_txn_at: datetime | None = None
    interaction_count: int = 0
    last_interaction_at: datetime | None = None
    days: dict[int, DayBucket] = field(default_factory=dict)
    # (seconds since epoch, AUM in base currency), sorted by time.
    balances: tuple[tuple[int, Decimal], ...] = ()
    breakdown: dict[str, Decimal] = field(default_factory=dict)
    products_seen: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    profile_at: datetime | None = None
    nps_latest: int | None = None
    nps_at: datetime | None = None
    csat_sum: int = 0
    csat_count: int = 0
    complaints: dict[str, Complaint] = field(default_factory=dict)

    @property
    def aum(self) -> Decimal:
        return self.balances[-1][1] if self.balances else ZERO


_FEATURE_FIELDS = frozenset(f.name for f in fields(Features))


def _evolve(features: Features, **changes: Any) -> Features:
    """`dataclasses.replace` without its per-call introspection: it runs several times per event."""
    unknown = changes.keys() - _FEATURE_FIELDS
    if unknown:
        raise TypeError(f"unknown feature fields {sorted(unknown)}")
    evolved = object.__new__(Features)
    vars(evolved).update(vars(features), **changes)
    return evolved


def apply_event(features: Features, event: ScoringEvent, amount_in_base: Decimal | None) -> Features:
    """The aggregates after `event`; `amount_in_base` is its money converted to the base currency."""
    first_seen = _earliest(features.first_seen_at, event.time)
    seen = features if first_seen == features.first_seen_at else _evolve(features, first_seen_at=first_seen)
    data = event.data
    if event.type == TRANSACTION and isinstance(data, TransactionData):
        return _transaction(seen, event.time, data, amount_in_base or ZERO)
    if event.type == BALANCE and isinstance(data, BalanceData):
        return _balance(seen, data.as_of or event.time, data, amount_in_base or ZERO)
    if event.type == INTERACTION and isinstance(data, InteractionData):
        return _interaction(seen, event.time, data)
    if event.type == CUSTOMER and isinstance(data, CustomerData):
        return _profile(seen, event.time, data)
    if event.type == SURVEY and isinstance(data, SurveyData):
        return _survey(seen, data.answered_at or event.time, data)
    if event.type == COMPLAINT and isinstance(data, ComplaintData):
        return _complaint(seen, event.time, data)
    return seen


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _with_bucket(days: dict[int, DayBucket], day: int, horizon_day: int, **add: Any) -> dict[int, DayBucket]:
    if day <= horizon_day - LONGEST_WINDOW_DAYS:
        return days
    bucket = days.get(day, DayBucket())
    updated = DayBucket(
        bucket.txn_count + add.get("txn_count", 0),
        MONEY_CONTEXT.add(bucket.txn_amount, add.get("txn_amount", ZERO)),
        bucket.interactions + add.get("interactions", 0),
        bucket.credits + add.get("credits", 0),
        MONEY_CONTEXT.add(bucket.credit_amount, add.get("credit_amount", ZERO)),
        bucket.support_calls + add.get("support_calls", 0),
        bucket.login_failures + add.get("login_failures", 0),
    )
    cutoff = max(horizon_day, day) - LONGEST_WINDOW_DAYS
    if min(days, default=cutoff + 1) > cutoff:
        kept = dict(days)  # the usual case: no day leaves the longest window
    else:
        kept = {d: b for d, b in days.items() if d > cutoff}
    kept[day] = updated
    return kept


def _newest_day(features: Features) -> int:
    return max(features.days, default=0)


def _transaction(features: Features, time: datetime, data: TransactionData, amount: Decimal) -> Features:
    day = day_of(time)
    products = features.products_seen
    product = CATEGORY_PRODUCTS.get(data.category.value if data.category else "")
    if product:
        products = {**products, product: max(products.get(product, 0), day)}
    credit = data.direction is Direction.CREDIT
    return _evolve(
        features,
        txn_count=features.txn_count + 1,
        txn_amount=MONEY_CONTEXT.add(features.txn_amount, amount),
        first_txn_at=_earliest(features.first_txn_at, time),
        last_txn_at=_latest(features.last_txn_at, time),
        days=_with_bucket(
            features.days,
            day,
            _newest_day(features),
            txn_count=1,
            txn_amount=amount,
            credits=int(credit),
            credit_amount=amount if credit else ZERO,
        ),
        products_seen=products,
        channels=_count_channel(features.channels, data.channel.value if data.channel else None),
    )


def _interaction(features: Features, time: datetime, data: InteractionData) -> Features:
    return _evolve(
        features,
        interaction_count=features.interaction_count + 1,
        last_interaction_at=_latest(features.last_interaction_at, time),
        days=_with_bucket(
            features.days,
            day_of(time),
            _newest_day(features),
            interactions=1,
            support_calls=int(data.kind is InteractionKind.SUPPORT_CALL),
            login_failures=int(data.kind is InteractionKind.LOGIN_FAILED),
        ),
        channels=_count_channel(features.channels, data.channel.value if data.channel else None),
    )


def _count_channel(channels: dict[str, int], channel: str | None) -> dict[str, int]:
    if channel is None:
        return channels
    return {**channels, channel: channels.get(channel, 0) + 1}


def _balance(features: Features, as_of: datetime, data: BalanceData, aum: Decimal) -> Features:
    at = seconds_of(as_of)
    points = list(features.balances)
    times = [t for t, _ in points]
    index = bisect.bisect_left(times, at)
    if index < len(points) and points[index][0] == at:
        points[index] = (at, aum)
    else:
        points.insert(index, (at, aum))
    newest = points[-1][0]
    horizon = newest - BALANCE_HORIZON_DAYS * 86_400
    # Keep every point inside the horizon and the last one before it (it sets the start level).
    first_inside = bisect.bisect_left([t for t, _ in points], horizon)
    points = points[max(0, first_inside - 1) :]
    is_latest = points[-1][0] == at
    breakdown = dict(data.breakdown or {}) if is_latest else features.breakdown
    return _evolve(features, balances=tuple(points), breakdown=breakdown)


def _profile(features: Features, time: datetime, data: CustomerData) -> Features:
    if features.profile_at is not None and time < features.profile_at:
        return features
    fields = data.model_dump(mode="json", exclude_none=True, exclude={"customer_id"})
    profile = {**features.profile, **fields}
    moved = "household_id" in fields and fields["household_id"] != features.profile.get("household_id")
    if data.leaves_household or (moved and "household_role" not in fields):
        # A role is held in one household: it does not follow the customer out or into another.
        profile.pop("household_role", None)
    if data.leaves_household:
        profile.pop("household_id", None)
    return _evolve(features, profile=profile, profile_at=time)


def _survey(features: Features, time: datetime, data: SurveyData) -> Features:
    if data.kind.value == "csat":
        return _evolve(features, csat_sum=features.csat_sum + data.score, csat_count=features.csat_count + 1)
    if features.nps_at is not None and time < features.nps_at:
        return features
    return _evolve(features, nps_latest=data.score, nps_at=time)


def _complaint(features: Features, time: datetime, data: ComplaintData) -> Features:
    at = seconds_of(time)
    known = features.complaints.get(data.complaint_id)
    if known is not None and at < known.updated_at:
        return features
    complaints = {
        **features.complaints,
        data.complaint_id: Complaint(data.severity.value, data.status.value, at),
    }
    if len(complaints) > MAX_COMPLAINTS_KEPT:
        # Forget the oldest resolved complaints first; open ones always stay.
        resolved = sorted(
            (c.updated_at, cid) for cid, c in complaints.items() if c.status == ComplaintStatus.RESOLVED.value
        )
        for _, cid in resolved[: len(complaints) - MAX_COMPLAINTS_KEPT]:
            del complaints[cid]
    return _evolve(features, complaints=complaints)


# A balance, profile, survey or complaint leaves the daily buckets as they were: the customer's
# next event the same day sums the very same buckets. Keyed by the dict's id, with the dict kept,
# so an entry is only used for the dict it was summed from.
_WINDOW_TOTALS: dict[int, tuple[dict[int, DayBucket], int, tuple[int, ...], dict[int, DayBucket]]] = {}
_MAX_WINDOW_TOTALS = 1_024


def window_totals(features: Features, today: int, windows: tuple[int, ...]) -> dict[int, DayBucket]:
    """Exact sums of the daily buckets over each window ending `today` (inclusive)."""
    known = _WINDOW_TOTALS.get(id(features.days))
    if known is not None and known[0] is features.days and known[1:3] == (today, windows):
        return known[3]
    totals = _window_totals(features.days, today, windows)
    if len(_WINDOW_TOTALS) >= _MAX_WINDOW_TOTALS:
        _WINDOW_TOTALS.clear()
    _WINDOW_TOTALS[id(features.days)] = (features.days, today, windows, totals)
    return totals


def _window_totals(days: dict[int, DayBucket], today: int, windows: tuple[int, ...]) -> dict[int, DayBucket]:
    add = MONEY_CONTEXT.add
    # Runs for every event: one pass over the days, each day added once, to the band of ages
    # between the shortest window holding it and the next shorter one; each window then adds
    # up its bands. The sums are exact (MONEY_CONTEXT), so their grouping cannot change them.
    limits = sorted(set(windows))
    longest, bands = limits[-1], len(limits)
    txn_count, interactions, credits = [0] * bands, [0] * bands, [0] * bands
    support_calls, login_failures = [0] * bands, [0] * bands
    txn_amount, credit_amount = [ZERO] * bands, [ZERO] * bands
    for day, bucket in days.items():
        age = today - day
        if age < 0 or age >= longest:
            continue
        band = 0
        while age >= limits[band]:
            band += 1
        txn_count[band] += bucket.txn_count
        txn_amount[band] = add(txn_amount[band], bucket.txn_amount)
        interactions[band] += bucket.interactions
        if bucket.credits:
            credits[band] += bucket.credits
            credit_amount[band] = add(credit_amount[band], bucket.credit_amount)
        support_calls[band] += bucket.support_calls
        login_failures[band] += bucket.login_failures
    totals: dict[int, DayBucket] = {}
    for band, limit in enumerate(limits):
        if band:
            txn_count[band] += txn_count[band - 1]
            txn_amount[band] = add(txn_amount[band], txn_amount[band - 1])
            interactions[band] += interactions[band - 1]
            credits[band] += credits[band - 1]
            credit_amount[band] = add(credit_amount[band], credit_amount[band - 1])
            support_calls[band] += support_calls[band - 1]
            login_failures[band] += login_failures[band - 1]
        totals[limit] = DayBucket(
            txn_count[band],
            txn_amount[band],
            interactions[band],
            credits[band],
            credit_amount[band],
            support_calls[band],
            login_failures[band],
        )
    return {window: totals[window] for window in windows}


def credit_months(features: Features, today: int, months: int) -> int:
    """Of the last `months` 30-day periods ending `today`, how many saw an inflow (a salary's pattern)."""
    periods = {
        (today - day) // 30 for day, bucket in features.days.items() if bucket.credits and day <= today
    }
    return len(periods & set(range(months)))


def average_daily_balance(features: Features, now: datetime, window_days: int) -> Decimal:
    """Time-weighted average of AUM over the window ending at `now`; unknown history counts as 0."""
    return balance_average_at(features.balances, seconds_of(now), window_days)


def balance_average_at(points: tuple[tuple[int, Decimal], ...], end: int, window_days: int) -> Decimal:
    """`average_daily_balance` of these balance points, the window ending `end` seconds after the
    epoch: for callers that already hold the moment in seconds."""
    start = end - window_days * 86_400
    total = ZERO
    for index, (at, level) in enumerate(points):
        next_at = points[index + 1][0] if index + 1 < len(points) else end
        lo, hi = max(at, start), min(next_at, end)
        if hi > lo:
            total = MONEY_CONTEXT.fma(level, hi - lo, total)
    return MONEY_CONTEXT.divide(total, window_days * 86_400)


def aum_at(features: Features, now: datetime) -> Decimal:
    """The AUM known at `now` (balances dated later are not yet in effect)."""
    at = seconds_of(now)
    balances = features.balances
    if balances and balances[-1][0] <= at:
        return balances[-1][1]  # the usual case: no balance is dated after `now`
    level = ZERO
    for when, value in balances:
        if when > at:
            break
        level = value
    return level


def held_products(features: Features, today: int) -> tuple[str, ...]:
    return tuple(sorted(_held_product_names(features, today)))


def products_held(features: Features, today: int) -> int:
    # A score term read for every event: counted without sorting the names.
    return len(_held_product_names(features, today))


def _held_product_names(features: Features, today: int) -> set[str]:
    held = {name for name, value in features.breakdown.items() if value > 0}
    held.update(name for name, day in features.products_seen.items() if today - day < LONGEST_WINDOW_DAYS)
    return held


def open_complaints(features: Features) -> dict[str, int]:
    counts: dict[str, int] = {}
    for complaint in features.complaints.values():
        if complaint.status != ComplaintStatus.RESOLVED.value:
            counts[complaint.severity] = counts.get(complaint.severity, 0) + 1
    return counts


def open_high_complaints(features: Features) -> int:
    """Open complaints of high or critical severity: they stop marketing and may gate a tier."""
    complaints = open_complaints(features)
    return sum(complaints.get(severity.value, 0) for severity in HIGH_SEVERITIES)


def date_of_day(day: int) -> date:
    return date.fromordinal(day)
