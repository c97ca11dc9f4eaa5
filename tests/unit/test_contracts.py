from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.contracts.envelope import InvalidEvent, ValidationRules, decode_json, validate_event
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import ComplaintData, EventCause, SurveyData, TierChangedData
from tests import factories

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def rules(accepted: frozenset[str] = frozenset({"CNY"})) -> ValidationRules:
    return ValidationRules(
        now=NOW,
        max_future_skew=timedelta(minutes=5),
        accepts_currency=accepted.__contains__,
        data_models=INBOUND_DATA_MODELS,
    )


def validate(raw: dict[str, object]) -> object:
    # Through bytes, as the wire delivers it: numbers must stay exact.
    return validate_event(decode_json(json.dumps(raw).encode()), rules())


def errors_of(raw: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as caught:
        validate(raw)
    return {e.field: e.message for e in caught.value.errors}


def at(event: dict[str, object], time: datetime) -> dict[str, object]:
    return factories.with_envelope(event, time=time.isoformat())


@pytest.mark.parametrize("make", factories.ALL_TYPES)
def test_every_contract_event_type_round_trips_through_its_wire_form(make: object) -> None:
    event = at(make(), NOW - timedelta(hours=1))  # type: ignore[operator]
    first = validate_event(decode_json(json.dumps(event).encode()), rules())
    second = validate_event(decode_json(first.to_bytes()), rules())
    assert second.to_wire() == first.to_wire()
    assert second.customer_id == event["data"]["customer_id"]  # type: ignore[index]
    assert first.envelope.id == event["id"]


def test_money_is_published_as_a_decimal_string_never_a_float() -> None:
    raw = b'{"specversion":"1.0","id":"a","source":"s","type":"bank.transaction.v1",'
    raw += b'"time":"2026-11-22T10:00:00+08:00","data":{"customer_id":"C1","amount":18250.40,'
    raw += b'"currency":"CNY","direction":"credit"}}'
    wire = validate_event(decode_json(raw), rules()).to_wire()
    assert wire["data"]["amount"] == "18250.40"


@given(
    amount=st.decimals(
        min_value=Decimal("0.0001"), max_value=Decimal("999999999999"), places=4, allow_nan=False
    )
)
def test_any_positive_four_place_amount_survives_the_round_trip_exactly(amount: Decimal) -> None:
    event = at(factories.transaction(amount=str(amount)), NOW)
    published = validate_event(decode_json(json.dumps(event).encode()), rules()).to_bytes()
    assert Decimal(json.loads(published)["data"]["amount"]) == amount


@pytest.mark.parametrize(
    ("amount", "message_part"),
    [
        ("-5", "greater than 0"),
        ("0", "greater than 0"),
        ("abc", "valid decimal"),
        ("NaN", "finite"),
        ("12.345678", "decimal places"),
        (True, "binary float"),
    ],
)
def test_bad_amounts_are_refused_with_the_field_named(amount: object, message_part: str) -> None:
    errors = errors_of(at(factories.transaction(amount=amount), NOW))
    assert message_part in errors["data.amount"]


def test_float_garbage_in_the_json_body_is_refused() -> None:
    body = json.dumps(at(factories.transaction(), NOW)).replace('"1250.40"', "0.30000000000000004")
    with pytest.raises(InvalidEvent) as caught:
        validate_event(decode_json(body.encode()), rules())
    assert [e.field for e in caught.value.errors] == ["data.amount"]


def test_nan_literal_in_json_is_refused_at_decoding() -> None:
    with pytest.raises(ValueError, match="NaN"):
        decode_json(b'{"amount": NaN}')


def test_a_missing_required_field_is_named() -> None:
    errors = errors_of(factories.without_data_field(at(factories.transaction(), NOW), "currency"))
    assert errors == {"data.currency": "Field required"}


def test_a_naive_time_is_refused() -> None:
    errors = errors_of(factories.with_envelope(factories.transaction(), time="2026-11-22T10:00:00"))
    assert "timezone" in errors["time"]


def test_a_time_more_than_five_minutes_ahead_is_refused_but_backfill_is_accepted() -> None:
    assert "future" in errors_of(at(factories.transaction(), NOW + timedelta(minutes=6)))["time"]
    validate(at(factories.transaction(), NOW + timedelta(minutes=4)))
    validate(at(factories.transaction(), NOW - timedelta(days=3650)))


def test_a_currency_without_a_rate_is_refused_and_a_malformed_one_too() -> None:
    assert "exchange rate" in errors_of(at(factories.transaction(currency="USD"), NOW))["data.currency"]
    assert "data.currency" in errors_of(at(factories.transaction(currency="cny"), NOW))


def test_a_configured_rate_admits_another_currency() -> None:
    event = at(factories.transaction(currency="USD"), NOW)
    valid = validate_event(decode_json(json.dumps(event).encode()), rules(frozenset({"CNY", "USD"})))
    assert valid.to_wire()["data"]["currency"] == "USD"


def test_an_unknown_event_type_is_refused_with_the_known_types_listed() -> None:
    errors = errors_of(factories.with_envelope(factories.transaction(), type="bank.loan.v1"))
    assert "bank.transaction.v1" in errors["type"]


def test_wrong_types_and_unknown_fields_are_each_named() -> None:
    event = factories.with_data(at(factories.interaction(), NOW), kind=7, channel="pigeon", colour="red")
    assert set(errors_of(event)) == {"data.kind", "data.channel", "data.colour"}


def test_consents_must_be_true_booleans() -> None:
    event = factories.with_data(at(factories.customer(), NOW), consents={"sms": "yes"})
    assert "data.consents.sms" in errors_of(event)


def test_envelope_bounds_are_enforced() -> None:
    assert "id" in errors_of(factories.with_envelope(at(factories.transaction(), NOW), id="x" * 129))
    assert "id" in errors_of(factories.with_envelope(at(factories.transaction(), NOW), id=""))
    assert "specversion" in errors_of(
        factories.with_envelope(at(factories.transaction(), NOW), specversion="0.3")
    )
    assert "data.customer_id" in errors_of(
        factories.with_data(at(factories.transaction(), NOW), customer_id="C" * 65)
    )


def test_extension_attributes_are_allowed_only_with_valid_names() -> None:
    validate(factories.with_envelope(at(factories.transaction(), NOW), traceparent="00-abc"))
    with pytest.raises(InvalidEvent):
        validate(factories.with_envelope(at(factories.transaction(), NOW), **{"Bad-Name": "x"}))


def test_validation_errors_never_echo_the_input() -> None:
    secret = "13812345678"
    with pytest.raises(InvalidEvent) as caught:
        validate(factories.with_data(at(factories.customer(), NOW), rm_id=f"{secret} {secret}"))
    assert secret not in str(caught.value)


def test_survey_scores_are_checked_against_the_survey_kind() -> None:
    SurveyData.model_validate({"customer_id": "C1", "survey_id": "S1", "kind": "nps", "score": 0})
    with pytest.raises(ValueError, match="between 1 and 5"):
        SurveyData.model_validate({"customer_id": "C1", "survey_id": "S1", "kind": "csat", "score": 0})


def test_outbound_models_tolerate_fields_added_later() -> None:
    change = TierChangedData.model_validate(
        {
            "customer_id": "C1", "previous_tier": None, "tier": "vip", "previous_stage": None,
            "stage": "new", "direction": "upgrade", "score": 55.0, "policy_version": "default-1",
            "reasons": [{"rule": "aum_gate", "detail": "aum_avg_30d 60000 >= 50000"}],
            "caused_by": {"source": "core-banking", "id": "evt-1"}, "added_in_v1_1": True,
        }
    )  # fmt: skip
    assert change.tier.value == "vip"
    complaint = {
        "customer_id": "C1",
        "complaint_id": "K1",
        "severity": "high",
        "category": "fees",
        "status": "open",
    }
    assert ComplaintData.model_validate(complaint).severity.value == "high"


@given(source=st.text(min_size=1, max_size=256), event_id=st.text(min_size=1, max_size=128))
@example(source="core-banking", event_id="evt 1")
def test_every_event_ingest_accepts_can_be_named_as_the_cause_of_a_tier_change(
    source: str, event_id: str
) -> None:
    try:
        valid = validate_event(
            factories.with_envelope(at(factories.customer(), NOW), source=source, id=event_id), rules()
        )
    except InvalidEvent:
        return
    cause = {"source": valid.envelope.source, "id": valid.envelope.id}
    change = TierChangedData.model_validate(
        {
            "customer_id": "C1", "previous_tier": None, "tier": "vip", "previous_stage": None,
            "stage": "new", "direction": "upgrade", "score": 55.0, "policy_version": "default-1",
            "reasons": [], "caused_by": cause,
        }
    )  # fmt: skip
    assert change.caused_by == EventCause(source=source, id=event_id)
