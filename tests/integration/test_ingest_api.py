"""Ingest over real HTTP, publishing to a real broker, read back by librdkafka."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from shared.topics import Topics
from tests import factories
from tests.infra import (
    ADMIN_KEY,
    INGEST_KEY,
    OPS_KEY,
    Infra,
    ServiceProcess,
    create_topics,
    start_service,
    wait_until,
)
from tests.kafka_reader import read_messages, total_messages

pytestmark = pytest.mark.integration
MAX_BODY = 4 * 1024 * 1024


@dataclass
class Ingest:
    service: ServiceProcess
    topic: str
    bootstrap: str

    def post(self, body: Any, key: str | None = INGEST_KEY, **kwargs: Any) -> httpx.Response:
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.service.base_url}/v1/events", content=content, headers=headers, timeout=30)

    def published(self) -> int:
        return total_messages(self.bootstrap, self.topic)


@pytest.fixture(scope="module")
def ingest(infra: Infra) -> Iterator[Ingest]:
    prefix = "ingest-api."
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    service = start_service(
        infra, "ingest", TIERFLOW_TOPIC_PREFIX=prefix, TIERFLOW_MAX_BODY_BYTES=str(MAX_BODY)
    )
    yield Ingest(service, Topics(prefix).bank_events, infra.bootstrap_servers)
    service.stop()


def test_a_valid_batch_arrives_in_order_per_customer_as_cloudevents(ingest: Ingest) -> None:
    before = ingest.published()
    customers = ["C-ORDER-1", "C-ORDER-2", "C-ORDER-3"]
    batch = [factories.transaction(customers[n % 3], amount=f"{n + 1}.25") for n in range(60)]
    batch.insert(0, factories.customer("C-ORDER-1"))
    batch.append(factories.balance("C-ORDER-2"))
    batch.append(factories.interaction("C-ORDER-3", kind="rm_meeting"))

    response = ingest.post(batch)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(batch)
    sent_ids = {e["id"] for e in batch}
    everything = read_messages(ingest.bootstrap, ingest.topic, before + len(batch))
    messages = [m for m in everything if json.loads(m.value)["id"] in sent_ids]
    assert len(messages) == len(batch)
    for customer_id in customers:
        sent = [e["id"] for e in batch if e["data"]["customer_id"] == customer_id]
        received = [
            json.loads(m.value)["id"]
            for m in sorted(messages, key=lambda m: (m.partition, m.offset))
            if m.key == customer_id.encode()
        ]
        assert received == sent
    first = json.loads(messages[0].value)
    assert messages[0].headers["content-type"] == b"application/cloudevents+json"
    assert first["specversion"] == "1.0"
    assert {"id", "source", "type", "time", "data"} <= set(first)


def test_amounts_reach_the_topic_as_exact_decimal_strings(ingest: Ingest) -> None:
    event = factories.transaction("C-DECIMAL", amount="0")
    body = json.dumps(event).replace('"amount": "0"', '"amount": 18250.40').encode()
    before = ingest.published()
    assert ingest.post(body).status_code == 202
    messages = read_messages(ingest.bootstrap, ingest.topic, before + 1)
    published = next(json.loads(m.value) for m in messages if json.loads(m.value)["id"] == event["id"])
    assert published["data"]["amount"] == "18250.40"


def _float_garbage() -> bytes:
    return (
        json.dumps(factories.transaction(amount="1"))
        .replace('"amount": "1"', '"amount": 0.1000000000000000055511')
        .encode()
    )


TXN = factories.transaction
BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("wrong type", factories.with_data(TXN(), amount=[1]), 422, "data.amount"),
    ("missing field", factories.without_data_field(TXN(), "direction"), 422, "data.direction"),
    ("negative amount", TXN(amount="-10.00"), 422, "data.amount"),
    ("float garbage", _float_garbage(), 422, "data.amount"),
    ("bad currency", factories.with_data(TXN(), currency="XYZ"), 422, "data.currency"),
    ("naive time", factories.with_envelope(TXN(), time="2026-01-01T10:00:00"), 422, "time"),
    ("far-future time", factories.with_envelope(TXN(), time="2099-01-01T00:00:00Z"), 422, "time"),
    ("unknown type", factories.with_envelope(TXN(), type="bank.mortgage.v1"), 422, "type"),
    ("one bad in a good batch", [TXN(), TXN(amount="abc"), TXN()], 422, "data.amount"),
    ("oversize batch", [factories.interaction()] * 5001, 413, ""),
    ("malformed json", b'{"specversion": "1.0", ', 400, ""),
    ("balance dated 9999", factories.balance(as_of="9999-12-31T00:00:00Z"), 422, "data.as_of"),
    ("account opened 1899", factories.customer(opened_at="1899-06-01T00:00:00Z"), 422, "data.opened_at"),
    ("event time 1969", factories.with_envelope(TXN(), time="1969-12-31T23:59:59Z"), 422, "time"),
    ("NUL in the id", factories.with_envelope(TXN(), id="evt\u00001"), 422, "id"),
    ("bidi control in the id", factories.with_envelope(TXN(), id="evt-\u202e1"), 422, "id"),
    ("space around the id", factories.with_envelope(TXN(), id=" evt-1"), 422, "id"),
    ("control in the source", factories.with_envelope(TXN(), source="core\tbanking"), 422, "source"),
    ("digit separator", TXN(amount="5_000"), 422, "data.amount"),
    ("exponent", TXN(amount="1E+21"), 422, "data.amount"),
    ("Arabic-Indic digits", TXN(amount="\u0665\u0660\u0660"), 422, "data.amount"),
    ("full-width digits", TXN(amount="\uff15\uff10\uff10"), 422, "data.amount"),
    ("spaces in an amount", TXN(amount=" 500 "), 422, "data.amount"),
    (
        "a number past the digit bound",
        json.dumps(TXN(amount="X")).replace('"X"', "1e30").encode(),
        422,
        "data.amount",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_specific_4xx_and_nothing_is_published(
    ingest: Ingest, case: str, body: Any, status: int, field: str
) -> None:
    before = ingest.published()
    response = ingest.post(body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    if field:
        assert field in {error["field"] for error in response.json()["errors"]}
    assert ingest.published() == before


def test_a_rejected_batch_lists_every_bad_item_by_index(ingest: Ingest) -> None:
    batch = [factories.transaction(), factories.transaction(amount="-1"), factories.interaction(kind="fax")]
    errors = ingest.post(batch).json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "data.amount"), (2, "data.kind")]
    assert all(e["message"] for e in errors)


def test_a_body_over_the_byte_limit_is_refused_with_413(ingest: Ingest) -> None:
    before = ingest.published()
    response = ingest.post(b"[" + b" " * (MAX_BODY + 1) + b"]")
    assert response.status_code == 413
    assert ingest.published() == before


def test_a_wrong_content_type_is_refused_with_415(ingest: Ingest) -> None:
    response = ingest.post(factories.transaction(), headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("not-a-key", 401), (OPS_KEY, 403)])
def test_keys_without_the_ingest_role_publish_nothing(ingest: Ingest, key: str | None, status: int) -> None:
    before = ingest.published()
    assert ingest.post(factories.transaction(), key=key).status_code == status
    assert ingest.published() == before


def test_an_admin_key_may_ingest(ingest: Ingest) -> None:
    assert ingest.post(factories.interaction(), key=ADMIN_KEY).status_code == 202


def test_a_profile_upsert_becomes_a_customer_event(ingest: Ingest) -> None:
    before = ingest.published()
    response = httpx.put(
        f"{ingest.service.base_url}/v1/customers/C-PROFILE-1/profile",
        json={"branch_id": "BR-BJ-002", "risk_profile": "C2", "consents": {"sms": False}},
        headers={"authorization": f"Bearer {INGEST_KEY}"},
    )
    assert response.status_code == 202, response.text
    messages = read_messages(ingest.bootstrap, ingest.topic, before + 1)
    event = next(json.loads(m.value) for m in messages if m.key == b"C-PROFILE-1")
    assert event["type"] == "bank.customer.v1"
    assert event["data"] == {
        "customer_id": "C-PROFILE-1",
        "branch_id": "BR-BJ-002",
        "risk_profile": "C2",
        "consents": {"sms": False},
    }


def test_a_bad_profile_is_refused_field_by_field(ingest: Ingest) -> None:
    response = httpx.put(
        f"{ingest.service.base_url}/v1/customers/C-PROFILE-2/profile",
        json={"risk_profile": "C9", "segment": "alien"},
        headers={"authorization": f"Bearer {INGEST_KEY}"},
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"data.risk_profile", "data.segment"}


def test_a_profile_leaving_its_household_keeps_the_explicit_null_on_the_topic(ingest: Ingest) -> None:
    before = ingest.published()
    response = httpx.put(
        f"{ingest.service.base_url}/v1/customers/C-PROFILE-3/profile",
        json={"household_id": None, "region": None},
        headers={"authorization": f"Bearer {INGEST_KEY}"},
    )
    assert response.status_code == 202, response.text
    messages = read_messages(ingest.bootstrap, ingest.topic, before + 1)
    event = next(json.loads(m.value) for m in messages if m.key == b"C-PROFILE-3")
    assert event["data"] == {"customer_id": "C-PROFILE-3", "household_id": None}


def test_a_household_role_is_refused_when_unknown_or_when_leaving(ingest: Ingest) -> None:
    url = f"{ingest.service.base_url}/v1/customers/C-PROFILE-4/profile"
    headers = {"authorization": f"Bearer {INGEST_KEY}"}
    unknown = httpx.put(url, json={"household_id": "H1", "household_role": "cousin"}, headers=headers)
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["data.household_role"]
    leaving = httpx.put(url, json={"household_id": None, "household_role": "spouse"}, headers=headers)
    assert leaving.status_code == 422
    assert "household_role needs a household_id" in leaving.json()["errors"][0]["message"]


def test_probes_and_metrics_need_no_key_and_everything_else_does(ingest: Ingest) -> None:
    base = ingest.service.base_url
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": True}
    metrics = httpx.get(f"{base}/metrics").text
    assert "tierflow_ingest_events_accepted_total" in metrics
    assert "tierflow_http_requests_total" in metrics
    assert "/v1/events" in httpx.get(f"{base}/openapi.json").json()["paths"]


def test_an_id_with_a_space_inside_is_one_rule_for_events_and_their_causes(ingest: Ingest) -> None:
    event = factories.with_envelope(factories.interaction("C-SPACED-ID"), id="evt 1 of core banking")
    before = ingest.published()
    assert ingest.post(event).status_code == 202
    published = read_messages(ingest.bootstrap, ingest.topic, before + 1)
    assert "evt 1 of core banking" in {json.loads(m.value)["id"] for m in published}


@pytest.mark.parametrize("customer_id", ["%E2%80%AEC1", "C1%01", "%20C1", "C" * 65])
def test_a_path_customer_id_is_held_to_the_body_rule(ingest: Ingest, customer_id: str) -> None:
    response = httpx.put(
        f"{ingest.service.base_url}/v1/customers/{customer_id}/profile",
        json={"branch_id": "BR-1"},
        headers={"authorization": f"Bearer {INGEST_KEY}"},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["path.customer_id"]


def test_a_profile_opened_in_the_future_is_refused(ingest: Ingest) -> None:
    response = httpx.put(
        f"{ingest.service.base_url}/v1/customers/C-PROFILE-3/profile",
        json={"opened_at": "9999-01-01T00:00:00Z"},
        headers={"authorization": f"Bearer {INGEST_KEY}"},
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"data.opened_at"}


def test_a_hostile_batch_is_answered_with_the_first_hundred_problems_not_all(ingest: Ingest) -> None:
    crowded = {f"x{n}": n for n in range(100)}
    response = ingest.post([factories.with_data(factories.interaction(), **crowded) for _ in range(200)])
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 100
    assert response.json()["detail"].startswith("20000 problems found")


SMALL_BODY = 64 * 1024
# Room for one body of SMALL_BODY bytes decoded, and a little more.
SMALL_BUDGET = SMALL_BODY * Settings.DECODED_BYTES_PER_BODY_BYTE + 256 * 1024


def budgeted_ingest(infra: Infra, prefix: str, **overrides: str) -> Iterator[Ingest]:
    """An ingest on topics of its own with room for one body of SMALL_BODY bytes and a little more."""
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    service = start_service(
        infra,
        "ingest",
        TIERFLOW_TOPIC_PREFIX=prefix,
        TIERFLOW_MAX_BODY_BYTES=str(SMALL_BODY),
        TIERFLOW_INGEST_MEMORY_BUDGET_BYTES=str(SMALL_BUDGET),
        **overrides,
    )
    yield Ingest(service, Topics(prefix).bank_events, infra.bootstrap_servers)
    service.stop()


@pytest.fixture(scope="module")
def tight_ingest(infra: Infra) -> Iterator[Ingest]:
    yield from budgeted_ingest(infra, "ingest-budget.", TIERFLOW_RETRY_AFTER_S="2")


class SlowUpload:
    """A client that declared a body, sent its first `sent` bytes and sends the rest only when told."""

    def __init__(self, base_url: str, body: bytes, sent: int = 10) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self._socket = socket.create_connection((host, int(port)), timeout=30)
        self._body = body
        self._sent = sent
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {INGEST_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self._socket.sendall(head.encode() + body[:sent])

    def finish(self) -> int:
        self._socket.sendall(self._body[self._sent :])
        return self.status()

    def hang_up(self) -> None:
        self._socket.close()

    def status(self) -> int:
        """The status ingest answers, waiting for it without sending more."""
        answer = b""
        while chunk := self._socket.recv(65536):
            answer += chunk
        self._socket.close()
        return int(answer.split(b" ", 2)[1])


def reserved_bytes(ingest: Ingest) -> float:
    metrics = httpx.get(f"{ingest.service.base_url}/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("tierflow_ingest_memory_reserved_bytes "))
    return float(line.split()[1])


def padded(event: dict[str, Any], size: int) -> bytes:
    body = json.dumps(event).encode()
    return body + b" " * (size - len(body))


def test_requests_are_admitted_by_what_their_bodies_may_cost_within_the_memory_budget(
    tight_ingest: Ingest,
) -> None:
    body = padded(factories.interaction("C-BUDGET-1"), SMALL_BODY)
    slow = SlowUpload(tight_ingest.service.base_url, body, sent=SMALL_BODY - 10)
    # Each part of a body is charged as it arrives: all but ten bytes have.
    held = (SMALL_BODY - 10) * Settings.DECODED_BYTES_PER_BODY_BYTE
    wait_until(lambda: reserved_bytes(tight_ingest) >= held, 10, "the slow upload's body to be charged")
    before = tight_ingest.published()

    largest = tight_ingest.post(padded(factories.interaction("C-BUDGET-2"), SMALL_BODY))
    assert largest.status_code == 429
    assert largest.headers["retry-after"] == "2"
    assert "memory budget" in largest.json()["detail"]
    # Without a declared length a body is charged what arrives, like any other.
    unknown_length = httpx.post(
        f"{tight_ingest.service.base_url}/v1/events",
        content=iter([json.dumps(factories.interaction("C-BUDGET-3")).encode()]),
        headers={"authorization": f"Bearer {INGEST_KEY}", "content-type": "application/json"},
    )
    assert unknown_length.status_code == 202, "a small body fits"
    assert tight_ingest.post(factories.interaction("C-BUDGET-4")).status_code == 202, "a small body fits"

    assert slow.finish() == 202
    assert tight_ingest.post(padded(factories.interaction("C-BUDGET-2"), SMALL_BODY)).status_code == 202
    assert tight_ingest.published() == before + 4
    assert reserved_bytes(tight_ingest) == 0


BODY_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def impatient_ingest(infra: Infra) -> Iterator[Ingest]:
    """An ingest that waits briefly for bodies."""
    yield from budgeted_ingest(infra, "ingest-impatient.", TIERFLOW_INGEST_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S))


def test_a_stalled_upload_is_answered_408_at_the_deadline_and_blocks_no_one_meanwhile(
    impatient_ingest: Ingest,
) -> None:
    started = time.monotonic()
    stalled = SlowUpload(
        impatient_ingest.service.base_url, padded(factories.interaction("C-STALL-1"), SMALL_BODY)
    )
    wait_until(lambda: reserved_bytes(impatient_ingest) > 0, 10, "the stalled upload to be admitted")

    # It declared the largest body but sent ten bytes: it holds what it sent, and the largest
    # body of another client fits beside it.
    others = [
        impatient_ingest.post(padded(factories.interaction("C-STALL-2"), SMALL_BODY)),
        impatient_ingest.post(factories.interaction("C-STALL-3")),
    ]
    assert [other.status_code for other in others] == [202, 202]
    assert time.monotonic() - started < BODY_TIMEOUT_S, "the others were answered before the deadline"

    assert stalled.status() == 408
    assert BODY_TIMEOUT_S <= time.monotonic() - started < BODY_TIMEOUT_S + 5
    assert reserved_bytes(impatient_ingest) == 0
    assert "Traceback" not in impatient_ingest.service.logs()


def test_a_client_hanging_up_mid_body_is_noted_without_a_traceback(impatient_ingest: Ingest) -> None:
    gone = SlowUpload(impatient_ingest.service.base_url, padded(factories.interaction("C-GONE"), SMALL_BODY))
    wait_until(lambda: reserved_bytes(impatient_ingest) > 0, 10, "the upload to be admitted")
    gone.hang_up()
    wait_until(lambda: reserved_bytes(impatient_ingest) == 0, 10, "its charge to be released")
    wait_until(
        lambda: "client disconnected before sending its whole body" in impatient_ingest.service.logs(),
        10,
        "the disconnection to be logged",
    )
    logs = impatient_ingest.service.logs()
    assert "Traceback" not in logs
    assert "unhandled error" not in logs


def test_a_body_nested_deeper_than_the_limit_is_refused_before_decoding(ingest: Ingest) -> None:
    too_deep = ingest.post(b"[" * 17 + b"0" + b"]" * 17)
    assert too_deep.status_code == 400
    assert too_deep.json()["detail"] == "the JSON nests arrays and objects more than 16 deep"
    # At the limit the body is decoded, and refused for what it holds instead.
    at_the_limit = ingest.post(b"[" * 16 + b"0" + b"]" * 16)
    assert at_the_limit.status_code == 422
