"""Running scoring against its own database and topics, and reading what it did."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from aiokafka import ConsumerRecord
from aiokafka.partitioner import murmur2
from confluent_kafka import Producer

from services.scoring.domain.codec import decode as decode_state
from services.scoring.domain.events import ScoringEvent
from services.scoring.domain.household import contribution_of
from services.scoring.handlers import event_decoder
from shared.consumer import Delivered
from shared.contracts.types import MONEY_CONTEXT
from shared.settings import Settings
from shared.topics import BANK_EVENTS, FEEDBACK_EVENTS, TIER_CHANGES, Topics
from tests.infra import (
    OPS_KEY,
    Infra,
    ServiceProcess,
    create_topics,
    fetch_rows,
    fresh_database,
    start_service,
)


@dataclass
class ScoringSandbox:
    """Topics with a prefix of their own and a database of their own: runs never share state."""

    infra: Infra
    prefix: str = field(default_factory=lambda: f"s{uuid.uuid4().hex[:8]}.")
    database_url: str = ""
    group: str = field(default_factory=lambda: f"scoring-{uuid.uuid4().hex[:8]}")
    services: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.database_url = fresh_database(self.infra, self.prefix.strip(".").replace(".", "_"))
        create_topics(self.infra.settings(TIERFLOW_TOPIC_PREFIX=self.prefix))

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "TIERFLOW_TOPIC_PREFIX": self.prefix,
            "TIERFLOW_SCORING_GROUP": self.group,
            "TIERFLOW_ENGAGEMENT_GROUP": f"{self.group}-engagement",
            "TIERFLOW_FEEDBACK_GROUP": f"{self.group}-feedback",
            "TIERFLOW_HOUSEHOLD_GROUP": f"{self.group}-households",
            "TIERFLOW_REVIEW_POLL_S": "0.5",
            **extra,
        }

    def start(self, service: str = "scoring", **extra: str) -> ServiceProcess:
        running = start_service(self.infra, service, **self.env(**extra))
        self.services.append(running)
        return running

    def stop_all(self) -> None:
        for service in self.services:
            service.stop()

    def produce(self, events: list[dict[str, Any]], topic: str = BANK_EVENTS) -> None:
        produce(self.infra.bootstrap_servers, self.topics.name(topic), events)

    def feedback_topic(self) -> str:
        return FEEDBACK_EVENTS

    def tier_changes_topic(self) -> str:
        return self.topics.name(TIER_CHANGES)

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return fetch_rows(self.database_url, sql, *args)

    def applied(self) -> int:
        return int(self.query("SELECT count(*) FROM scoring.applied_events")[0][0])

    def snapshot(self) -> dict[str, Any]:
        """The end state in a form two runs can be compared by: features, tiers, the change set."""
        customers = {
            row["customer_id"]: (
                row["tier"],
                row["stage"],
                json.loads(row["state"])["features"]["txn_count"],
                json.loads(row["state"])["features"]["txn_amount"],
                json.loads(row["state"])["features"]["last_txn_at"],
                json.loads(row["state"])["features"]["balances"],
            )
            for row in self.query(
                "SELECT customer_id, tier, stage, state::text AS state FROM scoring.customers"
            )
        }
        changes = sorted(
            tuple(row)
            for row in self.query(
                "SELECT customer_id, coalesce(previous_tier, '-'), tier, coalesce(previous_stage, '-'), "
                "stage, caused_by FROM scoring.tier_history WHERE trigger = 'event'"
            )
        )
        return {"customers": customers, "changes": changes}


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Write CloudEvents straight to a topic with librdkafka, as a core system may."""
    # murmur2: the partitioner of aiokafka and the Java client, so a key maps to the same partition.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all", "partitioner": "murmur2_random"}
    )
    for event in events:
        producer.produce(
            topic,
            key=event["data"]["customer_id"].encode(),
            value=json.dumps(event).encode(),
            headers={"content-type": b"application/cloudevents+json"},
        )
        producer.poll(0)
    assert producer.flush(60) == 0


def view(service: ServiceProcess, customer_id: str) -> httpx.Response:
    return httpx.get(
        f"{service.base_url}/v1/customers/{customer_id}",
        headers={"authorization": f"Bearer {OPS_KEY}"},
        timeout=10,
    )


def metric(service: ServiceProcess, name: str) -> float:
    for line in httpx.get(f"{service.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def as_delivered(
    settings: Settings, events: list[dict[str, Any]], partition: int = 0, topic: str = BANK_EVENTS
) -> list[Delivered[ScoringEvent]]:
    """CloudEvents as scoring's consumer hands them over from one partition, decoded the same way."""
    decode = event_decoder(settings)
    items = []
    for offset, event in enumerate(events):
        key = event["data"]["customer_id"].encode()
        value = json.dumps(event).encode()
        record = ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key), len(value), ())
        items.append(Delivered(decode(record), topic, partition, offset))
    return items


def partition_neighbour(customer_id: str, partitions: int = 4) -> str:
    """Another customer whose events land in `customer_id`'s partition of a topic of `partitions`
    (murmur2 of the key, as producers place them; `create_topics` makes 4): its events move
    the event clock that judges `customer_id`."""

    candidates = (f"{customer_id}-N{n}" for n in range(1_000))
    mine = partition_of(customer_id, partitions)
    return next(other for other in candidates if partition_of(other, partitions) == mine)


def partition_of(key: str, partitions: int = 4) -> int:
    """The partition producers place `key` in (murmur2, as aiokafka and the Java client do)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


HouseholdSums = tuple[int, Decimal, Decimal, Decimal]


def household_sums(states: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, HouseholdSums]:
    """Each household's member count and AUM sums (current, 30 and 90 days), recomputed from
    its members' stored scoring states (customer id, decoded JSON state) alone.

    Summed in member order, as the household stage sums: the averages carry the money context's
    full precision, where the last digit of a sum depends on the order of its terms."""
    sums: dict[str, HouseholdSums] = {}
    for customer_id, encoded in sorted(states, key=lambda state: state[0]):
        mine = contribution_of(decode_state(customer_id, dict(encoded)), None)
        if mine is None:
            continue
        count, aum, avg_30d, avg_90d = sums.get(mine.household_id, (0, Decimal(0), Decimal(0), Decimal(0)))
        sums[mine.household_id] = (
            count + 1,
            MONEY_CONTEXT.add(aum, mine.aum),
            MONEY_CONTEXT.add(avg_30d, mine.aum_avg_30d),
            MONEY_CONTEXT.add(avg_90d, mine.aum_avg_90d),
        )
    return sums
