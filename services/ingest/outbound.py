"""Turns accepted events into keyed, structured CloudEvents records for `bank.events.v1`."""

from __future__ import annotations

from collections.abc import Sequence

from shared.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE, ValidEvent
from shared.kafka import CONTENT_TYPE_HEADER, Record

_HEADERS = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]


def to_records(events: Sequence[ValidEvent], topic: str) -> list[Record]:
    return [
        Record(topic=topic, key=event.customer_id.encode(), value=event.to_bytes(), headers=_HEADERS)
        for event in events
    ]
