from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.contracts.envelope import (
    MAX_DATA_VALUES,
    InvalidEvent,
    TimeBounds,
    ValidationRules,
    ValidEvent,
    decode_json,
    validate_event,
)
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import ComplaintData, EventCause, SurveyData, TierChangedData
from shared.contracts.types import NOT_PRINTABLE, CustomerIdPath
from shared.settings import Settings
from tests import factories

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def rules(accepted: frozenset[str] = frozenset({"CNY"})) -> ValidationRules:
    return ValidationRules(
        now=NOW,
        max_future_skew=timedelta(minutes=5),
        accepts_currency=accepted.__contains__,
        data_models=INBOUND_DATA_MODELS,
    )


def validate(raw: dict[str, object]) -> ValidEvent:
    # Through bytes, as the wire delivers it: numbers must stay exact.
    return validate_event(decode_json(json.dumps(raw).encode()), rules())


def errors_of(raw: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as caught:
        validate(raw)
    return {e.field: e.message for e in caught.value.errors}


def at(event: dict[str, object], time: datetime) -> dict[str, object]:
    return factories.with_envelope(event, time=time.isoformat())


@pytest.mark.parametrize("make", factories.ALL_TYPES)
def test_every_contract_event_type_round_trips_through_its_wire_form(
    make: Callable[[], dict[str, Any]],
) -> None:
    made = make()
    event = at(made, NOW - timedelta(hours=1))
    first = validate_event(decode_json(json.dumps(event).encode()), rules())
    second = validate_event(decode_json(first.to_bytes()), rules())
    assert second.to_wire() == first.to_wire()
    assert second.customer_id == made["data"]["customer_id"]
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
        ("abc", "plain decimal"),
        ("NaN", "plain decimal"),
        ("12.345678", "decimal places"),
        (True, "binary float"),
    ],
)
def test_bad_amounts_are_refused_with_the_field_named(amount: object, message_part: str) -> None:
    errors = errors_of(at(factories.transaction(amount=amount), NOW))
    assert message_part in errors["data.amount"]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12345678901234567890123", "Decimal input should have no more than 22 digits in total"),
        ("1234567890123456789.12345", "Decimal input should have no more than 22 digits in total"),
        (
            "123456789012345678901.5",
            "Decimal input should have no more than 18 digits before the decimal point",
        ),
        ("12.345678", "Decimal input should have no more than 4 decimal places"),
        (f"{10**24}", "Decimal input should have no more than 22 digits in total"),
        ("-0", "Input should be greater than 0"),
    ],
)
def test_an_amount_past_the_money_bounds_is_refused_with_the_bound_it_passes(
    amount: str, message: str
) -> None:
    assert errors_of(at(factories.transaction(amount=amount), NOW)) == {"data.amount": message}


@pytest.mark.parametrize("amount", ["1.00000", "123456789012345678.00000000", "999999999999999999.9999"])
def test_trailing_zeros_do_not_count_against_the_money_bounds(amount: str) -> None:
    assert getattr(validate(at(factories.transaction(amount=amount), NOW)).data, "amount") == Decimal(amount)  # noqa: B009


def test_float_garbage_in_the_json_body_is_refused() -> None:
    body = json.dumps(at(factories.transaction(), NOW)).replace('"1250.40"', "0.30000000000000004")
    with pytest.raises(InvalidEvent, match="no more than 4 decimal places") as caught:
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
    with pytest.raises(InvalidEvent, match="unknown attribute 'Bad-Name'"):
        validate(factories.with_envelope(at(factories.transaction(), NOW), **{"Bad-Name": "x"}))


def test_validation_errors_never_echo_the_input() -> None:
    secret = "13812345678"
    with pytest.raises(InvalidEvent, match=r"^data\.rm_id: String should match pattern") as caught:
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


def test_a_balance_dated_in_the_year_9999_is_refused_as_from_the_future() -> None:
    # Accepted, it would be the newest balance point for good: every real balance after it
    # falls outside its 90-day horizon and the customer's average balance never moves again.
    errors = errors_of(factories.with_data(at(factories.balance(), NOW), as_of="9999-12-31T00:00:00Z"))
    assert errors == {"data.as_of": "is more than 5 minutes in the future"}


def test_payload_times_follow_the_envelope_skew_rule() -> None:
    validate(
        factories.with_data(at(factories.balance(), NOW), as_of=(NOW + timedelta(minutes=4)).isoformat())
    )
    late = (NOW + timedelta(minutes=6)).isoformat()
    assert "future" in errors_of(factories.with_data(at(factories.balance(), NOW), as_of=late))["data.as_of"]
    assert (
        "future"
        in errors_of(factories.with_data(at(factories.customer(), NOW), opened_at=late))["data.opened_at"]
    )


COMPLAINT = {"complaint_id": "K1", "severity": "low", "category": "fees"}


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (SurveyData, {"survey_id": "S1", "kind": "nps", "score": 9}, "answered_at"),
        (ComplaintData, {**COMPLAINT, "status": "open"}, "opened_at"),
        (ComplaintData, {**COMPLAINT, "status": "resolved"}, "resolved_at"),
    ],
)  # fmt: skip
def test_feedback_times_are_refused_ahead_of_the_clock_they_are_validated_against(
    model: type[SurveyData | ComplaintData], payload: dict[str, object], field: str
) -> None:
    bounds = TimeBounds(now=NOW, max_future_skew=timedelta(minutes=5))
    fine = {"customer_id": "C1", **payload, field: (NOW + timedelta(minutes=4)).isoformat()}
    model.model_validate(fine, context=bounds.context())
    with pytest.raises(ValidationError, match="in the future"):
        model.model_validate({**fine, field: "9999-12-31T00:00:00Z"}, context=bounds.context())


def test_no_event_time_before_1970_and_no_payload_time_before_1900_is_accepted() -> None:
    assert (
        "1970" in errors_of(at(factories.transaction(), datetime(1969, 12, 31, 23, 59, tzinfo=UTC)))["time"]
    )
    old_account = factories.with_data(at(factories.customer(), NOW), opened_at="1899-12-31T00:00:00Z")
    assert "1900" in errors_of(old_account)["data.opened_at"]
    validate(at(factories.transaction(), datetime(1970, 1, 1, tzinfo=UTC)))
    validate(factories.with_data(at(factories.customer(), NOW), opened_at="1900-01-01T00:00:00Z"))


@pytest.mark.parametrize(
    "amount",
    [
        "5_000",
        "1E+21",
        "1e3",
        "12\n",
        "\u0661\u0662\u0663",  # Arabic-Indic digits
        "\uff11\uff12\uff13",  # full-width digits
        " 12",
        "12 ",
        "1 000",
        "+5",
        "1,5",
        "1.2.3",
        ".5",
        "5.",
        "0x1F",
    ],
)
def test_money_text_is_a_plain_decimal_or_is_refused_with_the_field_named(amount: str) -> None:
    assert "plain decimal" in errors_of(at(factories.transaction(amount=amount), NOW))["data.amount"]


@pytest.mark.parametrize(
    ("number", "published"),
    [(b"1e2", "100"), (b"12.50", "12.50"), (b"999999999999999999.9999", "999999999999999999.9999")],
)
def test_an_exact_json_number_is_published_as_plain_decimal_text(number: bytes, published: str) -> None:
    body = json.dumps(at(factories.transaction(), NOW)).replace('"1250.40"', number.decode()).encode()
    assert validate_event(decode_json(body), rules()).to_wire()["data"]["amount"] == published


@pytest.mark.parametrize("number", [b"1e30", b"1000000000000000000", b"0.00001", b"1E-999999999", b"1" * 400])
def test_json_numbers_are_bounded_like_money_text(number: bytes) -> None:
    body = json.dumps(at(factories.transaction(), NOW)).replace('"1250.40"', number.decode()).encode()
    with pytest.raises(InvalidEvent) as caught:
        validate_event(decode_json(body), rules())
    assert [e.field for e in caught.value.errors] == ["data.amount"]


def test_negative_zero_is_published_as_zero() -> None:
    valid = validate(factories.with_data(at(factories.balance(), NOW), aum="-0.00", breakdown=None))
    assert valid.to_wire()["data"]["aum"] == "0.00"


HIDDEN_CHARACTERS = ["a\x00b", "a\x1fb", "a\x85b", "a\u202eb", "a\u2066b", "a\u200bb", "a\ufeffb", "a\ud800b"]
EDGE_SPACES = [" a", "a ", "\u3000a", "a\xa0", "\ta", "a\n"]


@pytest.mark.parametrize("bad", [*HIDDEN_CHARACTERS, *EDGE_SPACES, ""])
@pytest.mark.parametrize(("field", "longest"), [("id", 128), ("source", 256)])
def test_event_ids_and_sources_refuse_hidden_characters_surrounding_whitespace_and_excess(
    field: str, longest: int, bad: str
) -> None:
    event = at(factories.transaction(), NOW)
    assert field in errors_of(factories.with_envelope(event, **{field: bad}))
    assert field in errors_of(factories.with_envelope(event, **{field: "x" * (longest + 1)}))
    validate(factories.with_envelope(event, **{field: "x" * longest}))


@pytest.mark.parametrize("good", ["evt 1", "évènement-1", "事件/1", "a\u00a0b", "x" * 128])
def test_any_printable_event_id_is_accepted_and_a_tier_change_caused_by_it_too(good: str) -> None:
    assert validate(factories.with_envelope(at(factories.transaction(), NOW), id=good)).envelope.id == good
    cause = {"source": "core-banking", "id": good}
    caused = TierChangedData.model_validate({**TIER_CHANGE, "caused_by": cause}).caused_by
    assert caused == EventCause(source="core-banking", id=good)


@pytest.mark.parametrize("bad", HIDDEN_CHARACTERS + EDGE_SPACES + [""])
def test_a_tier_change_caused_by_what_no_event_id_could_be_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="caused_by"):
        TierChangedData.model_validate({**TIER_CHANGE, "caused_by": {"source": "core-banking", "id": bad}})


def test_causes_named_by_the_longest_source_and_id_fit() -> None:
    cause = {"source": "s" * 256, "id": "i" * 128}
    caused = TierChangedData.model_validate({**TIER_CHANGE, "caused_by": cause}).caused_by
    assert caused == EventCause(source="s" * 256, id="i" * 128)


def test_extension_values_refuse_hidden_characters() -> None:
    assert "(event)" in errors_of(
        factories.with_envelope(at(factories.transaction(), NOW), traceparent="00\x00")
    )


def test_data_with_too_many_values_is_refused_with_one_error_not_one_per_member() -> None:
    crowded = factories.with_data(
        at(factories.interaction(), NOW), **{f"x{n}": n for n in range(MAX_DATA_VALUES)}
    )
    assert errors_of(crowded) == {"data": f"holds more than {MAX_DATA_VALUES} values"}
    nested = factories.with_data(at(factories.customer(), NOW), consents={f"x{n}": True for n in range(500)})
    assert errors_of(nested) == {"data": f"holds more than {MAX_DATA_VALUES} values"}


TIER_CHANGE: dict[str, object] = {
    "customer_id": "C1", "previous_tier": None, "tier": "vip", "previous_stage": None, "stage": "new",
    "direction": "upgrade", "score": 55.0, "policy_version": "default-1", "reasons": [],
    "caused_by": {"source": "core-banking", "id": "evt-1"},
}  # fmt: skip


@pytest.mark.parametrize("service", ["ingest", "scoring", "engagement", "feedback"])
def test_every_path_parameter_is_bounded_like_the_field_it_names(service: str) -> None:
    app = importlib.import_module(f"services.{service}.bootstrap").build_app(Settings(api_keys="k=admin"))
    parameters = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in app.openapi()["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    ]
    assert parameters
    unbounded = [(path, name) for path, name, schema in parameters if not {"pattern", "format"} & set(schema)]
    assert not unbounded


@pytest.mark.parametrize("bad", ["C\x01", "C\u202e1", " C1", "C1 ", "C" * 65, "C 1"])
def test_a_customer_id_in_a_path_is_held_to_the_body_rule(bad: str) -> None:
    with pytest.raises(ValidationError, match="string_pattern_mismatch"):
        TypeAdapter(CustomerIdPath).validate_python(bad)


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


def test_a_nul_in_a_profile_s_free_text_is_refused_at_intake_with_the_field_named() -> None:
    # Accepted, it would be dead-lettered later: PostgreSQL cannot store a NUL.
    errors = errors_of(factories.with_data(at(factories.customer(), NOW), region="north\x00"))
    assert errors == {"data.region": NOT_PRINTABLE}


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (SurveyData, {"survey_id": "S1", "kind": "nps", "score": 9, "comment": "fine\x00"}, "comment"),
        (SurveyData, {"survey_id": "S1", "kind": "nps", "score": 9, "comment": "fine\u202e"}, "comment"),
        (ComplaintData, {"complaint_id": "K1", "severity": "low", "category": "fees\x00"}, "category"),
    ],
)  # fmt: skip
def test_free_text_refuses_hidden_characters(
    model: type[SurveyData | ComplaintData], payload: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        model.model_validate({"customer_id": "C1", **payload})


def test_free_text_keeps_line_breaks_and_tabs() -> None:
    survey = {"customer_id": "C1", "survey_id": "S1", "kind": "nps", "score": 9, "comment": "one\n\ttwo\r\n"}
    assert SurveyData.model_validate(survey).comment == "one\n\ttwo\r\n"


def test_a_household_membership_is_an_identifier_and_a_known_role() -> None:
    event = validate(
        factories.with_data(at(factories.customer(), NOW), household_id="H1234", household_role="spouse")
    )
    assert (
        event.to_wire()["data"] | {"household_id": "H1234", "household_role": "spouse"}
        == event.to_wire()["data"]
    )
    errors = errors_of(
        factories.with_data(at(factories.customer(), NOW), household_id="H 1", household_role="cousin")
    )
    assert set(errors) == {"data.household_id", "data.household_role"}


def test_an_explicit_null_household_survives_the_wire_while_other_nulls_are_dropped() -> None:
    leaving = factories.with_data(at(factories.customer(), NOW), household_id=None, region=None)
    wire = validate(validate(leaving).to_wire()).to_wire()
    assert wire["data"]["household_id"] is None
    assert "region" not in wire["data"]
    assert "household_id" not in validate(at(factories.customer(), NOW)).to_wire()["data"]


def test_a_customer_leaving_a_household_cannot_hold_a_role_in_it() -> None:
    leaving = factories.with_data(at(factories.customer(), NOW), household_id=None, household_role="primary")
    assert "household_role needs a household_id" in errors_of(leaving)["data"]
