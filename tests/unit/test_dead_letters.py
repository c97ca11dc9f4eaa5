"""A dead letter read back: its reason, where it failed, and the record re-injection produces."""

from __future__ import annotations

from shared.kafka import Record
from tierflow.dlq import DeadLetter

EVENT = b'{"id": "evt-7", "type": "bank.transaction.v1", "data": {}}'
FAILURE_HEADERS = (
    ("tierflow-error", b"data.currency: USD has no configured exchange rate to the base currency"),
    ("tierflow-error-class", b"PoisonMessage"),
    ("tierflow-source-topic", b"acme.bank.events.v1"),
    ("tierflow-source-partition", b"3"),
    ("tierflow-source-offset", b"1042"),
    ("tierflow-failed-at", b"2026-11-24T10:00:00+00:00"),
)


def letter(value: bytes = EVENT, headers: tuple[tuple[str, bytes], ...] = FAILURE_HEADERS) -> DeadLetter:
    own = (("content-type", b"application/cloudevents+json"),)
    return DeadLetter("acme.bank.events.v1.dlq", 3, 17, b"C0001", value, own + headers)


def test_a_dead_letter_is_known_by_its_place_and_says_why_and_where_it_failed() -> None:
    dead = letter()
    assert dead.id == "3:17"
    assert dead.event_id == "evt-7"
    assert dead.header("tierflow-error-class") == "PoisonMessage"
    assert dead.header("tierflow-error").startswith("data.currency: USD")
    assert dead.origin == "acme.bank.events.v1"


def test_re_injection_produces_the_record_as_first_sent_marked_with_its_dead_letter() -> None:
    assert letter().reinjection() == Record(
        "acme.bank.events.v1",
        b"C0001",
        EVENT,
        [
            ("content-type", b"application/cloudevents+json"),
            ("tierflow-reinjected-from", b"acme.bank.events.v1.dlq:3:17"),
        ],
    )


def test_a_letter_re_injected_before_carries_only_its_latest_origin() -> None:
    again = letter(headers=(("tierflow-reinjected-from", b"acme.bank.events.v1.dlq:0:4"), *FAILURE_HEADERS))
    assert [h for h in again.reinjection().headers if h[0] == "tierflow-reinjected-from"] == [
        ("tierflow-reinjected-from", b"acme.bank.events.v1.dlq:3:17")
    ]


def test_a_record_that_is_not_a_cloudevent_has_no_event_id_and_goes_back_where_its_topic_says() -> None:
    for value in (b"\x00\x01 not json", b"[1, 2]", b'{"id": 7}'):
        assert letter(value=value).event_id == ""
    assert letter(headers=()).origin == "acme.bank.events.v1"
