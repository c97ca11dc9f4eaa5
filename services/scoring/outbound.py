"""Tier changes as `customer.tier_changed.v1` CloudEvents (the outbox holds these bytes)."""

from __future__ import annotations

import json

from services.scoring.domain.customer import CustomerState, TierChange
from services.scoring.domain.features import open_complaints
from shared.contracts.outbound import TIER_CHANGED, Reason, TierChangedData

SOURCE = "tierflow/scoring"


def tier_changed_event(change: TierChange, context: dict[str, object] | None = None) -> bytes:
    """The CloudEvent; `context` adds what subscribers need to act (profile, consents, complaints)."""
    data = TierChangedData(
        customer_id=change.customer_id,
        previous_tier=change.previous_tier,
        tier=change.tier,
        previous_stage=change.previous_stage,
        stage=change.stage,
        direction=change.direction,
        score=change.score,
        policy_version=change.policy_version,
        reasons=[Reason(rule=r.rule, detail=r.detail[:500]) for r in change.reasons],
        caused_by=change.caused_by,
    )
    event = {
        "specversion": "1.0",
        "id": change.id,
        "source": SOURCE,
        "type": TIER_CHANGED,
        "time": change.at.isoformat(),
        "subject": change.customer_id,
        "datacontenttype": "application/json",
        "data": {**data.model_dump(mode="json"), "trigger": change.trigger.value, **(context or {})},
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


PROFILE_FIELDS = ("branch_id", "rm_id", "segment", "region", "risk_profile", "consents", "timezone")


def customer_context(state: CustomerState) -> dict[str, object]:
    """What a subscriber needs to act on a change without asking back: profile and complaints."""
    profile = state.features.profile
    complaints = open_complaints(state.features)
    return {
        "profile": {name: profile[name] for name in PROFILE_FIELDS if name in profile},
        "complaints_open_high": complaints.get("high", 0) + complaints.get("critical", 0),
        "nps_latest": state.features.nps_latest,
    }
