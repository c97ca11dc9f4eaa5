"""A customer erased mid-stream, with outreach, surveys and complaints in flight, is gone from every
table and API answer of every service; everyone else ends as in the undisturbed run; resends and a
replay of scoring do not bring the customer back."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import httpx
import pytest

from services.scoring.replay import replay
from shared.erasure import ERASED_REASON
from shared.topics import TIER_CHANGES
from tests.faults.system import (
    FEEDBACK_PATHS,
    EndState,
    Event,
    Stream,
    System,
    assert_same_end_state,
    running_system,
)
from tests.infra import ADMIN_KEY, INGEST_KEY, OPS_KEY, Infra, wait_until
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.faults
FEEDBACK_SHARE = 0.5  # of the feedback phase sent when the customer is erased
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
OPS = {"authorization": f"Bearer {OPS_KEY}"}


def erased_customer(stream: Stream, undisturbed: EndState) -> str:
    """A customer with outreach, and surveys and complaints both before and after the erasure."""
    cut = round(len(stream.feedback) * FEEDBACK_SHARE)
    with_outreach = {row[1] for row in undisturbed.outreach}

    def kinds(records: list[Event], customer_id: str) -> set[str]:
        return {r["type"] for r in records if r["data"]["customer_id"] == customer_id}

    both = {"feedback.survey.v1", "feedback.complaint.v1"}
    candidates: list[str] = sorted(
        customer_id
        for customer_id in with_outreach
        if kinds(stream.feedback[:cut], customer_id) == both and kinds(stream.feedback[cut:], customer_id)
    )
    assert candidates, "the stream must hold a customer with feedback on both sides of the erasure"
    return candidates[0]


def without(end: EndState, customer_id: str) -> EndState:
    """The end state of everyone else."""
    key = customer_id.encode()
    return replace(
        end,
        customers={k: v for k, v in end.customers.items() if k != customer_id},
        tier_changes=[row for row in end.tier_changes if row[1] != customer_id],
        outreach=[row for row in end.outreach if row[1] != customer_id],
        surveys=[row for row in end.surveys if row[1] != customer_id],
        complaints=[row for row in end.complaints if row[1] != customer_id],
        dead_letters=[row for row in end.dead_letters if row[1] != key],
    )


@dataclass
class Erase:
    """A fault for `System.drive`: erase the customer through scoring's API, then wait until
    engagement and feedback have erased their part."""

    customer_id: str
    answer: dict[str, Any] | None = None

    def __call__(self, system: System) -> None:
        url = f"{system.url('scoring')}/v1/customers/{self.customer_id}"
        for refused in (None, {}, {"reason": "x"}):  # a reason is required, and says something
            assert httpx.request("DELETE", url, json=refused, headers=ADMIN).status_code == 422
        assert httpx.get(url, headers=OPS).status_code == 200
        response = httpx.request("DELETE", url, json={"reason": "customer request 2026-11"}, headers=ADMIN)
        assert response.status_code == 202, response.text
        self.answer = response.json()
        # Scoring's part is gone when it answers; the customer is unknown to every route.
        assert httpx.get(url, headers=OPS).status_code == 404
        again = httpx.request("DELETE", url, json={"reason": "customer request 2026-11"}, headers=ADMIN)
        assert again.status_code == 404
        override = {"tier": "vip", "reason": "goodwill", "expires_at": "2099-01-01T00:00:00+00:00"}
        assert httpx.put(f"{url}/override", json=override, headers=ADMIN).status_code == 404
        for schema in ("engagement", "feedback"):
            wait_until(partial(erased_in, system, schema), 60, f"{schema} to erase")


def erased_in(system: System, schema: str) -> bool:
    return system.count(f"{schema}.erasures") == 1


def rows_naming(system: System, customer_id: str) -> dict[str, int]:
    """Rows of every table of every schema whose text or bytes hold the customer id."""
    tables = system.query(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
    )
    hex_id = customer_id.encode().hex()
    found: dict[str, int] = {}
    for schema, table in tables:
        count = system.query(
            f"SELECT count(*) FROM {schema}.{table} AS t "  # noqa: S608 - names from the catalog
            f"WHERE strpos(t::text, '{customer_id}') > 0 OR strpos(t::text, '{hex_id}') > 0"
        )[0][0]
        if count:
            found[f"{schema}.{table}"] = count
    assert len(tables) >= 20, "every schema's tables are searched"
    return found


def assert_erased_everywhere(system: System, customer_id: str, complaint_ids: list[str]) -> None:
    assert rows_naming(system, customer_id) == {}
    with httpx.Client(headers=OPS, timeout=10) as client:
        scoring = f"{system.url('scoring')}/v1/customers"
        assert client.get(f"{scoring}/{customer_id}").status_code == 404
        assert client.get(f"{scoring}/{customer_id}/tier-history").status_code == 404
        listed = client.get(scoring, params={"limit": 1000}).json()["items"]
        assert customer_id not in {item["customer_id"] for item in listed}
        outreach = client.get(f"{system.url('engagement')}/v1/outreach", params={"customer_id": customer_id})
        assert outreach.json() == []
        for complaint_id in complaint_ids:
            assert client.get(f"{system.url('feedback')}/v1/complaints/{complaint_id}").status_code == 404


def refused_dead_letters(system: System, customer_id: str) -> list[tuple[Any, ...]]:
    letters = [row for row in system.dead_letters() if row[1] == customer_id.encode()]
    assert {reason for _, _, reason in letters} <= {ERASED_REASON}
    return letters


def test_an_erased_customer_is_gone_everywhere_and_stays_gone_after_resends_and_a_replay(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    customer_id = erased_customer(stream, undisturbed)
    cut = round(len(stream.feedback) * FEEDBACK_SHARE)
    later = [r for r in stream.feedback[cut:] if r["data"]["customer_id"] == customer_id]
    # What the bank would still send about them is refused at the door (checked below), so the
    # run sends everything else.
    feedback = [r for r in stream.feedback if r not in later]
    complaint_ids = sorted(
        {
            r["data"]["complaint_id"]
            for r in stream.feedback
            if r["data"]["customer_id"] == customer_id and r["type"] == "feedback.complaint.v1"
        }
    )
    erase = Erase(customer_id)
    with running_system(infra) as system:
        end = system.drive(Stream(stream.bank, feedback), feedback={cut / len(feedback): erase})

        assert erase.answer is not None
        assert erase.answer["customer_id"] == customer_id
        assert_same_end_state(without(end, customer_id), without(undisturbed, customer_id))
        assert customer_id not in end.customers
        removed = {
            schema: json.loads(row[0])
            for schema in ("scoring", "engagement", "feedback")
            for row in system.query(f"SELECT removed::text FROM {schema}.erasures")  # noqa: S608
        }
        assert removed["scoring"]["customers"] == 1
        assert removed["scoring"]["tier_history"] > 0
        assert removed["engagement"]["items"] > 0
        assert removed["feedback"]["surveys"] > 0
        assert removed["feedback"]["complaints"] > 0
        erasure_events = [
            m
            for m in read_messages(infra.bootstrap_servers, system.topic(TIER_CHANGES))
            if json.loads(m.value)["type"] == "customer.erased.v1"
        ]
        assert [m.key for m in erasure_events] == [customer_id.encode()]
        assert_erased_everywhere(system, customer_id, complaint_ids)
        refused_in_flight = len(refused_dead_letters(system, customer_id))

        # Their later feedback is refused at the door, naming the item.
        for kind, path in FEEDBACK_PATHS.items():
            bodies = [r["data"] for r in later if r["type"] == kind]
            if not bodies:
                continue
            answer = httpx.post(
                f"{system.url('feedback')}{path}",
                json=bodies,
                headers={"authorization": f"Bearer {INGEST_KEY}"},
            )
            assert answer.status_code == 422, answer.text
            assert {(e["index"], e["field"]) for e in answer.json()["errors"]} == {
                (index, "customer_id") for index in range(len(bodies))
            }

        # A resend of their bank events is accepted by ingest and refused by scoring.
        resent = [e for e in stream.bank if e["data"]["customer_id"] == customer_id][:5]
        posted = httpx.post(f"{system.url('ingest')}/v1/events", json=resent, headers=ADMIN, timeout=30)
        assert posted.status_code == 202, posted.text
        wait_until(
            lambda: len(refused_dead_letters(system, customer_id)) == refused_in_flight + len(resent),
            60,
            "the resent events to be refused",
        )

        # A replay rebuilds everyone else's state as it was and refuses the customer's events
        # again. (Its tier changes are not the undisturbed run's: it reads the bank's events and
        # the feedback together, in an order no run fixes.)
        system.running["scoring"][0].stop()
        asyncio.run(replay(infra.settings(**system.env())))
        system.restart("scoring")
        system.settle()
        rebuilt = system.end_state()
        assert without(rebuilt, customer_id).customers == without(end, customer_id).customers
        assert_erased_everywhere(system, customer_id, complaint_ids)
        assert len(refused_dead_letters(system, customer_id)) > refused_in_flight + len(resent)
