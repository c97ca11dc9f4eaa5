"""Outreach lifecycle events (`engagement.outreach_<status>.v1`) and follow-up survey requests."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from shared.contracts.outbound import OUTREACH_TYPE_PREFIX

SOURCE = "tierflow/engagement"
SURVEY_REQUESTED = "engagement.survey_requested.v1"
_IDS = uuid.UUID("2c6f0a8e-61b8-4bb5-8d1e-7f6c3c0a1b11")


def outreach_event(item: dict[str, Any], at: datetime) -> bytes:
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
    }
    return _cloudevent(
        f"{item['id']}|{status}", f"{OUTREACH_TYPE_PREFIX}{status}.v1", at, item["customer_id"], data
    )


def survey_request(item: dict[str, Any], at: datetime) -> bytes:
    data = {
        "outreach_id": str(item["id"]),
        "customer_id": item["customer_id"],
        "action": item["kind"],
        "outcome": item["outcome"],
        "tier": item["context_tier"],
        "channel": item["channel"],
        "requested_at": at.isoformat(),
    }
    return _cloudevent(f"{item['id']}|survey", SURVEY_REQUESTED, at, item["customer_id"], data)


def _cloudevent(seed: str, event_type: str, at: datetime, customer_id: str, data: dict[str, Any]) -> bytes:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid5(_IDS, seed)),
        "source": SOURCE,
        "type": event_type,
        "time": at.isoformat(),
        "subject": customer_id,
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
