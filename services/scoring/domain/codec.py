"""The customer state as JSON (for the `state` column) and back, losslessly.

Money stays a decimal string; times are ISO 8601 with offset; days are ordinals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.scoring.domain.customer import CustomerState
from services.scoring.domain.evaluation import (
    Decision,
    HeldLabel,
    Later,
    Override,
    Reason,
    ReasonCondition,
    ReviewTimes,
    detail_of,
)
from services.scoring.domain.features import Complaint, DayBucket, Features
from shared.contracts.types import Stage, Tier

FORMAT = 1


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _required_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def encode(state: CustomerState) -> dict[str, Any]:
    f = state.features
    # A state names the same moment several times (its last event's time as the last
    # transaction, the evaluation and often a label's start): each is written out once.
    # Keyed by identity, not equality: equal moments in other offsets are written differently.
    # Each entry holds its object, so no id is reused by another time while the state is encoded.
    shown: dict[int, tuple[datetime, str]] = {}

    def time(value: datetime | None) -> str | None:
        if value is None:
            return None
        entry = shown.get(id(value))
        if entry is None:
            entry = shown[id(value)] = (value, value.isoformat())
        return entry[1]

    return {
        "format": FORMAT,
        "features": {
            "first_seen_at": time(f.first_seen_at),
            "txn_count": f.txn_count,
            "txn_amount": str(f.txn_amount),
            "first_txn_at": time(f.first_txn_at),
            "last_txn_at": time(f.last_txn_at),
            "interaction_count": f.interaction_count,
            "last_interaction_at": time(f.last_interaction_at),
            "days": {str(d): _encode_bucket(b) for d, b in f.days.items()},
            "balances": [[t, str(v)] for t, v in f.balances],
            "breakdown": {k: str(v) for k, v in f.breakdown.items()},
            "products_seen": f.products_seen,
            "channels": f.channels,
            "profile": f.profile,
            "profile_at": time(f.profile_at),
            "nps_latest": f.nps_latest,
            "nps_at": time(f.nps_at),
            "csat_sum": f.csat_sum,
            "csat_count": f.csat_count,
            "complaints": {k: [c.severity, c.status, c.updated_at] for k, c in f.complaints.items()},
        },
        "decision": None if state.decision is None else _encode_decision(state.decision, time),
        "override": None if state.override is None else _encode_override(state.override),
    }


def _encode_bucket(b: DayBucket) -> list[Any]:
    # Most days have no inflow and no digital trouble: such a day keeps its short form.
    if b.credits or b.support_calls or b.login_failures:
        return [
            b.txn_count,
            str(b.txn_amount),
            b.interactions,
            b.credits,
            str(b.credit_amount),
            b.support_calls,
            b.login_failures,
        ]
    return [b.txn_count, str(b.txn_amount), b.interactions]


def _decode_bucket(b: list[Any]) -> DayBucket:
    if len(b) == 3:  # a day without inflows or digital trouble, or one stored before they were counted
        return DayBucket(b[0], Decimal(b[1]), b[2])
    return DayBucket(b[0], Decimal(b[1]), b[2], b[3], Decimal(b[4]), b[5], b[6])


def _encode_decision(d: Decision, time: Callable[[datetime | None], str | None]) -> dict[str, Any]:
    return {
        "tier": d.tier.value,
        "stage": d.stage.value,
        "score": d.score,
        "reasons": [_encode_reason(r) for r in d.reasons],
        "policy_version": d.policy_version,
        "evaluated_at": time(d.evaluated_at),
        "tier_since": time(d.tier_since),
        "policy_tier": d.policy_tier.value,
        "below_gate_since": time(d.below_gate_since),
        "due_at": time(d.due_at),
        "next_review_at": time(d.next_review_at),
        "clv": str(d.clv),
        "labels": [
            [h.name, h.dimension, time(h.since), *_encode_reason(h.reason), time(h.outside_since)]
            for h in d.labels
        ],
    }


def _encode_reason(r: Reason) -> list[Any]:
    # The detail is the conditions in words: a reason with conditions keeps only them, so the
    # state grows no larger than before they were kept; one without keeps its detail, as then.
    return [r.rule, [list(c) for c in r.conditions] if r.conditions else r.detail]


def reason_json(r: Reason) -> dict[str, Any]:
    """A reason as the API serves it and the tier history keeps it."""
    return {"rule": r.rule, "detail": r.detail, "conditions": [c._asdict() for c in r.conditions]}


def _decode_reason(rule: str, kept: str | list[list[str]]) -> Reason:
    if isinstance(kept, str):
        return Reason(rule, kept)
    conditions = tuple(ReasonCondition(*c) for c in kept)
    return Reason(rule, detail_of(conditions), conditions)


def _encode_override(o: Override) -> dict[str, Any]:
    return {
        "tier": o.tier.value,
        "reason": o.reason,
        "expires_at": _time(o.expires_at),
        "set_by": o.set_by,
        "set_at": _time(o.set_at),
    }


def decode(customer_id: str, raw: dict[str, Any]) -> CustomerState:
    f = raw["features"]
    features = Features(
        first_seen_at=_parse_time(f["first_seen_at"]),
        txn_count=f["txn_count"],
        txn_amount=Decimal(f["txn_amount"]),
        first_txn_at=_parse_time(f["first_txn_at"]),
        last_txn_at=_parse_time(f["last_txn_at"]),
        interaction_count=f["interaction_count"],
        last_interaction_at=_parse_time(f["last_interaction_at"]),
        days={int(d): _decode_bucket(b) for d, b in f["days"].items()},
        balances=tuple((t, Decimal(v)) for t, v in f["balances"]),
        breakdown={k: Decimal(v) for k, v in f["breakdown"].items()},
        products_seen=dict(f["products_seen"]),
        channels=dict(f["channels"]),
        profile=dict(f["profile"]),
        profile_at=_parse_time(f["profile_at"]),
        nps_latest=f["nps_latest"],
        nps_at=_parse_time(f["nps_at"]),
        csat_sum=f["csat_sum"],
        csat_count=f["csat_count"],
        complaints={k: Complaint(c[0], c[1], c[2]) for k, c in f["complaints"].items()},
    )
    decision = None if raw["decision"] is None else _decode_decision(raw["decision"])
    override = None if raw["override"] is None else _decode_override(raw["override"])
    return CustomerState(customer_id=customer_id, features=features, decision=decision, override=override)


def _decode_decision(d: dict[str, Any]) -> Decision:
    return Decision(
        tier=Tier(d["tier"]),
        stage=Stage(d["stage"]),
        score=d["score"],
        reasons=tuple(_decode_reason(*r) for r in d["reasons"]),
        policy_version=d["policy_version"],
        evaluated_at=_required_time(d["evaluated_at"]),
        tier_since=_required_time(d["tier_since"]),
        policy_tier=Tier(d["policy_tier"]),
        below_gate_since=_parse_time(d["below_gate_since"]),
        review_times=Later.known(ReviewTimes(_parse_time(d["due_at"]), _required_time(d["next_review_at"]))),
        lifetime_value=Later.known(Decimal(d["clv"])),
        labels=tuple(
            HeldLabel(
                name,
                dimension,
                _required_time(since),
                _decode_reason(rule, kept),
                _parse_time(outside),
            )
            for name, dimension, since, rule, kept, outside in d.get("labels", ())
        ),
    )


def _decode_override(o: dict[str, Any]) -> Override:
    return Override(
        tier=Tier(o["tier"]),
        reason=o["reason"],
        expires_at=_required_time(o["expires_at"]),
        set_by=o["set_by"],
        set_at=_required_time(o["set_at"]),
    )
