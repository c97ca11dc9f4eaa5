"""A deterministic synthetic bank: customers drawn from personas, their events over time.

The same seed always yields the same stream. Customers are generated a cohort at a time,
so memory stays flat whatever the population size.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COHORT = 1_000
CHANNELS = ("mobile", "online", "branch", "atm", "rm", "phone")


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    aum_median: float
    aum_sigma: float
    txn_per_month: float
    amount_median: float
    risk_profiles: tuple[str, ...]


PERSONAS = (
    Persona("salaried", 0.55, 20_000, 1.0, 12, 300, ("C2", "C3")),
    Persona("student", 0.15, 2_000, 1.0, 15, 60, ("C3", "C4")),
    Persona("retiree", 0.12, 150_000, 0.8, 4, 800, ("C1", "C2")),
    Persona("affluent", 0.12, 900_000, 0.7, 8, 8_000, ("C3", "C4", "C5")),
    Persona("private", 0.02, 9_000_000, 0.5, 6, 80_000, ("C4", "C5")),
    Persona("drifting", 0.04, 60_000, 1.0, 3, 500, ("C2", "C3")),
)


@dataclass(frozen=True)
class Bank:
    customers: int
    events_per_customer: float
    seed: int = 42
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    days: int = 365
    branches: int = 20


def _event(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "tierflow/simulator",
        "type": event_type,
        "time": at.isoformat(),
        "data": data,
    }


def _persona(rng: random.Random) -> Persona:
    return rng.choices(PERSONAS, weights=[p.weight for p in PERSONAS])[0]


def _customer_events(bank: Bank, index: int) -> list[tuple[datetime, dict[str, Any]]]:
    rng = random.Random(bank.seed * 1_000_003 + index)
    persona = _persona(rng)
    customer_id = f"C{index:08d}"
    opened = bank.start + timedelta(days=rng.uniform(0, bank.days * 0.3))
    branch = f"BR{rng.randrange(bank.branches):03d}"
    events: list[tuple[datetime, dict[str, Any]]] = []
    seq = 0

    def add(event_type: str, at: datetime, data: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        events.append(
            (at, _event(f"{customer_id}-{seq}", event_type, at, {"customer_id": customer_id, **data}))
        )

    add(
        "bank.customer.v1",
        opened,
        {
            "branch_id": branch,
            "segment": "individual",
            "region": rng.choice(("urban", "urban", "rural", "overseas")),
            "risk_profile": rng.choice(persona.risk_profiles),
            "opened_at": opened.isoformat(),
            "rm_id": f"RM{rng.randrange(bank.branches * 4):03d}",
            "consents": {"phone": True, "sms": rng.random() > 0.1, "email": rng.random() > 0.3, "app": True},
        },
    )
    aum = rng.lognormvariate(0, persona.aum_sigma) * persona.aum_median
    budget = max(2, int(rng.expovariate(1 / bank.events_per_customer)))
    span = (bank.start + timedelta(days=bank.days) - opened).total_seconds()
    for _ in range(budget - 1):
        at = opened + timedelta(seconds=rng.uniform(0, span))
        kind = rng.random()
        if persona.name == "drifting" and at > opened + timedelta(days=120):
            continue  # activity stops: the review finds the silence
        if kind < 0.12:
            aum = max(0.0, aum * rng.uniform(0.9, 1.12))
            add("bank.balance.v1", at, {"aum": f"{aum:.2f}", "currency": "CNY"})
        elif kind < 0.25:
            add(
                "bank.interaction.v1",
                at,
                {
                    "kind": rng.choice(("login", "login", "call", "branch_visit")),
                    "channel": rng.choice(CHANNELS),
                },
            )
        else:
            amount = rng.lognormvariate(0, 0.8) * persona.amount_median
            add(
                "bank.transaction.v1",
                at,
                {
                    "amount": f"{max(amount, 0.01):.2f}",
                    "currency": "CNY",
                    "direction": rng.choice(("credit", "debit")),
                    "category": rng.choice(("deposit", "withdrawal", "transfer", "purchase", "investment")),
                    "channel": rng.choice(CHANNELS),
                },
            )
    return events


def events(bank: Bank) -> Iterator[dict[str, Any]]:
    """Every event of the bank; within each cohort of customers, in time order."""
    for first in range(0, bank.customers, COHORT):
        cohort = [_customer_events(bank, i) for i in range(first, min(first + COHORT, bank.customers))]
        for _, event in heapq.merge(*(sorted(c, key=lambda e: e[0]) for c in cohort), key=lambda e: e[0]):
            yield event


def with_faults(
    stream: Iterator[dict[str, Any]], invalid_rate: float, duplicate_rate: float, seed: int
) -> Iterator[dict[str, Any]]:
    """Add invalid events (with ids of their own) and resends (same id) to exercise error paths.

    Every good event is still emitted exactly once more than its resends, so the expected
    end state is the one of the clean stream.
    """
    rng = random.Random(seed * 7_919 + 1)
    for event in stream:
        if rng.random() < invalid_rate:
            yield corrupt(event, rng)
        yield event
        if rng.random() < duplicate_rate:
            yield event


def corrupt(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
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
