"""Scoring-domain events without any I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.scoring.domain.customer import CustomerState, TierChange, apply
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.policy import Policy, default_policy
from shared.contracts.inbound import (
    BALANCE,
    CUSTOMER,
    INTERACTION,
    TRANSACTION,
    BalanceData,
    CustomerData,
    InteractionData,
    TransactionData,
)
from shared.contracts.outbound import COMPLAINT, SURVEY, ComplaintData, SurveyData

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SOURCE = "core-banking"
_ids = itertools.count(1)


DEFAULT_POLICY = default_policy()


def run(
    *events: tuple[ScoringEvent, Decimal | None],
    policy: Policy = DEFAULT_POLICY,
    state: CustomerState | None = None,
) -> tuple[CustomerState, list[TierChange]]:
    """Apply events in order with the clock at each event's time (replay semantics)."""
    state = state or CustomerState.new("C1")
    changes: list[TierChange] = []
    for event, amount in events:
        state, new = apply(state, event, amount, policy, event.time)
        changes += new
    return state, changes


def days(n: float) -> timedelta:
    return timedelta(days=n)


def txn(
    at: datetime, amount: str = "100.00", customer: str = "C1", **extra: Any
) -> tuple[ScoringEvent, Decimal]:
    data = TransactionData.model_validate(
        {"customer_id": customer, "amount": amount, "currency": "CNY", "direction": "credit", **extra}
    )
    return ScoringEvent(SOURCE, f"e{next(_ids)}", TRANSACTION, at, data), Decimal(amount)


def balance(at: datetime, aum: str, customer: str = "C1", **extra: Any) -> tuple[ScoringEvent, Decimal]:
    data = BalanceData.model_validate({"customer_id": customer, "aum": aum, "currency": "CNY", **extra})
    return ScoringEvent(SOURCE, f"e{next(_ids)}", BALANCE, at, data), Decimal(aum)


def interaction(
    at: datetime, kind: str = "login", customer: str = "C1", channel: str = "mobile"
) -> tuple[ScoringEvent, None]:
    data = InteractionData.model_validate({"customer_id": customer, "kind": kind, "channel": channel})
    return ScoringEvent(SOURCE, f"e{next(_ids)}", INTERACTION, at, data), None


def profile(at: datetime, customer: str = "C1", **fields: Any) -> tuple[ScoringEvent, None]:
    data = CustomerData.model_validate({"customer_id": customer, **fields})
    return ScoringEvent(SOURCE, f"e{next(_ids)}", CUSTOMER, at, data), None


def survey(at: datetime, score: int, kind: str = "nps", customer: str = "C1") -> tuple[ScoringEvent, None]:
    data = SurveyData.model_validate(
        {"customer_id": customer, "survey_id": f"S{next(_ids)}", "kind": kind, "score": score}
    )
    return ScoringEvent(SOURCE, f"e{next(_ids)}", SURVEY, at, data), None


def complaint(
    at: datetime, complaint_id: str, severity: str, status: str, customer: str = "C1"
) -> tuple[ScoringEvent, None]:
    data = ComplaintData.model_validate(
        {
            "customer_id": customer,
            "complaint_id": complaint_id,
            "severity": severity,
            "category": "service",
            "status": status,
        }
    )
    return ScoringEvent(SOURCE, f"e{next(_ids)}", COMPLAINT, at, data), None
