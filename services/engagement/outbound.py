"""Outreach lifecycle events (`engagement.outreach_<status>.v1`) and follow-up survey requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.contracts.outbound import OUTREACH_TYPE_PREFIX, SURVEY_REQUESTED
from shared.publishing import EventSource, OutboxMessage

SOURCE = EventSource("tierflow/engagement", uuid.UUID("2c6f0a8e-61b8-4bb5-8d1e-7f6c3c0a1b11"))

# An event about an item, built from its stored row at a moment.
OutreachEvent = Callable[[dict[str, Any], datetime], OutboxMessage]


def outreach_event(item: dict[str, Any], at: datetime) -> OutboxMessage:
    """One transition of one item; the id is stable for the same item and status."""
    status = item["status"]
    data = {
        "outreach_id": str(item["id"]),
        "customer_id": item["customer_id"],
        "action": item["kind"],
        "channel": item["channel"],
        "priority": item["priority"],
        "status": status,
        "due_at": _iso(item["due_at"]),
        "sla_due_at": _iso(item["sla_due_at"]),
        "expires_at": _iso(item["expires_at"]),
        "trigger_event_id": item["trigger_event_id"],
        "assigned_to": item["assigned_to"],
        "reason": item["cancel_reason"] or item["reason"],
        "outcome": item["outcome"],
        "category": item["category"],
        "template": item["template"],
        "product": item["product"],
        "tier": item["context_tier"],
        "stage": item["context_stage"],
        "branch_id": item["branch_id"],
        "experiment": item["experiment"],
        "household_id": item["household_id"],
        "covered_by": None if item["covered_by"] is None else str(item["covered_by"]),
    }
    event_type = f"{OUTREACH_TYPE_PREFIX}{status}.v1"
    return SOURCE.event(f"{item['id']}|{status}", event_type, at, item["customer_id"], data)


def survey_request(item: dict[str, Any], at: datetime) -> OutboxMessage:
    data = {
        "outreach_id": str(item["id"]),
        "customer_id": item["customer_id"],
        "action": item["kind"],
        "outcome": item["outcome"],
        "tier": item["context_tier"],
        "channel": item["channel"],
        "requested_at": at.isoformat(),
    }
    return SOURCE.event(f"{item['id']}|survey", SURVEY_REQUESTED, at, item["customer_id"], data)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
