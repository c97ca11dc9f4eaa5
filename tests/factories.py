"""Contract events as a core banking system would send them, and the events TierFlow's services
send each other, built by the code that publishes them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.engagement.outbound import survey_request
from services.scoring.domain.customer import TierChange, Trigger
from services.scoring.domain.evaluation import Reason
from services.scoring.domain.features import Complaint, Features, seconds_of
from services.scoring.domain.household import Contribution, Published
from services.scoring.domain.profile import ProfileChange
from services.scoring.household_messages import contribution_event
from services.scoring.outbound import customer_erased_event, profile_changed_event, tier_changed_event
from shared.contracts.outbound import ChangeDirection, EventCause
from shared.contracts.types import HouseholdRole, Stage, Tier


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


ALL_CONSENTS = {"phone": True, "sms": True, "email": True, "app": True}


def tier_change(
    customer_id: str, previous: tuple[str | None, str | None], current: tuple[str, str], **context: Any
) -> dict[str, Any]:
    """A `customer.tier_changed.v1` as scoring publishes it."""
    rank = {None: -1, "mass": 0, "vip": 1, "wealth": 2, "private": 3}
    direction = (
        "upgrade"
        if rank[current[0]] > rank[previous[0]]
        else "downgrade"
        if rank[current[0]] < rank[previous[0]]
        else "stage"
    )
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "tierflow/scoring",
        "type": "customer.tier_changed.v1", "time": datetime.now(UTC).isoformat(),
        "data": {
            "customer_id": customer_id, "previous_tier": previous[0], "tier": current[0],
            "previous_stage": previous[1], "stage": current[1], "direction": direction, "score": 50.0,
            "policy_version": "default-1", "reasons": [], "trigger": "event",
            "caused_by": {"source": "core-banking", "id": "evt"},
            "profile": {"rm_id": "RM-7", "branch_id": "B1", "consents": ALL_CONSENTS, "risk_profile": "C2"},
            "complaints_open_high": 0, **context,
        },
    }  # fmt: skip


def with_envelope(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**event, **overrides}


def with_data(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], **overrides}}


def without_data_field(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {**event, "data": {k: v for k, v in event["data"].items() if k != name}}


ALL_TYPES = (customer, transaction, balance, interaction)


def survey(customer_id: str = "C0001", **data: Any) -> dict[str, Any]:
    """A `feedback.survey.v1` as feedback publishes it."""
    payload = {
        "customer_id": customer_id,
        "survey_id": f"S-{uuid.uuid4().hex[:12]}",
        "kind": "nps",
        "score": 9,
        "answered_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        **data,
    }
    return _envelope("feedback.survey.v1", payload, source="tierflow/feedback")


def complaint(customer_id: str = "C0001", **data: Any) -> dict[str, Any]:
    """A `feedback.complaint.v1` as feedback publishes it."""
    payload = {
        "customer_id": customer_id,
        "complaint_id": f"K-{uuid.uuid4().hex[:12]}",
        "severity": "high",
        "category": "fees",
        "status": "open",
        "opened_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        **data,
    }
    return _envelope("feedback.complaint.v1", payload, source="tierflow/feedback")


PROFILE = {
    "branch_id": "BR-SH-001",
    "rm_id": "RM-017",
    "segment": "individual",
    "region": "urban",
    "risk_profile": "C3",
    "consents": {"phone": True, "sms": False},
    "timezone": "Asia/Shanghai",
    "opened_at": "2024-03-01T01:00:00Z",
}


def tier_changed(
    customer_id: str = "C0001", trigger: Trigger = Trigger.EVENT, at: datetime | None = None
) -> dict[str, Any]:
    """A `customer.tier_changed.v1` as scoring publishes it, with the context it adds."""
    moment = at or datetime.now(UTC) - timedelta(minutes=1)
    features = Features(
        # 620,000 under management, in deposits and funds: two products held.
        balances=((seconds_of(moment - timedelta(days=40)), Decimal("620000.00")),),
        breakdown={"deposits": Decimal("120000.00"), "funds": Decimal("500000.00")},
        profile=PROFILE,
        nps_latest=9,
        complaints={"K1": Complaint("high", "open", 0), "K2": Complaint("critical", "in_progress", 0)},
    )
    change = TierChange(
        id=str(uuid.uuid4()),
        customer_id=customer_id,
        previous_tier=Tier.MASS,
        tier=Tier.WEALTH,
        previous_stage=Stage.NEW,
        stage=Stage.CORE,
        direction=ChangeDirection.UPGRADE,
        score=71.5,
        policy_version="default-1",
        reasons=(Reason("tier.wealth", "aum_avg_30d 620000 >= 500000"),),
        caused_by=EventCause(source="core-banking", id="evt 1"),
        trigger=trigger,
        at=moment,
        features=features,
    )
    event: dict[str, Any] = json.loads(tier_changed_event(change).value)
    return event


def profile_changed(customer_id: str = "C0001", at: datetime | None = None) -> dict[str, Any]:
    """A `customer.profile_changed.v1` as scoring publishes it: a branch transfer."""
    change = ProfileChange(
        id=str(uuid.uuid4()),
        customer_id=customer_id,
        at=at or datetime.now(UTC) - timedelta(minutes=1),
        changed=("branch_id",),
        previous_branch_id="BR-SH-002",
        previous_rm_id=None,
        features=Features(profile=PROFILE),
    )
    event: dict[str, Any] = json.loads(profile_changed_event(change).value)
    return event


def household_contribution(household_id: str = "H0001", at: datetime | None = None) -> dict[str, Any]:
    """A `tierflow.household.contribution.v1` as scoring publishes it, keyed by household."""
    moment = at or datetime.now(UTC) - timedelta(minutes=1)
    contribution = Contribution(
        household_id=household_id,
        member_id=f"{household_id}-M1",
        role=HouseholdRole.PRIMARY,
        role_since=moment,
        aum=Decimal("620000.00"),
        aum_avg_30d=Decimal("610000"),
        aum_avg_90d=Decimal("600000"),
        products=("deposits", "funds"),
        tier=Tier.WEALTH,
        rm_id="BR-SH-001-RM1",
        branch_id="BR-SH-001",
    )
    published = Published(household_id, f"{household_id}-M1", 1, moment, contribution)
    event: dict[str, Any] = json.loads(contribution_event(published).value)
    return event


def customer_erased(customer_id: str = "C0001", at: datetime | None = None) -> dict[str, Any]:
    """A `customer.erased.v1` as scoring publishes it."""
    message = customer_erased_event(customer_id, str(uuid.uuid4()), at or datetime.now(UTC))
    event: dict[str, Any] = json.loads(message.value)
    return event


def survey_requested(customer_id: str = "C0001", at: datetime | None = None) -> dict[str, Any]:
    """An `engagement.survey_requested.v1` as engagement publishes it."""
    item = {
        "id": uuid.uuid4(),
        "customer_id": customer_id,
        "kind": "welcome_call",
        "outcome": "reached",
        "context_tier": "wealth",
        "channel": "phone",
    }
    event: dict[str, Any] = json.loads(
        survey_request(item, at or datetime.now(UTC) - timedelta(minutes=1)).value
    )
    return event
