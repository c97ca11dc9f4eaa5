"""Scoring on the real broker and database: exact totals, exactly-once effects, the stream."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from services.scoring.domain.policy import default_policy
from tests import factories
from tests.infra import INGEST_KEY, OPS_KEY, Infra, start_service, wait_until
from tests.integration.scoring_support import ScoringSandbox, metric, partition_neighbour, view
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


@pytest.fixture
def sandbox(infra: Infra) -> Iterator[ScoringSandbox]:
    box = ScoringSandbox(infra)
    yield box
    box.stop_all()


def test_totals_are_exact_for_every_customer_even_when_every_event_is_sent_twice(
    sandbox: ScoringSandbox,
) -> None:
    rng = random.Random(7)
    scoring = sandbox.start()
    ingest = start_service(sandbox.infra, "ingest", TIERFLOW_TOPIC_PREFIX=sandbox.prefix)
    sandbox.services.append(ingest)
    customers = [f"C-TOT-{n:03d}" for n in range(40)]
    events = []
    for customer_id in customers:
        events.append(factories.customer(customer_id))
        for _ in range(rng.randint(1, 12)):
            amount = Decimal(rng.randint(100, 5_000_000)) / 100
            when = NOW - timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
            events.append(
                factories.with_envelope(
                    factories.transaction(customer_id, str(amount)), time=when.isoformat()
                )
            )
        events.append(factories.balance(customer_id, aum=str(rng.randint(0, 9_000_000))))
    rng.shuffle(events)
    for start in range(0, len(events), 97):
        batch = events[start : start + 97]
        for _ in range(2):
            response = httpx.post(
                f"{ingest.base_url}/v1/events",
                json=batch,
                headers={"authorization": f"Bearer {INGEST_KEY}"},
                timeout=30,
            )
            assert response.status_code == 202

    wait_until(lambda: sandbox.applied() == len(events), 90, "every distinct event applied")
    wait_until(lambda: metric(scoring, "tierflow_events_applied_total") == len(events), 10, "the counter")
    assert metric(scoring, "tierflow_events_duplicate_total") == len(events)

    for customer_id in customers:
        transactions = [
            e
            for e in events
            if e["type"] == "bank.transaction.v1" and e["data"]["customer_id"] == customer_id
        ]
        features = view(scoring, customer_id).json()["features"]
        assert features["txn_count"] == len(transactions)
        assert Decimal(features["txn_amount"]) == sum(Decimal(e["data"]["amount"]) for e in transactions)
        latest = max(datetime.fromisoformat(e["time"]) for e in transactions)
        assert datetime.fromisoformat(features["last_txn_at"]) == latest


def test_the_same_id_from_two_sources_is_two_events_and_a_resend_of_either_counts_once(
    sandbox: ScoringSandbox,
) -> None:
    scoring = sandbox.start()
    core = factories.with_envelope(
        factories.transaction("C-SOURCES", amount="100.00"), source="core-banking", id="1"
    )
    cards = factories.with_envelope(
        factories.transaction("C-SOURCES", amount="250.00"), source="card-system", id="1"
    )
    sandbox.produce([core, cards, core, cards])
    wait_until(lambda: metric(scoring, "tierflow_events_duplicate_total") == 2, 60, "both resends seen")
    sandbox.produce([cards])
    wait_until(lambda: metric(scoring, "tierflow_events_duplicate_total") == 3, 60, "the late resend seen")

    assert sandbox.applied() == 2
    assert metric(scoring, "tierflow_events_applied_total") == 2
    features = view(scoring, "C-SOURCES").json()["features"]
    assert (features["txn_count"], features["txn_amount"]) == (2, "350.00")
    history = httpx.get(
        f"{scoring.base_url}/v1/customers/C-SOURCES/tier-history",
        headers={"authorization": f"Bearer {OPS_KEY}"},
        timeout=10,
    ).json()
    first = history[-1]
    assert first["caused_by"] == {"source": "core-banking", "id": "1"}
    published = [
        json.loads(m.value)
        for m in read_messages(
            sandbox.infra.bootstrap_servers, sandbox.tier_changes_topic(), len(history), timeout_s=30
        )
    ]
    assert [(e["id"], e["data"]["caused_by"]) for e in published] == [
        (change["change_id"], change["caused_by"]) for change in reversed(history)
    ]


def test_tier_changes_reach_the_stream_as_cloudevents_any_client_can_read(sandbox: ScoringSandbox) -> None:
    sandbox.start()
    forty_days_ago = (NOW - timedelta(days=40)).isoformat()
    sandbox.produce(
        [
            factories.transaction("C-WEALTH", amount="18250.40"),
            factories.balance("C-WEALTH", aum="620000.00", as_of=forty_days_ago),
        ]
    )
    messages = read_messages(sandbox.infra.bootstrap_servers, sandbox.tier_changes_topic(), 2, timeout_s=60)
    assert len(messages) == 2
    assert all(m.key == b"C-WEALTH" for m in messages)
    assert all(m.headers["content-type"] == b"application/cloudevents+json" for m in messages)
    events = [json.loads(m.value) for m in messages]
    assert [e["type"] for e in events] == ["customer.tier_changed.v1"] * 2
    final = events[-1]["data"]
    assert final["tier"] == "wealth"
    assert final["previous_tier"] == events[0]["data"]["tier"]
    assert final["direction"] == "upgrade"
    assert final["policy_version"] == default_policy().version
    assert {
        "rule": "tier.wealth",
        "detail": "aum_avg_30d 620000 >= 500000",
        "conditions": [
            {"feature": "aum_avg_30d", "operator": "gte", "value": "620000", "threshold": "500000"}
        ],
    } in final["reasons"]
    assert set(final) >= {
        "customer_id", "previous_tier", "tier", "previous_stage", "stage", "direction", "score",
        "policy_version", "reasons", "caused_by",
    }  # fmt: skip


def test_poison_messages_are_dead_lettered_and_the_partition_keeps_flowing(sandbox: ScoringSandbox) -> None:
    scoring = sandbox.start()
    good_before = factories.transaction("C-POISON", amount="10.00")
    good_after = factories.transaction("C-POISON", amount="20.00")
    invalid = factories.transaction("C-POISON", amount="-5")
    from tests.integration.scoring_support import produce

    topic = sandbox.topics.bank_events
    produce(sandbox.infra.bootstrap_servers, topic, [good_before, invalid])
    from confluent_kafka import Producer

    raw = Producer({"bootstrap.servers": sandbox.infra.bootstrap_servers})
    raw.produce(topic, key=b"C-POISON", value=b"\x00\x01 not json at all")
    raw.flush(10)
    produce(sandbox.infra.bootstrap_servers, topic, [good_after])

    wait_until(lambda: sandbox.applied() == 2, 60, "both good events applied")
    assert view(scoring, "C-POISON").json()["features"]["txn_amount"] == "30.00"
    dead = read_messages(
        sandbox.infra.bootstrap_servers, sandbox.topics.dlq("bank.events.v1"), 2, timeout_s=30
    )
    reasons = sorted(m.headers["tierflow-error"].decode() for m in dead)
    assert len(reasons) == 2
    assert "data.amount" in reasons[0]
    assert "not a JSON CloudEvent" in reasons[1]


def test_a_silent_customer_is_moved_to_churned_by_review_alone(sandbox: ScoringSandbox) -> None:
    scoring = sandbox.start(TIERFLOW_SCORING_CLOCK="event")
    start = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    sandbox.produce(
        [
            factories.with_envelope(
                factories.transaction("C-SILENT", amount="900.00"), time=start.isoformat()
            ),
            factories.with_envelope(factories.balance("C-SILENT", aum="20000.00"), time=start.isoformat()),
        ]
    )
    wait_until(lambda: sandbox.applied() == 2, 60, "the customer's events")
    # Time passes for C-SILENT's partition (another customer's events on it move its clock).
    later = (start + timedelta(days=200)).isoformat()
    neighbour = factories.interaction(partition_neighbour("C-SILENT"))
    sandbox.produce([factories.with_envelope(neighbour, time=later)])

    def churned() -> bool:
        stage: str = view(scoring, "C-SILENT").json()["stage"]
        return stage == "churned"

    wait_until(churned, 60, "the review to churn the silent customer")
    history = httpx.get(
        f"{scoring.base_url}/v1/customers/C-SILENT/tier-history",
        headers={"authorization": "Bearer test-ops-key-0003"},
    ).json()
    churn = history[0]
    assert (churn["stage"], churn["caused_by"], churn["trigger"]) == ("churned", "review", "review")
    assert start + timedelta(days=180) <= datetime.fromisoformat(churn["at"]) <= start + timedelta(days=181)
