"""Contract events as a core banking system would send them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def _envelope(event_type: str, data: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4()}",
        "source": "core-banking/test",
        "type": event_type,
        "time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "data": data,
    }
    event.update(overrides)
    return event


def customer(customer_id: str = "C0001", **data: Any) -> dict[str, Any]:
    payload = {
        "customer_id": customer_id,
        "branch_id": "BR-SH-001",
        "segment": "individual",
        "region": "urban",
        "risk_profile": "C3",
        "opened_at": "2024-03-01T09:00:00+08:00",
        "rm_id": "RM-017",
        "consents": {"phone": True, "sms": True, "email": False, "app": True},
        **data,
    }
    return _envelope("bank.customer.v1", payload)


def transaction(customer_id: str = "C0001", amount: Any = "1250.40", **data: Any) -> dict[str, Any]:
    payload = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "CNY",
        "direction": "credit",
        "category": "deposit",
        "channel": "mobile",
        "transaction_id": f"T-{uuid.uuid4().hex[:12]}",
        **data,
    }
    return _envelope("bank.transaction.v1", payload)


def balance(customer_id: str = "C0001", aum: Any = "620000.00", **data: Any) -> dict[str, Any]:
    payload = {
        "customer_id": customer_id,
        "aum": aum,
        "currency": "CNY",
        "as_of": "2026-11-01T00:00:00+08:00",
        "breakdown": {"deposits": "120000.00", "wealth": "500000.00"},
        **data,
    }
    return _envelope("bank.balance.v1", payload)


def interaction(customer_id: str = "C0001", kind: str = "login", **data: Any) -> dict[str, Any]:
    return _envelope(
        "bank.interaction.v1", {"customer_id": customer_id, "kind": kind, "channel": "mobile", **data}
    )


def with_envelope(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**event, **overrides}


def with_data(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], **overrides}}


def without_data_field(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {**event, "data": {k: v for k, v in event["data"].items() if k != name}}


ALL_TYPES = (customer, transaction, balance, interaction)
