"""Bad data never blocks good data: well-formed CloudEvents with wrong or missing data, on every
partition of every consumed topic ahead of the normal traffic, are each dead-lettered with the
field named, and everything else is applied as if they had never been sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Producer

from services.scoring.household_messages import CONTRIBUTION
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import COMPLAINT, PROFILE_CHANGED, SURVEY, SURVEY_REQUESTED, TIER_CHANGED
from shared.topics import (
    BANK_EVENTS,
    CONSUMED,
    CONSUMED_BY,
    DLQ_SUFFIX,
    FEEDBACK_EVENTS,
    HOUSEHOLD_CONTRIBUTIONS,
    OUTREACH,
    TIER_CHANGES,
)
from tests import factories
from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.faults

Event = dict[str, Any]
FAR_FUTURE = "9999-01-01T00:00:00Z"


MISSING = object()  # a data change that removes the field


@dataclass(frozen=True)
class BadCase:
    """One way an event can be wrong."""

    name: str
    topic: str
    make: Callable[[str], Event]  # a valid event about a customer
    data: dict[str, object]  # then these data fields changed (MISSING: removed)
    names: str  # the field its dead letter must name
    envelope: dict[str, object] = field(default_factory=dict)  # and these envelope attributes

    def event(self, customer_id: str, event_id: str) -> Event:
        event = self.make(customer_id)
        data = {k: v for k, v in {**event["data"], **self.data}.items() if v is not MISSING}
        return {**event, **self.envelope, "id": event_id, "data": data}


TRANSACTION, BALANCE = factories.transaction, factories.balance
CASES = [
    BadCase("transaction without amount", BANK_EVENTS, TRANSACTION, {"amount": MISSING}, "data.amount"),
    BadCase("amount with a digit separator", BANK_EVENTS, TRANSACTION, {"amount": "5_000"}, "data.amount"),
    BadCase("amount with an exponent", BANK_EVENTS, TRANSACTION, {"amount": "1E+21"}, "data.amount"),
    BadCase("amount in non-ASCII digits", BANK_EVENTS, TRANSACTION, {"amount": "١٢٣"}, "data.amount"),
    BadCase("direction not text", BANK_EVENTS, TRANSACTION, {"direction": 7}, "data.direction"),
    BadCase("balance as of year 9999", BANK_EVENTS, BALANCE, {"as_of": FAR_FUTURE}, "data.as_of"),
    BadCase("aum with a comma", BANK_EVENTS, BALANCE, {"aum": "12,000.00"}, "data.aum"),
    BadCase("balance without customer", BANK_EVENTS, BALANCE, {"customer_id": MISSING}, "data.customer_id"),
    BadCase("consents not an object", BANK_EVENTS, factories.customer, {"consents": "all"}, "data.consents"),
    BadCase(
        "opened in year 9999", BANK_EVENTS, factories.customer, {"opened_at": FAR_FUTURE}, "data.opened_at"
    ),
    BadCase("interaction kind not text", BANK_EVENTS, factories.interaction, {"kind": 42}, "data.kind"),
    BadCase("unknown interaction kind", BANK_EVENTS, factories.interaction, {"kind": "séance"}, "data.kind"),
    BadCase("survey without id", FEEDBACK_EVENTS, factories.survey, {"survey_id": MISSING}, "data.survey_id"),
    BadCase("score as text", FEEDBACK_EVENTS, factories.survey, {"score": "ten"}, "data.score"),
    BadCase(
        "answered in year 9999",
        FEEDBACK_EVENTS,
        factories.survey,
        {"answered_at": FAR_FUTURE},
        "data.answered_at",
    ),
    BadCase(
        "complaint without id",
        FEEDBACK_EVENTS,
        factories.complaint,
        {"complaint_id": MISSING},
        "data.complaint_id",
    ),
    BadCase("severity not text", FEEDBACK_EVENTS, factories.complaint, {"severity": 3}, "data.severity"),
    BadCase(
        "complained in year 9999",
        FEEDBACK_EVENTS,
        factories.complaint,
        {"opened_at": FAR_FUTURE},
        "data.opened_at",
    ),
    BadCase("change without tier", TIER_CHANGES, factories.tier_changed, {"tier": MISSING}, "data.tier"),
    BadCase("tier not text", TIER_CHANGES, factories.tier_changed, {"tier": 3}, "data.tier"),
    BadCase(
        "profile not an object",
        TIER_CHANGES,
        factories.tier_changed,
        {"profile": "BR-SH-001"},
        "data.profile",
    ),
    BadCase(
        "consents as text",
        TIER_CHANGES,
        factories.tier_changed,
        {"profile": {"consents": "all"}},
        "data.profile.consents",
    ),
    BadCase(
        "complaints as text",
        TIER_CHANGES,
        factories.tier_changed,
        {"complaints_open_high": "2"},
        "data.complaints_open_high",
    ),
    BadCase("nps out of range", TIER_CHANGES, factories.tier_changed, {"nps_latest": 11}, "data.nps_latest"),
    BadCase("unknown trigger", TIER_CHANGES, factories.tier_changed, {"trigger": "whim"}, "data.trigger"),
    BadCase("changed in year 9999", TIER_CHANGES, factories.tier_changed, {}, "time", {"time": FAR_FUTURE}),
    BadCase(
        "transfer naming no change",
        TIER_CHANGES,
        factories.profile_changed,
        {"changed": []},
        "data.changed",
    ),
    BadCase(
        "previous branch not text",
        TIER_CHANGES,
        factories.profile_changed,
        {"previous_branch_id": 5},
        "data.previous_branch_id",
    ),
    BadCase(
        "sequence as text",
        HOUSEHOLD_CONTRIBUTIONS,
        factories.household_contribution,
        {"sequence": "3"},
        "data.sequence",
    ),
    BadCase(
        "household without member",
        HOUSEHOLD_CONTRIBUTIONS,
        factories.household_contribution,
        {"member_id": MISSING},
        "data.member_id",
    ),
    BadCase(
        "request without outreach",
        OUTREACH,
        factories.survey_requested,
        {"outreach_id": MISSING},
        "data.outreach_id",
    ),
    BadCase("request with unknown tier", OUTREACH, factories.survey_requested, {"tier": "gold"}, "data.tier"),
    BadCase(
        "customer id not text", OUTREACH, factories.survey_requested, {"customer_id": 7}, "data.customer_id"
    ),
    BadCase(
        "requested in year 9999",
        OUTREACH,
        factories.survey_requested,
        {"requested_at": FAR_FUTURE},
        "data.requested_at",
    ),
]
CONSUMED_TYPES = {
    *INBOUND_DATA_MODELS,
    SURVEY,
    COMPLAINT,
    TIER_CHANGED,
    PROFILE_CHANGED,
    SURVEY_REQUESTED,
    CONTRIBUTION,
}


def readers(topic: str) -> list[str]:
    return sorted(service for service, topics in CONSUMED_BY.items() if topic in topics)


@dataclass(frozen=True)
class Planted:
    """A bad record as produced: where it went and what its dead letter must say."""

    topic: str
    partition: int
    key: bytes
    field: str


def plant(system: System) -> list[Planted]:
    """Every case on every partition of its topic, produced straight to it, partition chosen."""
    producer = Producer({"bootstrap.servers": system.infra.bootstrap_servers, "acks": "all"})
    planted: list[Planted] = []
    for number, case in enumerate(CASES):
        topic = system.topic(case.topic)
        for partition in sorted(producer.list_topics(topic, timeout=10).topics[topic].partitions):
            key = f"BAD{number:02d}-P{partition}".encode()
            event = case.event(key.decode(), f"bad-{number}-{partition}")
            value = json.dumps(event, ensure_ascii=False).encode()
            producer.produce(topic, key=key, value=value, partition=partition)
            planted.append(Planted(case.topic, partition, key, case.names))
    assert producer.flush(30) == 0
    return planted


def test_the_cases_cover_every_consumed_type_several_ways_on_every_consumed_topic() -> None:
    types = [case.event("C1", "e1")["type"] for case in CASES]
    assert {t: types.count(t) >= 2 for t in CONSUMED_TYPES} == dict.fromkeys(CONSUMED_TYPES, True)
    assert {case.topic for case in CASES} == set(CONSUMED)


def test_bad_data_on_every_partition_is_dead_lettered_and_the_good_data_behind_it_applied(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    with running_system(infra) as system:
        planted = plant(system)
        # The normal traffic, as the undisturbed run sends it, behind the bad records.
        system.send(stream.bank, batch=50).join()
        system.settle()
        system.send(stream.feedback, batch=5).join()
        system.settle()
        end = system.end_state()
        lag = _lag_by_partition(system)
        dead = {
            topic: read_messages(infra.bootstrap_servers, system.topic(topic) + DLQ_SUFFIX)
            for topic in CONSUMED
        }

    partitions = {(p.topic, p.partition) for p in planted}
    assert len(partitions) >= 4 * len(CONSUMED), "every partition of every consumed topic gets bad data"
    # Each bad record once on its topic's .dlq per service reading the topic, and nothing else.
    expected = sorted((p.topic, p.key) for p in planted for _ in readers(p.topic))
    assert sorted((topic, key) for topic, key, _ in end.dead_letters) == expected
    field_of = {(p.topic, p.key): p.field for p in planted}
    unnamed = [(t, k, why) for t, k, why in end.dead_letters if f"{field_of[(t, k)]}:" not in why]
    assert not unnamed, unnamed[:3]
    partition_of = {(p.topic, p.key): p.partition for p in planted}
    for topic, messages in dead.items():
        assert all(
            m.headers["tierflow-source-partition"] == str(partition_of[(topic, m.key or b"")]).encode()
            for m in messages
        )
    assert not {where: n for where, n in lag.items() if n}, "no partition lags"
    assert_same_end_state(EndState(**{**vars(end), "dead_letters": []}), undisturbed)


def _lag_by_partition(system: System) -> dict[tuple[str, str, int], int]:
    """Every consuming group's uncommitted records on each partition of each topic it reads."""
    lag = system.lag_by_partition()
    assert len(lag) >= 4 * sum(len(t) for t in CONSUMED_BY.values()), lag
    return lag
