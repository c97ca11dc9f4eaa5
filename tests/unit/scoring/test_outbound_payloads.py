"""What scoring writes for a tier change (its CloudEvent, its history reasons) is what the contract
models make of it, byte for byte, over a simulated bank's stream and the edge cases of the bounds."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.scoring.domain.codec import encode, reason_json
from services.scoring.domain.customer import CustomerState, TierChange, apply
from services.scoring.domain.evaluation import Reason, ReasonCondition
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.money import amount_in_base
from services.scoring.domain.policy import default_policy
from services.scoring.handlers import SCORED_MODELS
from services.scoring.outbound import customer_context, holdings, tier_changed_event
from services.scoring.store import _reasons_json, _state_json
from shared.contracts.envelope import CloudEvent, ValidationRules, decode_json, validate_event
from shared.contracts.outbound import TIER_CHANGED, TierChangedData
from shared.contracts.outbound import Reason as ReasonData
from shared.contracts.outbound import ReasonCondition as ReasonConditionData
from shared.publishing import OutboxMessage, compact_json, customer_event
from tierflow.simulate import Bank, events

START = datetime(2026, 1, 1, tzinfo=UTC)


def through_the_model(change: TierChange) -> OutboxMessage:
    """The event as the contract model validates and dumps it."""
    data = TierChangedData(
        customer_id=change.customer_id,
        previous_tier=change.previous_tier,
        tier=change.tier,
        previous_stage=change.previous_stage,
        stage=change.stage,
        direction=change.direction,
        score=change.score,
        policy_version=change.policy_version,
        reasons=[
            ReasonData(
                rule=r.rule,
                detail=r.detail[:500],
                conditions=[ReasonConditionData(**c._asdict()) for c in r.conditions[:50]],
            )
            for r in change.reasons[:50]
        ],
        caused_by=change.caused_by,
        labels=list(change.labels),
        labels_entered=list(change.labels_entered),
        labels_left=list(change.labels_left),
    )
    return customer_event(
        event_id=change.id,
        source="tierflow/scoring",
        event_type=TIER_CHANGED,
        time=change.at,
        customer_id=change.customer_id,
        data={
            **data.model_dump(mode="json"),
            "trigger": change.trigger.value,
            **customer_context(change.features),
            **holdings(change.features, change.at),
        },
    )


@pytest.fixture(scope="module")
def bank_changes(bank: tuple[list[TierChange], list[CustomerState]]) -> list[TierChange]:
    """The tier changes of 60 simulated customers' year, applied as the worker applies them."""
    return bank[0]


@pytest.fixture(scope="module")
def bank_states(bank: tuple[list[TierChange], list[CustomerState]]) -> list[CustomerState]:
    """Every state those customers went through, one per event."""
    return bank[1]


@pytest.fixture(scope="module")
def bank() -> tuple[list[TierChange], list[CustomerState]]:
    policy = default_policy()
    rules = ValidationRules(START + timedelta(days=400), timedelta(minutes=5), lambda _c: True, SCORED_MODELS)
    states: dict[str, CustomerState] = {}
    changes: list[TierChange] = []
    history: list[CustomerState] = []
    for record in events(Bank(customers=60, events_per_customer=25, start=START)):
        valid = validate_event(decode_json(json.dumps(record).encode()), rules)
        event = ScoringEvent(
            valid.envelope.source, valid.envelope.id, valid.envelope.type, valid.envelope.time, valid.data
        )
        state = states.get(event.customer_id) or CustomerState.new(event.customer_id)
        amount = amount_in_base(event.data, "CNY", {})
        states[event.customer_id], new = apply(state, event, amount, policy, event.time)
        changes += new
        history.append(states[event.customer_id])
    return changes, history


def test_a_bank_s_tier_changes_are_published_as_the_contract_model_makes_them(
    bank_changes: list[TierChange],
) -> None:
    assert len(bank_changes) > 50
    assert {c.direction.value for c in bank_changes} >= {"upgrade", "labels"}
    for change in bank_changes:
        assert tier_changed_event(change) == through_the_model(change)


def test_a_published_tier_change_validates_against_the_contract(bank_changes: list[TierChange]) -> None:
    for change in bank_changes[:20]:
        envelope = CloudEvent.model_validate_json(tier_changed_event(change).value)
        assert envelope.type == TIER_CHANGED
        data = TierChangedData.model_validate(envelope.data)
        assert data.customer_id == change.customer_id
        assert [r.rule for r in data.reasons] == [r.rule for r in change.reasons]


def _edge(change: TierChange, **fields: Any) -> TierChange:
    return replace(change, **fields)


def test_bounds_text_and_causes_are_published_as_the_contract_model_makes_them(
    bank_changes: list[TierChange],
) -> None:
    change = bank_changes[0]
    many_conditions = tuple(ReasonCondition(f"f{i}", "gte", str(i), "0") for i in range(60))
    profile = {**change.features.profile, "branch_id": "分行-01", "consents": {"sms": True}}
    edges = [
        _edge(change, reasons=(Reason("tier.vip", "é" * 700),)),
        _edge(change, reasons=tuple(Reason(f"rule.{i}", "line\nbreak\ttab") for i in range(70))),
        _edge(change, reasons=(Reason("tier.vip", "many", many_conditions),)),
        _edge(change, score=3),
        _edge(change, caused_by="review"),
        _edge(change, caused_by="override", previous_tier=None, previous_stage=None),
        _edge(change, labels=("digital_first", "investment_intent"), labels_left=("branch_reliant",)),
        _edge(change, features=replace(change.features, profile=profile, nps_latest=9)),
    ]
    for edge in edges:
        assert tier_changed_event(edge) == through_the_model(edge)


@pytest.mark.parametrize(
    "fields",
    [
        {"customer_id": "bad id"},
        {"policy_version": ""},
        {"labels": ("Not-A-Label",)},
        {"labels_entered": tuple(f"l{i}" for i in range(51))},
        {"reasons": (Reason("tier\x00vip", "detail"),)},
        {"reasons": (Reason("tier.vip", "nul \x00 inside"),)},
        {"reasons": (Reason("tier.vip", "d", (ReasonCondition("aum", "gte", "9" * 65, "1"),)),)},
        {"reasons": (Reason("tier.vip", "d", (ReasonCondition("aum", "about", "1", "1"),)),)},
        {"caused_by": "bogus"},
        {"previous_tier": "VIP"},
        {"tier": None},
        {"stage": "dormant"},
        {"previous_stage": 3},
        {"direction": "sideways"},
        {"score": "fifty"},
    ],
)
def test_what_the_contract_refuses_is_still_refused(
    bank_changes: list[TierChange], fields: dict[str, Any]
) -> None:
    change = _edge(bank_changes[0], **fields)
    with pytest.raises(ValidationError):
        through_the_model(change)
    with pytest.raises(ValidationError):
        tier_changed_event(change)


def test_history_reasons_are_the_reasons_as_the_api_serves_them(bank_changes: list[TierChange]) -> None:
    odd = (Reason("tier.vip", '分行 "quoted"', (ReasonCondition("aum", "gte", "1", "0"),)), Reason("x", "y"))
    for reasons in [c.reasons for c in bank_changes] + [(), odd]:
        assert _reasons_json(reasons) == json.dumps([reason_json(r) for r in reasons])


def test_holdings_keep_decimal_strings_exact(bank_changes: list[TierChange]) -> None:
    change = bank_changes[0]
    balances = ((0, Decimal("1234567890123456789012.3456")),)
    published = json.loads(
        tier_changed_event(_edge(change, features=replace(change.features, balances=balances))).value
    )
    assert published["data"]["aum"] == "1234567890123456789012.3456"


def _standard_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_published_payloads_are_what_the_standard_encoder_writes(bank_changes: list[TierChange]) -> None:
    for change in bank_changes:
        event = json.loads(tier_changed_event(change).value)
        assert compact_json(event) == _standard_json(event)
    edges = {"text": '分行 "quoted"\n\t\u2028', "score": 523.4, "none": None, "flags": [True, False]}
    assert compact_json(edges) == _standard_json(edges)


def test_what_orjson_refuses_is_written_by_the_standard_encoder() -> None:
    beyond_64_bits = {"count": 2**70, "minus": -(2**65)}
    assert compact_json(beyond_64_bits) == _standard_json(beyond_64_bits)
    assert compact_json({1: "numbered"}) == b'{"1":"numbered"}'
    with pytest.raises(TypeError):
        compact_json({"amount": Decimal("1.5")})


def test_numbers_keep_their_value_however_they_are_spelled() -> None:
    for number in (1e-05, 1e16, 1.5e300, -0.0, 0.1 + 0.2):
        assert json.loads(compact_json({"n": number})) == {"n": number}


def test_stored_states_are_the_json_the_standard_encoder_writes(bank_states: list[CustomerState]) -> None:
    decided = [s for s in bank_states if s.decision is not None]
    assert len(decided) > 1000
    for state in decided:
        assert state.decision is not None
        written = _state_json(state, state.decision.score)
        assert written == json.dumps(encode(state), separators=(",", ":"), ensure_ascii=False)


def test_a_state_whose_score_is_not_finite_is_written_as_postgresql_refuses_it(
    bank_states: list[CustomerState],
) -> None:
    state = next(s for s in bank_states if s.decision is not None)
    assert state.decision is not None
    broken = replace(state, decision=replace(state.decision, score=math.nan))
    assert '"score":NaN' in _state_json(broken, math.nan)


@dataclass(frozen=True)
class _Unencoded:
    amount: str


@pytest.mark.parametrize(
    "slipped",
    [datetime(2026, 1, 1, tzinfo=UTC), _Unencoded("1.5")],
    ids=["a datetime", "a dataclass"],
)
def test_a_value_the_standard_encoder_refuses_is_still_refused(slipped: object) -> None:
    # A time or a domain object left unencoded in a payload used to fail loudly; it must not now
    # reach subscribers or a state row in orjson's own spelling.
    with pytest.raises(TypeError):
        _standard_json({"value": slipped})
    with pytest.raises(TypeError):
        compact_json({"value": slipped})
