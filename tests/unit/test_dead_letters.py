"""A dead letter read back: its reason, where it failed, and the record re-injection produces."""

from __future__ import annotations

from shared.kafka import Record
from tierflow.dlq import DeadLetter, newest_of_each_record

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


def failed(offset: int, value: bytes, at: str, reinjected_from: bytes | None = None) -> DeadLetter:
    headers = [h for h in FAILURE_HEADERS if h[0] != "tierflow-failed-at"] + [
        ("tierflow-failed-at", at.encode())
    ]
    if reinjected_from is not None:
        headers.append(("tierflow-reinjected-from", reinjected_from))
    return DeadLetter("acme.bank.events.v1.dlq", offset % 2, offset, b"C0001", value, tuple(headers))


def test_re_injecting_all_sends_each_record_once_however_often_it_failed_before() -> None:
    first = b'{"source": "core", "id": "evt-7", "data": {}}'
    other_source = b'{"source": "cards", "id": "evt-7", "data": {}}'
    letters = [
        failed(1, first, "2026-11-24T10:00:00+00:00"),
        failed(2, other_source, "2026-11-24T10:00:01+00:00"),
        failed(3, first, "2026-11-24T11:00:00+00:00", reinjected_from=b"acme.bank.events.v1.dlq:1:1"),
        failed(4, b"not json", "2026-11-24T10:00:02+00:00"),
        failed(5, b"not json", "2026-11-24T10:00:03+00:00"),
    ]
    assert [letter.offset for letter in newest_of_each_record(letters)] == [2, 4, 3, 5]


def test_a_dead_letter_nested_past_the_recursion_limit_has_no_event_id_rather_than_failing() -> None:
    assert letter(value=b"[" * 100_000 + b"]" * 100_000).event_id == ""
