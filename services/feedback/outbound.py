"""Accepted feedback as `feedback.survey.v1` / `feedback.complaint.v1` CloudEvents, keyed by customer."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from shared.contracts.outbound import COMPLAINT, SURVEY

SOURCE = "tierflow/feedback"
_IDS = uuid.UUID("4d1b9d52-3f8e-4a5e-9a57-6a2c8e0b7c33")


def survey_event(data: dict[str, Any], at: datetime) -> bytes:
    return _event(f"survey|{data['survey_id']}", SURVEY, at, data)


def complaint_event(data: dict[str, Any], at: datetime) -> bytes:
    return _event(f"complaint|{data['complaint_id']}|{data['status']}", COMPLAINT, at, data)


def _event(seed: str, event_type: str, at: datetime, data: dict[str, Any]) -> bytes:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid5(_IDS, seed)),
        "source": SOURCE,
        "type": event_type,
        "time": at.isoformat(),
        "subject": data["customer_id"],
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
