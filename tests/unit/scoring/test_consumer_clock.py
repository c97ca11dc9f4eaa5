"""Scoring re-checks every event's time; a host clock behind ingest's must not dead-letter them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord

from services.scoring.handlers import event_decoder
from shared.consumer import PoisonMessage
from shared.settings import Settings
from tests import factories


def record_stamped(ahead: timedelta) -> ConsumerRecord[bytes, bytes]:
    event = factories.with_envelope(factories.interaction("C1"), time=(datetime.now(UTC) + ahead).isoformat())
    value = json.dumps(event).encode()
    return ConsumerRecord("bank.events.v1", 0, 0, 0, 0, b"C1", value, None, 2, len(value), [])


def test_an_event_ingest_accepted_is_applied_when_this_host_runs_five_minutes_behind() -> None:
    # Ingest accepted it 4 minutes ahead of its own clock; this host's clock is 5 minutes slower.
    decode = event_decoder(Settings(max_future_skew_s=300, consumer_clock_tolerance_s=300))
    assert decode(record_stamped(timedelta(minutes=9))).customer_id == "C1"


def test_without_a_tolerance_the_same_event_would_be_dead_lettered() -> None:
    decode = event_decoder(Settings(max_future_skew_s=300, consumer_clock_tolerance_s=0))
    with pytest.raises(PoisonMessage, match="future"):
        decode(record_stamped(timedelta(minutes=9)))


def test_an_event_beyond_skew_and_tolerance_is_still_dead_lettered() -> None:
    decode = event_decoder(Settings(max_future_skew_s=300, consumer_clock_tolerance_s=300))
    with pytest.raises(PoisonMessage, match="10 minutes in the future"):
        decode(record_stamped(timedelta(minutes=11)))
