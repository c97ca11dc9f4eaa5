"""Scoring reads most records in one pass; the ones it reads in full are counted for operators."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

from services.scoring.handlers import event_decoder
from shared.consumer import PoisonMessage
from shared.settings import Settings
from tests import factories

DECODE = event_decoder(Settings())


def record(event: dict[str, Any], *, numeric_amount: bool = False) -> ConsumerRecord[bytes, bytes]:
    text = json.dumps(event)
    if numeric_amount:
        text = text.replace('"amount": "125.50"', '"amount": 125.50')
    value = text.encode()
    return ConsumerRecord("bank.events.v1", 0, 0, 0, 0, b"C1", value, None, 2, len(value), [])


def read_in_full() -> float:
    return REGISTRY.get_sample_value("tierflow_scoring_records_read_in_full_total") or 0.0


def transaction() -> dict[str, Any]:
    event = factories.with_envelope(
        factories.transaction("C1", amount="125.50"),
        time=(datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    )
    assert event["data"]["amount"] == "125.50"
    return event


def test_a_valid_record_is_read_in_one_pass_and_not_counted() -> None:
    before = read_in_full()

    assert DECODE(record(transaction())).customer_id == "C1"
    assert read_in_full() == before


def test_an_amount_written_as_a_json_number_is_read_in_full_exactly_and_counted() -> None:
    before = read_in_full()

    event = DECODE(record(transaction(), numeric_amount=True))

    assert str(getattr(event.data, "amount")) == "125.50"  # noqa: B009
    assert read_in_full() == before + 1


def test_a_refused_record_is_counted_as_read_in_full() -> None:
    broken = {**transaction(), "time": "yesterday"}
    before = read_in_full()

    with pytest.raises(PoisonMessage, match="time"):
        DECODE(record(broken))
    assert read_in_full() == before + 1
