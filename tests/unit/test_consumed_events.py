"""Engagement and feedback read other services' events through one validating decoder each: what
the producers publish is read in full, anything wrong is a dead letter naming the field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.engagement.domain.planning import Change
from services.engagement.handlers import change_decoder
from services.engagement.outbound import outreach_event
from services.feedback.domain.events import Arm, ExperimentEnrolled, SurveyRequested, TierObserved
from services.feedback.handlers import event_decoder
from shared.consumer import PoisonMessage
from shared.contracts.internal import ErasureNotice
from shared.contracts.types import Tier
from shared.settings import Settings
from tests import factories

SETTINGS = Settings(max_future_skew_s=300, consumer_clock_tolerance_s=300)
FAR_FUTURE = "9999-01-01T00:00:00Z"


def record(event: dict[str, Any], topic: str = "customer.tier-changes.v1") -> ConsumerRecord[bytes, bytes]:
    value = json.dumps(event).encode()
    return ConsumerRecord(topic, 0, 0, 0, 0, b"C0001", value, None, 2, len(value), [])


def with_data(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], **changes}}


def without(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {**event, "data": {k: v for k, v in event["data"].items() if k != name}}


def test_engagement_reads_a_tier_change_with_the_context_scoring_sent() -> None:
    change = change_decoder(SETTINGS)(record(factories.tier_changed()))
    assert isinstance(change, Change)
    assert (change.customer_id, change.tier, change.complaints_open_high) == ("C0001", Tier.WEALTH, 2)
    # The profile fields scoring sends (not opened_at), and only those: absent ones stay absent,
    # not null (consents has email and app absent).
    published = {name: value for name, value in factories.PROFILE.items() if name != "opened_at"}
    assert change.profile == published


def test_engagement_and_feedback_read_an_erasure_as_scoring_publishes_it() -> None:
    erased = factories.customer_erased("C0042")
    for decode in (change_decoder(SETTINGS), event_decoder(SETTINGS)):
        notice = decode(record(erased))
        assert isinstance(notice, ErasureNotice)
        assert (notice.customer_id, notice.event_id, notice.source) == (
            "C0042",
            erased["id"],
            "tierflow/scoring",
        )
        with pytest.raises(PoisonMessage, match="customer_id"):
            decode(record(without(erased, "customer_id")))


def test_feedback_reads_tier_changes_and_survey_requests_and_skips_outreach_events() -> None:
    decode = event_decoder(SETTINGS)
    observed = decode(record(factories.tier_changed()))
    assert isinstance(observed, TierObserved)
    assert (observed.tier, observed.stage, observed.branch_id) == ("wealth", "core", "BR-SH-001")
    requested = decode(record(factories.survey_requested(), "engagement.outreach.v1"))
    assert isinstance(requested, SurveyRequested)
    assert (requested.action, requested.tier, requested.channel) == ("welcome_call", "wealth", "phone")
    lifecycle = {**factories.survey_requested(), "type": "engagement.outreach_created.v1"}
    assert decode(record(lifecycle, "engagement.outreach.v1")) is None


TIER_CHANGE = factories.tier_changed()
BAD_TIER_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("no tier", without(TIER_CHANGE, "tier"), "data.tier"),
    ("tier not text", with_data(TIER_CHANGE, tier=3), "data.tier"),
    ("profile not an object", with_data(TIER_CHANGE, profile="BR-SH-001"), "data.profile"),
    ("consents as text", with_data(TIER_CHANGE, profile={"consents": "all"}), "data.profile.consents"),
    ("complaints as text", with_data(TIER_CHANGE, complaints_open_high="2"), "data.complaints_open_high"),
    ("nps out of range", with_data(TIER_CHANGE, nps_latest=11), "data.nps_latest"),
    ("unknown trigger", with_data(TIER_CHANGE, trigger="whim"), "data.trigger"),
    ("far-future time", {**TIER_CHANGE, "time": FAR_FUTURE}, "time"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "event", "field"), BAD_TIER_CHANGES, ids=[c[0] for c in BAD_TIER_CHANGES])
@pytest.mark.parametrize("consumer", ["engagement", "feedback"])
def test_a_wrong_tier_change_is_a_dead_letter_naming_the_field(
    consumer: str, case: str, event: dict[str, Any], field: str
) -> None:
    decode: Callable[[ConsumerRecord[bytes, bytes]], object] = (
        change_decoder(SETTINGS) if consumer == "engagement" else event_decoder(SETTINGS)
    )
    with pytest.raises(PoisonMessage, match=f"{field}:"):
        decode(record(event))


SURVEY_REQUEST = factories.survey_requested()
BAD_SURVEY_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("no outreach", without(SURVEY_REQUEST, "outreach_id"), "data.outreach_id"),
    ("unknown tier", with_data(SURVEY_REQUEST, tier="gold"), "data.tier"),
    ("far-future request", with_data(SURVEY_REQUEST, requested_at=FAR_FUTURE), "data.requested_at"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "event", "field"), BAD_SURVEY_REQUESTS, ids=[c[0] for c in BAD_SURVEY_REQUESTS]
)
def test_a_wrong_survey_request_is_a_dead_letter_naming_the_field(
    case: str, event: dict[str, Any], field: str
) -> None:
    with pytest.raises(PoisonMessage, match=f"{field}:"):
        event_decoder(SETTINGS)(record(event, "engagement.outreach.v1"))


def test_feedback_dead_letters_a_record_that_is_no_cloudevent_whatever_its_type() -> None:
    with pytest.raises(PoisonMessage, match="specversion"):
        event_decoder(SETTINGS)(record({"type": "customer.unknown.v1", "id": "x"}))


def test_engagement_dead_letters_an_event_type_it_does_not_read() -> None:
    with pytest.raises(
        PoisonMessage,
        match=re.escape(
            "not a customer.tier_changed.v1, customer.profile_changed.v1 or customer.erased.v1 event"
        ),
    ):
        change_decoder(SETTINGS)(record(factories.survey_requested()))


def test_a_tier_change_within_the_clock_tolerance_is_read() -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=9)).isoformat()
    assert change_decoder(SETTINGS)(record({**TIER_CHANGE, "time": ahead})).customer_id == "C0001"


def outreach_born(status: str, experiment: str | None) -> dict[str, Any]:
    """An item's first `engagement.outreach_<status>.v1`, as engagement publishes it."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    row = {
        "id": "6f1d2c1e-0000-4000-8000-000000000001", "customer_id": "C0001", "kind": "app_push",
        "channel": "app", "priority": "normal", "status": status, "due_at": at, "sla_due_at": at,
        "expires_at": at, "trigger_event_id": "chg-1", "assigned_to": None, "reason": "r",
        "cancel_reason": None, "outcome": None, "category": "marketing", "template": "t", "product": None,
        "context_tier": "vip", "context_stage": "regular", "branch_id": "B1", "experiment": experiment,
        "household_id": None, "covered_by": None,
    }  # fmt: skip
    event: dict[str, Any] = json.loads(outreach_event(row, at).value)
    return event


def test_feedback_enrols_the_items_a_holdout_drew_in_their_group_and_skips_the_others() -> None:
    decode = event_decoder(SETTINGS)
    held = decode(record(outreach_born("held_out", "vip-welcome-holdout"), "engagement.outreach.v1"))
    assert isinstance(held, ExperimentEnrolled)
    assert (held.experiment, held.arm, held.action, held.tier) == (
        "vip-welcome-holdout",
        Arm.HELD_OUT,
        "app_push",
        "vip",
    )
    treated = decode(record(outreach_born("queued", "vip-welcome-holdout"), "engagement.outreach.v1"))
    assert isinstance(treated, ExperimentEnrolled)
    assert treated.arm is Arm.TREATED
    assert decode(record(outreach_born("queued", None), "engagement.outreach.v1")) is None
    assert decode(record(outreach_born("completed", "vip-welcome-holdout"), "engagement.outreach.v1")) is None
