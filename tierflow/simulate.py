"""A deterministic synthetic bank: branches, RMs, customers drawn from personas, their year.

The same seed always yields the same stream. Customers are generated a cohort at a time and
each cohort is emitted in time order, so memory is bounded by the cohort, not the
population; with the whole bank in one cohort the stream is in global time order (the demo,
compressed time).

Every record is a CloudEvent: the core-banking types (`bank.*`, for ingest or the topic)
and, for the feedback service, `feedback.survey.v1` / `feedback.complaint.v1` whose data is
the body its API takes.

About three customers in ten live in a household (a couple, a family with children, retirees
with their adult children): members share the primary's branch, their profiles name the
household and their role, and in some households the assets are split so that the household
reaches wealth or private only together. Now and then a member moves to another household or
leaves theirs during the year.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from shared.contracts.outbound import COMPLAINT, SURVEY
from shared.contracts.types import HouseholdRole, Tier

COHORT = 1_000
MONTH = timedelta(days=30.4)
BAD_EXPERIENCE_MEMORY = timedelta(days=60)
Event = dict[str, Any]


DIGITAL_MOSTLY = ("mobile", "mobile", "online", "atm", "branch")
# As many choices as DIGITAL_MOSTLY, so the draws that follow are the same whichever is used.
OVER_THE_COUNTER = ("branch", "branch", "phone", "branch", "atm")
TROUBLED_MONTH = 0.5
"""chance per month that a customer who struggles with digital banking runs into it"""


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    aum_median: float
    aum_sigma: float
    monthly_growth: float
    purchases: float  # per month
    amount_median: float
    logins: float
    branch_visits: float
    rm_meetings: float
    investments: float
    risk_profiles: tuple[str, ...]
    nps_base: float
    segment: str = "individual"
    salary: float = 0.0
    with_rm: bool = False
    # Where purchases are made: the student's go through the app, the retiree's over the counter.
    purchase_channels: tuple[str, ...] = DIGITAL_MOSTLY
    # The chance that a customer of this persona struggles with digital banking (failed
    # sign-ins, calls to the support line).
    digital_trouble: float = 0.0


PERSONAS = (
    Persona("salaried", 0.55, 15_000, 1.0, 1.010, 9, 250, 6, 0.2, 0, 0, ("C2", "C3"), 7.6, salary=12_000,
            digital_trouble=0.03),
    Persona("student", 0.13, 2_000, 0.9, 1.000, 12, 50, 20, 0.05, 0, 0, ("C3", "C4"), 7.2),
    Persona("retiree", 0.12, 60_000, 0.8, 1.003, 3, 600, 0.5, 1.5, 0, 0.1, ("C1", "C2"), 8.4,
            purchase_channels=OVER_THE_COUNTER, digital_trouble=0.3),
    Persona("affluent", 0.08, 400_000, 0.8, 1.008, 6, 5_000, 4, 0.3, 0.5, 1.5, ("C3", "C4", "C5"), 8.3,
            with_rm=True),
    Persona("private", 0.008, 8_000_000, 0.5, 1.006, 4, 40_000, 2, 0.2, 1.2, 1.5, ("C4", "C5"), 8.8,
            with_rm=True),
    Persona("business", 0.05, 200_000, 1.2, 1.004, 4, 60_000, 8, 0.5, 0.3, 0, ("C3", "C4"), 7.0,
            segment="corporate", with_rm=True),
    Persona("drifting", 0.04, 60_000, 1.0, 1.000, 6, 400, 5, 0.3, 0, 0, ("C2", "C3"), 6.0),
    Persona("one_off", 0.025, 15_000, 0.8, 1.005, 8, 250, 5, 0.2, 0, 0, ("C2", "C3"), 7.4, salary=9_000),
)  # fmt: skip
PERSONA_NAMED = {p.name: p for p in PERSONAS}
BRANCH_KINDS = {"urban": (0.6, 3.0, 4), "rural": (0.3, 1.0, 1), "overseas": (0.1, 0.6, 2)}
"""kind: (share of branches, relative size, RMs besides the senior one)"""
BAD_EXPERIENCE_RATE = {"urban": 0.03, "rural": 0.05, "overseas": 0.06}
"""chance per month that something goes wrong for a customer (failed transfer, blocked card, queue)"""


@dataclass(frozen=True)
class Rm:
    rm_id: str
    branch_id: str
    capacity: int


@dataclass(frozen=True)
class Branch:
    branch_id: str
    kind: str
    size: float
    rms: tuple[Rm, ...]


@dataclass(frozen=True)
class Bank:
    customers: int
    events_per_customer: float
    seed: int = 42
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    days: int = 365
    branches: int = 20
    cohort: int = COHORT

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def branches(bank: Bank) -> tuple[Branch, ...]:
    rng = random.Random(bank.seed * 31 + 5)
    kinds = list(BRANCH_KINDS)
    made = []
    for index in range(bank.branches):
        kind = rng.choices(kinds, weights=[BRANCH_KINDS[k][0] for k in kinds])[0]
        _, size, extra_rms = BRANCH_KINDS[kind]
        branch_id = f"BR{index:03d}"
        rms = [Rm(f"{branch_id}-RM1", branch_id, 60)]
        rms += [
            Rm(f"{branch_id}-RM{n}", branch_id, rng.choice((25, 30, 40)))
            for n in range(2, 2 + extra_rms + rng.randrange(2))
        ]
        made.append(Branch(branch_id, kind, size * rng.uniform(0.6, 1.4), tuple(rms)))
    return tuple(made)


def persona_of(bank: Bank, index: int) -> Persona:
    """The persona behind customer `index` (the demo picks example customers by it)."""
    return _as_member(bank, index, _persona(_customer_rng(bank, index)))


def _as_member(bank: Bank, index: int, drawn: Persona) -> Persona:
    """The persona drawn for customer `index` as their place in a household shapes it."""
    found = household_of(bank, index)
    if found is None:
        return drawn
    member = found[1]
    if member.persona is not None:
        return PERSONA_NAMED[member.persona]
    return PERSONA_NAMED[ADULT_INSTEAD.get(drawn.name, drawn.name)]


def _branch_of(bank: Bank, index: int, drawn: Branch, bank_branches: tuple[Branch, ...]) -> Branch:
    """The branch drawn for customer `index`, or the primary's if they live in a household."""
    found = household_of(bank, index)
    primary = found[0].members[0].index if found is not None else index
    if primary == index:
        return drawn
    rng = _customer_rng(bank, primary)
    _persona(rng)  # the primary's draws, in their order
    return _branch(rng, bank_branches)


def _branch(rng: random.Random, bank_branches: tuple[Branch, ...]) -> Branch:
    return rng.choices(bank_branches, weights=[b.size for b in bank_branches])[0]


def _customer_rng(bank: Bank, index: int) -> random.Random:
    """Everything about customer `index` comes from this stream, so customers are independent."""
    return random.Random(bank.seed * 1_000_003 + index)


def customer_id(index: int) -> str:
    return f"C{index:08d}"


def _persona(rng: random.Random) -> Persona:
    return rng.choices(PERSONAS, weights=[p.weight for p in PERSONAS])[0]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def _activity_scales(bank: Bank) -> tuple[float, float]:
    """(chance of each monthly statement and salary, multiplier of every other rate), chosen so a
    customer averages about `events_per_customer` a year: statements first, the rest after."""
    months = 12 * bank.days / 365
    fixed = sum(p.weight * (1 + (p.salary > 0)) for p in PERSONAS) * months
    variable = (
        sum(
            p.weight * (p.purchases + p.logins + p.branch_visits + p.rm_meetings + p.investments)
            for p in PERSONAS
        )
        * months
    )
    regular = min(1.0, 0.6 * bank.events_per_customer / fixed)
    return regular, max(bank.events_per_customer - regular * fixed, 0.0) / variable


@dataclass
class _Customer:
    """One customer's simulated life; `add` collects their records."""

    bank: Bank
    index: int
    rng: random.Random
    persona: Persona
    branch: Branch
    regular: float
    scale: float
    records: list[tuple[datetime, Event]] = field(default_factory=list)
    bad_at: list[datetime] = field(default_factory=list)
    seq: int = 0
    # Digital trouble draws from a stream of its own: the rest of the customer's life is as before.
    trouble_rng: random.Random | None = None

    @property
    def customer_id(self) -> str:
        return customer_id(self.index)

    def add(self, event_type: str, at: datetime, data: dict[str, Any]) -> None:
        self.seq += 1
        event_id = f"{self.customer_id}-{self.seq}"
        body = {"customer_id": self.customer_id, **data}
        self.records.append((at, _event(event_id, event_type, at, body)))

    def amount(self, median: float, sigma: float = 0.8) -> str:
        return f"{max(self.rng.lognormvariate(0, sigma) * median, 0.01):.2f}"

    def within(self, start: datetime, end: datetime) -> datetime:
        return start + timedelta(seconds=self.rng.uniform(0, max((end - start).total_seconds(), 1)))

    def count(self, mean_per_month: float, activity: float) -> int:
        return _poisson(self.rng, mean_per_month * self.scale * activity)

    def recently_bad(self, at: datetime) -> bool:
        return any(timedelta(0) <= at - bad <= BAD_EXPERIENCE_MEMORY for bad in self.bad_at)


def _event(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> Event:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "tierflow/simulator",
        "type": event_type,
        "time": at.isoformat(),
        "data": data,
    }


def _customer(
    bank: Bank, index: int, bank_branches: tuple[Branch, ...], scales: tuple[float, float]
) -> _Customer:
    rng = _customer_rng(bank, index)
    persona = _as_member(bank, index, _persona(rng))
    branch = _branch_of(bank, index, _branch(rng, bank_branches), bank_branches)
    customer = _Customer(bank, index, rng, persona, branch, *scales)
    trouble = random.Random(bank.seed * 7_000_003 + index)
    if trouble.random() < persona.digital_trouble:
        customer.trouble_rng = trouble
    return customer


def _customer_records(
    bank: Bank, index: int, bank_branches: tuple[Branch, ...], scales: tuple[float, float]
) -> list[tuple[datetime, Event]]:
    c = _customer(bank, index, bank_branches, scales)
    rng, persona = c.rng, c.persona
    existing = rng.random() < 0.8  # most of a bank's customers were there before the year began
    if existing:
        opened = bank.start - timedelta(days=rng.uniform(60, 12 * 365))
        first = bank.start + timedelta(hours=rng.uniform(0, 72))
    else:
        opened = first = bank.start + timedelta(days=rng.uniform(0, bank.days * 0.8))
    found = household_of(bank, index)
    _profile(c, first, opened, found)
    aum = rng.lognormvariate(0, persona.aum_sigma) * persona.aum_median
    if found is not None:
        aum = found[1].aum or aum
        _household_move(c, first, *found)
    c.add("bank.balance.v1", first + timedelta(minutes=5), {"aum": f"{aum:.2f}", "currency": "CNY"})
    drift_at = first + timedelta(days=rng.uniform(60, 200)) if persona.name == "drifting" else None
    spike_at = first + timedelta(days=rng.uniform(30, 240)) if persona.name == "one_off" else None
    month_start = first
    while month_start < bank.end:
        month_end = min(month_start + MONTH, bank.end)
        activity = 1.0
        if drift_at is not None and month_start > drift_at:
            activity = 0.35 ** ((month_start - drift_at) / MONTH)
        leaving = drift_at is not None and 0.1 < activity < 1  # the assets go over the first months
        aum = _month(c, month_start, month_end, aum, activity, leaving)
        if spike_at is not None and month_start <= spike_at < month_end:
            _one_large_deposit(c, spike_at, aum)
        month_start = month_end
    return [r for r in c.records if r[0] < bank.end]


def _profile(
    c: _Customer, at: datetime, opened: datetime, household: tuple[Household, Member] | None
) -> None:
    rng, persona = c.rng, c.persona
    senior = c.branch.rms[0] if persona.name == "private" else rng.choice(c.branch.rms)
    profile: dict[str, Any] = {
        "branch_id": c.branch.branch_id,
        "segment": persona.segment,
        "region": c.branch.kind,
        "risk_profile": rng.choice(persona.risk_profiles),
        "opened_at": opened.isoformat(),
        "consents": {"phone": True, "sms": rng.random() > 0.1, "email": rng.random() > 0.3, "app": True},
    }
    if persona.with_rm:
        profile["rm_id"] = senior.rm_id
    if household is not None:
        profile["household_id"] = household[0].household_id
        profile["household_role"] = household[1].role.value
    c.add("bank.customer.v1", at, profile)


def _month(c: _Customer, start: datetime, end: datetime, aum: float, activity: float, leaving: bool) -> float:
    rng, persona = c.rng, c.persona
    if persona.salary and activity > 0.5 and rng.random() < c.regular:
        at = min(start + timedelta(days=24, hours=rng.uniform(8, 12)), end - timedelta(minutes=1))
        c.add("bank.transaction.v1", at, _txn(c.amount(persona.salary, 0.3), "credit", "transfer", "online"))
        aum += persona.salary * 0.15
    for _ in range(c.count(persona.purchases, activity)):
        channel = rng.choice(persona.purchase_channels)
        median = persona.amount_median
        direction, category = ("debit", "purchase")
        if persona.segment == "corporate" and rng.random() < 0.5:
            direction, category = ("credit", "transfer")  # lumpy receipts
        c.add(
            "bank.transaction.v1",
            c.within(start, end),
            _txn(c.amount(median, 1.2), direction, category, channel),
        )
    for _ in range(c.count(persona.investments, activity)):
        c.add(
            "bank.transaction.v1",
            c.within(start, end),
            _txn(c.amount(max(aum * 0.05, 1_000)), "debit", "investment", rng.choice(("rm", "online"))),
        )
    _interactions(c, start, end, activity)
    _digital_trouble(c, start, end)
    _experience(c, start, end)
    if leaving:
        outflow = aum * rng.uniform(0.15, 0.4)
        c.add(
            "bank.transaction.v1",
            c.within(start, end),
            _txn(f"{max(outflow, 0.01):.2f}", "debit", "transfer", "online"),
        )
        aum -= outflow
    else:
        aum *= persona.monthly_growth * rng.lognormvariate(0, 0.04)
    if rng.random() < c.regular:
        statement = end - timedelta(hours=rng.uniform(1, 6))
        c.add("bank.balance.v1", statement, {"aum": f"{max(aum, 0):.2f}", "currency": "CNY"})
    return aum


def _interactions(c: _Customer, start: datetime, end: datetime, activity: float) -> None:
    persona = c.persona
    for _ in range(c.count(persona.logins, activity)):
        channel = "mobile" if persona.name == "student" or c.rng.random() < 0.7 else "online"
        c.add("bank.interaction.v1", c.within(start, end), {"kind": "login", "channel": channel})
    for _ in range(c.count(persona.branch_visits, activity)):
        at = c.within(start, end)
        c.add("bank.interaction.v1", at, {"kind": "branch_visit", "channel": "branch"})
        _maybe_survey(c, at, "csat", 0.1)
    for _ in range(c.count(persona.rm_meetings, activity)):
        at = c.within(start, end)
        c.add("bank.interaction.v1", at, {"kind": "rm_meeting", "channel": "rm"})
        _maybe_survey(c, at, "csat", 0.15)


def _digital_trouble(c: _Customer, start: datetime, end: datetime) -> None:
    """A customer who struggles with the app: a sign-in attempt, failed ones, a call for help."""
    rng = c.trouble_rng
    if rng is None or rng.random() >= TROUBLED_MONTH:
        return
    at = start + timedelta(seconds=rng.uniform(0, max((end - start).total_seconds() - 7_200, 1)))
    c.add("bank.interaction.v1", at, {"kind": "login", "channel": "mobile"})
    for attempt in range(rng.randint(3, 5)):
        c.add(
            "bank.interaction.v1",
            at + timedelta(minutes=5 + attempt),
            {"kind": "login_failed", "channel": "mobile"},
        )
    if rng.random() < 0.6:
        c.add("bank.interaction.v1", at + timedelta(minutes=30), {"kind": "support_call", "channel": "phone"})


def _experience(c: _Customer, start: datetime, end: datetime) -> None:
    """Now and then something goes wrong; complaints follow, and later surveys score lower."""
    rng = c.rng
    if rng.random() < BAD_EXPERIENCE_RATE[c.branch.kind]:
        at = c.within(start, end)
        c.bad_at.append(at)
        c.add("bank.interaction.v1", at, {"kind": "inquiry", "channel": "phone"})
        if rng.random() < 0.35:
            _complaint(c, at + timedelta(hours=rng.uniform(1, 48)))
    if rng.random() < 0.08:  # a periodic relationship survey
        _maybe_survey(c, c.within(start, end), "nps", 1.0)


def _complaint(c: _Customer, opened: datetime) -> None:
    rng = c.rng
    severity = rng.choices(("low", "medium", "high", "critical"), weights=(50, 35, 12, 3))[0]
    c.seq += 1
    data: dict[str, Any] = {
        "customer_id": c.customer_id,
        "complaint_id": f"{c.customer_id}-K{c.seq}",
        "severity": severity,
        "category": rng.choice(("card", "transfer", "fees", "service", "app")),
        "status": "open",
        "opened_at": opened.isoformat(),
    }
    c.records.append((opened, _event(data["complaint_id"], COMPLAINT, opened, data)))
    resolved = opened + timedelta(hours=rng.lognormvariate(math.log(72), 0.8))
    if rng.random() < 0.85 and resolved < c.bank.end:
        update = data | {"status": "resolved", "resolved_at": resolved.isoformat()}
        c.records.append((resolved, _event(f"{data['complaint_id']}-resolved", COMPLAINT, resolved, update)))


def _maybe_survey(c: _Customer, at: datetime, kind: str, chance: float) -> None:
    rng = c.rng
    if rng.random() >= chance * 0.4:  # most invitations go unanswered
        return
    answered = at + timedelta(hours=rng.uniform(2, 72))
    penalty = 4.0 if c.recently_bad(answered) else 0.0
    nps = min(10.0, max(0.0, rng.gauss(c.persona.nps_base - penalty, 1.4)))
    score = round(nps) if kind == "nps" else max(1, min(5, round(1 + nps * 0.4)))
    c.seq += 1
    survey_id = f"{c.customer_id}-S{c.seq}"
    data = {
        "customer_id": c.customer_id,
        "survey_id": survey_id,
        "kind": kind,
        "score": score,
        "answered_at": answered.isoformat(),
    }
    c.records.append((answered, _event(survey_id, SURVEY, answered, data)))


def _one_large_deposit(c: _Customer, at: datetime, aum: float) -> None:
    """A windfall parked for days, then moved out: the case hysteresis exists for."""
    rng = c.rng
    windfall = rng.uniform(2_000_000, 8_000_000)
    gone = at + timedelta(days=rng.uniform(3, 20))
    c.add("bank.transaction.v1", at, _txn(f"{windfall:.2f}", "credit", "deposit", "branch"))
    c.add("bank.balance.v1", at + timedelta(minutes=10), {"aum": f"{aum + windfall:.2f}", "currency": "CNY"})
    c.add("bank.transaction.v1", gone, _txn(f"{windfall:.2f}", "debit", "transfer", "online"))
    c.add("bank.balance.v1", gone + timedelta(minutes=10), {"aum": f"{aum:.2f}", "currency": "CNY"})


def _txn(amount: str, direction: str, category: str, channel: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "CNY",
        "direction": direction,
        "category": category,
        "channel": channel,
    }


# -- households ------------------------------------------------------------------------------

HOUSEHOLD_BLOCK = 20
"""Households are drawn per block of this many consecutive customers, so a customer's household
is known without drawing the rest of the bank (and a household never spans two blocks)."""
HOUSEHOLD_START = 0.13
"""chance that a household begins at a customer, with the customers after them as its other
members: about three customers in ten live in one"""
HOUSEHOLD_KINDS = {"couple": 0.45, "family": 0.35, "retirees": 0.2}
JOINT_SHARE = 0.25
"""share of households whose assets are split so that they reach wealth or private only together"""
JOINT_PRIVATE = 0.2
"""of those, the share that reach private (the rest reach wealth)"""
GATES = {Tier.WEALTH: 500_000.0, Tier.PRIVATE: 6_000_000.0}
"""The default policy's gates on the 30-day average AUM (a unit test holds them to it)."""
MOST_OF_GATE = 0.62
"""No member of a household that reaches a gate only together starts above this share of it:
a year's growth keeps them below it on their own."""
MOVE_RATE = 0.1
"""chance that a member other than the primary moves to another household or leaves theirs"""
MOVE_TO_ANOTHER = 0.6
"""of the members who go, the share who join another household (the rest leave for none)"""
ADULT_INSTEAD = {"student": "salaried", "business": "salaried"}
"""An adult member drawn as a student or a business is a salaried person: households are people."""


@dataclass(frozen=True)
class Member:
    index: int
    role: HouseholdRole
    # The persona the member's place in the household implies (None: the one drawn for them).
    persona: str | None = None
    # The AUM the member starts the year with when the household's assets are split (None: drawn).
    aum: float | None = None


@dataclass(frozen=True)
class Household:
    household_id: str
    kind: str
    members: tuple[Member, ...]  # the primary first
    # The tier whose gate the members' assets pass only together, if the household is one of those.
    together: Tier | None = None


def household_of(bank: Bank, index: int) -> tuple[Household, Member] | None:
    """The household customer `index` starts the year in, and their place in it."""
    for household in _block_households(bank, index // HOUSEHOLD_BLOCK):
        for member in household.members:
            if member.index == index:
                return household, member
    return None


def households(bank: Bank) -> Iterator[Household]:
    """Every household of the bank as the year begins, in customer order."""
    for block in range(0, math.ceil(bank.customers / HOUSEHOLD_BLOCK)):
        yield from _block_households(bank, block)


@lru_cache(maxsize=256)
def _block_households(bank: Bank, block: int) -> tuple[Household, ...]:
    rng = random.Random(bank.seed * 9_000_011 + block)
    first = block * HOUSEHOLD_BLOCK
    last = min(first + HOUSEHOLD_BLOCK, bank.customers)
    made: list[Household] = []
    index = first
    while index < last:
        if rng.random() >= HOUSEHOLD_START:
            index += 1
            continue
        kind = rng.choices(list(HOUSEHOLD_KINDS), weights=list(HOUSEHOLD_KINDS.values()))[0]
        places = _places(rng, kind)
        together = _together(rng)
        if len(places) > last - index:  # it would not fit in the block: these stay single
            index += 1
            continue
        members = tuple(
            _member(rng, index + n, role, persona, together, len(places))
            for n, (role, persona) in enumerate(places)
        )
        made.append(Household(f"H{index:08d}", kind, members, together))
        index += len(places)
    return tuple(made)


def _places(rng: random.Random, kind: str) -> list[tuple[HouseholdRole, str | None]]:
    """Roles and the personas they imply: children are students, the older generation retirees."""
    couple: list[tuple[HouseholdRole, str | None]] = [
        (HouseholdRole.PRIMARY, None),
        (HouseholdRole.SPOUSE, None),
    ]
    if kind == "couple":
        return couple
    if kind == "family":
        return couple + [(HouseholdRole.CHILD, "student")] * rng.randint(1, 2)
    if rng.random() < 0.5:  # the retirees head the household, their adult children in it
        retirees = [(HouseholdRole.PRIMARY, "retiree"), (HouseholdRole.SPOUSE, "retiree")]
        return retirees + [(HouseholdRole.CHILD, None)] * rng.randint(1, 2)
    # an adult child heads it, with their retired parents
    return [(HouseholdRole.PRIMARY, None)] + [(HouseholdRole.PARENT, "retiree")] * rng.randint(1, 2)


def _together(rng: random.Random) -> Tier | None:
    if rng.random() >= JOINT_SHARE:
        return None
    return Tier.PRIVATE if rng.random() < JOINT_PRIVATE else Tier.WEALTH


def _member(
    rng: random.Random, index: int, role: HouseholdRole, persona: str | None, together: Tier | None, size: int
) -> Member:
    if together is None:
        return Member(index, role, persona)
    # Each member holds between 1.15/size and MOST_OF_GATE of the gate: below it alone, at
    # least 15% above it together.
    gate = GATES[together]
    aum = gate * rng.uniform(1.15 / size, MOST_OF_GATE)
    return Member(index, role, persona or "affluent", round(aum, 2))


def _household_move(c: _Customer, first: datetime, household: Household, member: Member) -> None:
    """Some members other than the primary join another household of their block, or leave
    theirs, during the year (from a stream of their own: the rest of their life is as before)."""
    rng = random.Random(c.bank.seed * 5_000_011 + c.index)
    if member.role is HouseholdRole.PRIMARY or rng.random() >= MOVE_RATE:
        return
    earliest, latest = first + MONTH, c.bank.end - MONTH
    if earliest >= latest:
        return
    at = earliest + (latest - earliest) * rng.random()
    others = [
        h.household_id
        for h in _block_households(c.bank, c.index // HOUSEHOLD_BLOCK)
        if h.household_id != household.household_id
    ]
    if others and rng.random() < MOVE_TO_ANOTHER:
        c.add(
            "bank.customer.v1",
            at,
            {"household_id": rng.choice(others), "household_role": HouseholdRole.OTHER.value},
        )
    else:
        c.add("bank.customer.v1", at, {"household_id": None})


def records(bank: Bank) -> Iterator[Event]:
    """Every record of the bank (core-banking events and feedback); within each cohort, in time order."""
    bank_branches, scales = branches(bank), _activity_scales(bank)
    for first in range(0, bank.customers, bank.cohort):
        yield from _cohort(
            bank, range(first, min(first + bank.cohort, bank.customers)), bank_branches, scales
        )


def _cohort(
    bank: Bank, indexes: range, bank_branches: tuple[Branch, ...], scales: tuple[float, float]
) -> Iterator[Event]:
    # Its own frame, so one cohort is released before the next is built.
    lives = [sorted(_customer_records(bank, i, bank_branches, scales), key=lambda r: r[0]) for i in indexes]
    for _, record in heapq.merge(*lives, key=lambda r: r[0]):
        yield record


def events(bank: Bank) -> Iterator[Event]:
    """The core-banking events only (what `bank.events.v1` carries)."""
    return (record for record in records(bank) if is_bank_event(record))


def is_bank_event(record: Event) -> bool:
    return str(record["type"]).startswith("bank.")


def with_faults(
    stream: Iterator[Event], invalid_rate: float, duplicate_rate: float, seed: int
) -> Iterator[Event]:
    """Add invalid events (with ids of their own) and resends (same id) to exercise error paths.

    Every good record is still emitted, once plus its resends, so the expected end state is
    the one of the clean stream.
    """
    rng = random.Random(seed * 7_919 + 1)
    for record in stream:
        if is_bank_event(record) and rng.random() < invalid_rate:
            yield corrupt(record, rng)
        yield record
        if rng.random() < duplicate_rate:
            yield record


def is_invalid(record: Event) -> bool:
    return str(record["id"]).endswith("-invalid")


def corrupt(event: Event, rng: random.Random) -> Event:
    broken = {**event, "id": f"{event['id']}-invalid", "data": dict(event["data"])}
    fault = rng.randrange(4)
    if fault == 0:
        broken["type"] = "bank.unknown.v1"
    elif fault == 1:
        broken["time"] = broken["time"][:19]  # no offset: a naive time
    elif fault == 2:
        del broken["data"]["customer_id"]
    else:
        broken["specversion"] = "0.3"
    return broken
