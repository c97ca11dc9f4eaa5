"""The typed models of the events TierFlow's services read from each other: they take what the
producers publish today and refuse wrong or missing data with every field named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.scoring.domain.customer import Trigger
from shared.contracts.envelope import InvalidEvent
from shared.contracts.inbound import Consents
from shared.contracts.internal import (
    INTERNAL_DATA_MODELS,
    SURVEY_REQUESTED,
    ChangeTrigger,
    SurveyRequested,
    TierChanged,
    decode_internal_event,
    decode_survey_requested,
    decode_tier_changed,
)
from shared.contracts.outbound import TIER_CHANGED, EventCause
from shared.contracts.types import RiskProfile, Stage, Tier
from tests import factories

CONTEXT_FIELDS = ("profile", "complaints_open_high", "nps_latest", "aum", "products_held")
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def published_tier_change(trigger: Trigger = Trigger.EVENT, with_context: bool = True) -> bytes:
    event = factories.tier_changed(trigger=trigger, at=AT)
    if not with_context:
        # Tier changes published before scoring added the context carry none of it.
        event["data"] = {k: v for k, v in event["data"].items() if k not in CONTEXT_FIELDS}
    return json.dumps(event).encode()


def published_survey_request() -> bytes:
    return json.dumps(factories.survey_requested(at=AT)).encode()


def data_of(value: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(value)["data"]
    return data


def problems(decode: Any, data: object) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as caught:
        decode(data)
    return {e.field: e.message for e in caught.value.errors}


def test_a_tier_change_as_scoring_publishes_it_decodes_with_its_context() -> None:
    change = decode_tier_changed(data_of(published_tier_change()))
    assert (change.tier, change.stage, change.caused_by) == (
        Tier.WEALTH,
        Stage.CORE,
        EventCause(source="core-banking", id="evt 1"),
    )
    assert change.trigger is ChangeTrigger.EVENT
    assert change.profile.branch_id == "BR-SH-001"
    assert change.profile.risk_profile is RiskProfile.C3
    assert change.profile.consents == Consents(phone=True, sms=False)
    assert change.complaints_open_high == 2
    assert change.nps_latest == 9
    assert (change.aum, change.products_held) == (Decimal("620000.00"), 2)


@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_trigger_scoring_has_is_one_the_contract_knows(trigger: Trigger) -> None:
    assert decode_tier_changed(data_of(published_tier_change(trigger))).trigger == ChangeTrigger(
        trigger.value
    )


def test_a_tier_change_without_context_reads_as_an_empty_profile_and_no_complaints() -> None:
    change = decode_tier_changed(data_of(published_tier_change(with_context=False)))
    assert change.profile.branch_id is None
    assert (change.complaints_open_high, change.nps_latest) == (0, None)
    assert (change.aum, change.products_held) == (None, None)


def test_a_survey_request_as_engagement_publishes_it_decodes() -> None:
    request = decode_survey_requested(data_of(published_survey_request()))
    assert (request.customer_id, request.action, request.tier) == ("C0001", "welcome_call", Tier.WEALTH)
    assert request.requested_at == AT


def test_a_whole_record_decodes_to_its_envelope_and_typed_data() -> None:
    decoded = decode_internal_event(published_tier_change(), INTERNAL_DATA_MODELS)
    assert decoded is not None
    assert isinstance(decoded.data, TierChanged)
    assert decoded.envelope.type == TIER_CHANGED
    assert decoded.customer_id == "C0001"
    request = decode_internal_event(published_survey_request(), INTERNAL_DATA_MODELS)
    assert isinstance(getattr(request, "data", None), SurveyRequested)


def test_a_record_of_a_type_the_consumer_does_not_read_is_not_decoded() -> None:
    assert decode_internal_event(published_survey_request(), {TIER_CHANGED: TierChanged}) is None


TIER_CHANGE_DATA = data_of(published_tier_change())
SMS_YES = {"sms": "yes"}
BAD_TIER_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("no tier", {k: v for k, v in TIER_CHANGE_DATA.items() if k != "tier"}, "data.tier"),
    ("unknown tier", {**TIER_CHANGE_DATA, "tier": "platinum"}, "data.tier"),
    ("no customer", {k: v for k, v in TIER_CHANGE_DATA.items() if k != "customer_id"}, "data.customer_id"),
    ("profile not an object", {**TIER_CHANGE_DATA, "profile": "BR-SH-001"}, "data.profile"),
    ("branch not an id", {**TIER_CHANGE_DATA, "profile": {"branch_id": ["BR"]}}, "data.profile.branch_id"),
    ("consent as text", {**TIER_CHANGE_DATA, "profile": {"consents": SMS_YES}}, "data.profile.consents.sms"),
    ("complaints as text", {**TIER_CHANGE_DATA, "complaints_open_high": "2"}, "data.complaints_open_high"),
    ("negative complaints", {**TIER_CHANGE_DATA, "complaints_open_high": -1}, "data.complaints_open_high"),
    ("nps out of range", {**TIER_CHANGE_DATA, "nps_latest": 11}, "data.nps_latest"),
    ("unknown trigger", {**TIER_CHANGE_DATA, "trigger": "whim"}, "data.trigger"),
    ("negative aum", {**TIER_CHANGE_DATA, "aum": "-1.00"}, "data.aum"),
    ("products as text", {**TIER_CHANGE_DATA, "products_held": "2"}, "data.products_held"),
    ("cause with a NUL", {**TIER_CHANGE_DATA, "caused_by": {"source": "core", "id": "e\x001"}},
     "data.caused_by.EventCause.id"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "field"), BAD_TIER_CHANGES, ids=[c[0] for c in BAD_TIER_CHANGES])
def test_a_wrong_or_missing_tier_change_field_is_named(case: str, data: dict[str, Any], field: str) -> None:
    assert field in problems(decode_tier_changed, data)


SURVEY_REQUEST_DATA = data_of(published_survey_request())
BAD_SURVEY_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("no outreach", {k: v for k, v in SURVEY_REQUEST_DATA.items() if k != "outreach_id"}, "data.outreach_id"),
    ("no customer", {k: v for k, v in SURVEY_REQUEST_DATA.items() if k != "customer_id"}, "data.customer_id"),
    ("unknown tier", {**SURVEY_REQUEST_DATA, "tier": "gold"}, "data.tier"),
    ("action not text", {**SURVEY_REQUEST_DATA, "action": {"kind": "call"}}, "data.action"),
    ("naive time", {**SURVEY_REQUEST_DATA, "requested_at": "2026-11-22T12:00:00"}, "data.requested_at"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "field"), BAD_SURVEY_REQUESTS, ids=[c[0] for c in BAD_SURVEY_REQUESTS]
)
def test_a_wrong_or_missing_survey_request_field_is_named(
    case: str, data: dict[str, Any], field: str
) -> None:
    assert field in problems(decode_survey_requested, data)


@pytest.mark.parametrize("data", [None, [], "tier", 7])
def test_data_that_is_not_an_object_is_refused(data: object) -> None:
    assert problems(decode_tier_changed, data) == {"data": "must be a JSON object"}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b"not json", "(event)"),
        (b"[]", "(event)"),
        (json.dumps({"type": TIER_CHANGED, "data": TIER_CHANGE_DATA}).encode(), "id"),
        (json.dumps({**json.loads(published_tier_change()), "data": {}}).encode(), "data.customer_id"),
        (json.dumps({**json.loads(published_survey_request()), "type": None}).encode(), "type"),
    ],
)  # fmt: skip
def test_a_record_that_is_no_valid_event_is_refused_with_the_field_named(value: bytes, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_internal_event(value, INTERNAL_DATA_MODELS)
    assert field in {e.field for e in caught.value.errors}


def test_fields_added_later_do_not_break_a_consumer() -> None:
    later = {**TIER_CHANGE_DATA, "labels": ["saver"], "profile": {**factories.PROFILE, "household_id": "H1"}}
    assert decode_tier_changed(later).tier == Tier.WEALTH
    assert decode_survey_requested({**SURVEY_REQUEST_DATA, "template": "t1"}).outreach_id
    assert SURVEY_REQUESTED in INTERNAL_DATA_MODELS
