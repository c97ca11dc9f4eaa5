"""The whole of TierFlow on a database and topics of its own, driven by a simulated bank.

A run has two phases: the bank's core-banking events through ingest, then its surveys and
complaints through the feedback API, each drained before the next. The contract promises
no order between a customer's bank events and their feedback (two topics), so sending
them in phases is what makes two runs comparable decision by decision. Scoring runs on
the fixed clock (as of the end of the simulated year), so decisions do not depend on when
the run happens either.

A fault lands at a point of the stream fixed in advance, never where a poll happens to catch
the senders: `drive` sends a phase's records up to the fault's share and waits until every one
is accepted, then injects the fault, then sends the rest. A fault that must be under way while
records arrive (a broker outage, a dead worker) yields once: the rest is sent from that point
while the fault's remaining steps run, and they must end on their own (restore, restart).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.kafka import group_lag
from shared.topics import CONSUMED, Topics
from tests.infra import (
    ADMIN_KEY,
    Infra,
    ServiceProcess,
    create_topics,
    fetch_rows,
    fresh_database,
    start_service,
    start_services,
    stop_services,
    wait_until,
)
from tests.integration.scoring_support import HouseholdSums, household_sums
from tests.kafka_reader import read_messages
from tierflow.demo import WORKERS, pending_work
from tierflow.lag import worker_groups
from tierflow.simulate import Bank, is_bank_event, records
from tierflow.stack import SERVICES

Event = dict[str, Any]
BANK = Bank(customers=150, events_per_customer=30, seed=2026, branches=4)
# Scoring's household stage stays with its consumer: without it no contribution is folded.
RELAYED_APART = {"scoring": "consumer,review,households", "engagement": "consumer,expiry"}
# Groups that a loop of another service's process consumes in (`worker_groups` names them apart).
HOSTED_BY = {"households": "scoring"}
FEEDBACK_PATHS = {"feedback.survey.v1": "/v1/surveys", "feedback.complaint.v1": "/v1/complaints"}
# Injects a fault into a running system; a generator yields once, where the rest of the stream
# is to be sent while it goes on.
Fault = Callable[["System"], Iterator[None] | None]


@dataclass(frozen=True)
class Stream:
    bank: list[Event]
    feedback: list[Event]

    @classmethod
    def of(cls, bank: Bank) -> Stream:
        everything = list(records(bank))
        return cls(
            [r for r in everything if is_bank_event(r)], [r for r in everything if not is_bank_event(r)]
        )


@dataclass(frozen=True)
class EndState:
    """What a run leaves behind, without ids of rows or times of processing."""

    customers: dict[str, Any]
    tier_changes: list[tuple[Any, ...]]
    outreach: list[tuple[Any, ...]]
    surveys: list[tuple[Any, ...]]
    complaints: list[tuple[Any, ...]]
    dead_letters: list[tuple[Any, ...]]
    households: list[tuple[Any, ...]]
    household_members: list[tuple[Any, ...]]

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__dataclass_fields__}

    def differences(self, reference: EndState, limit: int = 5) -> str:
        lines = [f"counts {self.counts()} vs undisturbed {reference.counts()}"]
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(reference, name)
            if mine == theirs:
                continue
            if isinstance(mine, dict):
                keys = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
                lines += [f"{name}[{k}]: {mine.get(k)} != {theirs.get(k)}" for k in keys[:limit]]
            else:
                lines += [f"{name} only here: {row}" for row in sorted(set(mine) - set(theirs))[:limit]]
                lines += [
                    f"{name} only undisturbed: {row}" for row in sorted(set(theirs) - set(mine))[:limit]
                ]
        return "\n".join(lines)

    def household_mismatches(self) -> list[str]:
        """Households whose member count and AUM sums are not those recomputed from their
        members' states (a member counted twice, or kept after leaving, shows here)."""
        recomputed = household_sums((cid, state) for cid, (_, _, state) in self.customers.items())
        kept = {row[0]: (row[1], *row[2:5]) for row in self.households}
        none: HouseholdSums = (0, Decimal(0), Decimal(0), Decimal(0))
        return [
            f"household {h}: {kept.get(h, none)} kept, {recomputed.get(h, none)} from its members"
            for h in sorted(kept.keys() | recomputed.keys())
            if kept.get(h, none) != recomputed.get(h, none)
        ]


def assert_same_end_state(actual: EndState, reference: EndState) -> None:
    assert actual == reference, actual.differences(reference)
    assert_households_add_up(actual)


def assert_households_add_up(end: EndState) -> None:
    assert not end.household_mismatches(), "\n".join(end.household_mismatches()[:5])


@dataclass
class System:
    infra: Infra
    name: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    settings: dict[str, str] = field(default_factory=dict)
    running: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    # 429s and 503s the senders were answered (and waited out), by status.
    refusals: dict[int, int] = field(default_factory=dict)
    accepted: int = 0  # records the senders got a 2xx for

    @cached_property
    def database_url(self) -> str:
        return fresh_database(self.infra, self.name)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "TIERFLOW_TOPIC_PREFIX": f"{self.name}.",
            "TIERFLOW_SCORING_GROUP": self.group("scoring"),
            "TIERFLOW_ENGAGEMENT_GROUP": self.group("engagement"),
            "TIERFLOW_FEEDBACK_GROUP": self.group("feedback"),
            "TIERFLOW_HOUSEHOLD_GROUP": self.group("households"),
            "TIERFLOW_SCORING_CLOCK": "fixed",
            "TIERFLOW_SCORING_AS_OF": BANK.end.isoformat(),
            "TIERFLOW_REVIEW_POLL_S": "0.5",
            "TIERFLOW_RETRY_AFTER_S": "1",
            "TIERFLOW_KAFKA_PUBLISH_TIMEOUT_S": "5",
            **self.settings,
            **extra,
        }

    def start(self, service: str, role: str | None = None, **extra: str) -> ServiceProcess:
        """Another instance of `service`; `role` names it when it runs only some loops."""
        process = start_service(self.infra, service, **self.env(**extra))
        self.running.setdefault(role or service, []).append(process)
        return process

    def start_instances(self, *services: str) -> None:
        """Another instance of each of `services`, all started at once."""
        self._start_roles([(service, service, {}) for service in services])

    def _start_roles(self, roles: Sequence[tuple[str, str, dict[str, str]]]) -> None:
        """Each (service, role, environment) as a process, all started at once."""
        started = start_services(self.infra, [(service, self.env(**extra)) for service, _, extra in roles])
        for (_, role, _), process in zip(roles, started, strict=True):
            self.running.setdefault(role, []).append(process)

    def start_all(self, relays_apart: bool = False) -> None:
        """The four services; with `relays_apart`, scoring's and engagement's outbox relays run as
        processes of their own (roles `scoring-relay`, `engagement-relay`)."""
        create_topics(self.infra.settings(TIERFLOW_TOPIC_PREFIX=f"{self.name}."))
        roles: list[tuple[str, str, dict[str, str]]] = []
        for service in SERVICES:
            if relays_apart and service in RELAYED_APART:
                roles.append((service, service, {"TIERFLOW_LOOPS": RELAYED_APART[service]}))
                roles.append((service, f"{service}-relay", {"TIERFLOW_LOOPS": "outbox-relay"}))
            else:
                roles.append((service, service, {}))
        self._start_roles(roles)

    def stop_all(self) -> None:
        stop_services(process for processes in self.running.values() for process in processes)

    def url(self, service: str) -> str:
        return self.running[service][0].base_url

    def topic(self, name: str) -> str:
        return f"{self.name}.{name}"

    # -- driving -------------------------------------------------------------------------

    def send(self, stream: Sequence[Event], batch: int = 50, senders: int = 1) -> Sending:
        """Bank events to ingest and feedback records to feedback, in the background.

        With several senders each customer still has one: their records stay in order.
        """
        lanes: list[list[tuple[str, str, list[Event]]]] = [[] for _ in range(senders)]
        by_lane: list[list[Event]] = [[] for _ in range(senders)]
        for record in stream:
            by_lane[zlib.crc32(record["data"]["customer_id"].encode()) % senders].append(record)
        for lane, lane_records in zip(lanes, by_lane, strict=True):
            for start in range(0, len(lane_records), batch):
                lane += _posts(lane_records[start : start + batch])
        return Sending(self, lanes)

    def drive(
        self,
        stream: Stream,
        bank: Mapping[float, Fault] | None = None,
        feedback: Mapping[float, Fault] | None = None,
        senders: int = 1,
    ) -> EndState:
        """Both phases of `stream`, each settled; `bank` and `feedback` map the share of a phase's
        records accepted before a fault to that fault."""
        for part, faults, batch in ((stream.bank, bank, 50), (stream.feedback, feedback, 5)):
            self._send_in_steps(part, faults or {}, batch, senders)
            self.settle()
        return self.end_state()

    def _send_in_steps(
        self, records: Sequence[Event], faults: Mapping[float, Fault], batch: int, senders: int
    ) -> None:
        assert all(0 < share <= 1 for share in faults), f"a fault lands inside its phase: {sorted(faults)}"
        steps = sorted(faults.items())
        cuts = [0, *(round(len(records) * share) for share, _ in steps), len(records)]
        under_way: Iterator[None] | None = None
        for n, (start, end) in enumerate(pairwise(cuts)):
            sending = self.send(records[start:end], batch, senders)
            if under_way is not None:
                _finish(under_way)  # while this part is sent
                under_way = None
            sending.join()
            if n < len(steps):
                under_way = _inject(steps[n][1], self)

    # -- faults --------------------------------------------------------------------------

    def metric(self, service: str, name: str, instance: int = 0) -> float:
        text = httpx.get(f"{self.running[service][instance].base_url}/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def restart(self, service: str, instance: int = 0) -> None:
        self.running[service][instance].start()

    def kill(self, service: str, instance: int = 0) -> ServiceProcess:
        process = self.running[service][instance]
        assert process.process is not None, f"{service} is not running"
        process.process.send_signal(signal.SIGKILL)
        process.process.wait(10)
        process.process = None
        return process

    # -- observing -----------------------------------------------------------------------

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608

    def wait_for_rows(self, table: str, at_least: int, timeout_s: float = 120) -> None:
        wait_until(lambda: self.count(table) >= at_least, timeout_s, f"{at_least} rows in {table}")

    def query(self, sql: str) -> list[asyncpg.Record]:
        return fetch_rows(self.database_url, sql)

    def settle(self, timeout_s: float = 240) -> None:
        """Until every outbox is empty, every group has committed all its topics hold, no worker
        reports work, and nothing moves for three polls and at least `QUIET_S`."""
        deadline = time.monotonic() + timeout_s
        last: tuple[int, ...] | None = None
        quiet, quiet_since = 0, time.monotonic()
        while quiet < 3 or time.monotonic() - quiet_since < QUIET_S:
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled within {timeout_s:.0f} s: {self._unsettled()}")
            time.sleep(SETTLE_POLL_S)
            counts = self._counts((*_PROGRESS_TABLES, *_OUTBOXES))
            progress = tuple(counts[t] for t in _PROGRESS_TABLES)
            still = progress == last and not any(counts[t] for t in _OUTBOXES)
            still = still and not any(self._pending().values())
            # The brokers' view last: it also sees partitions no member holds during a rebalance.
            if still and not any(self._group_lag().values()):
                quiet += 1
            else:
                quiet, quiet_since = 0, time.monotonic()
            last = progress

    def _counts(self, tables: Sequence[str]) -> dict[str, int]:
        """The rows of each table, counted in one statement (one snapshot, one connection)."""
        counts = ", ".join(f"(SELECT count(*) FROM {table})" for table in tables)  # noqa: S608
        (row,) = self.query(f"SELECT {counts}")
        return {table: int(count) for table, count in zip(tables, row, strict=True)}

    def _group_lag(self) -> dict[str, int]:
        lag: Counter[str] = Counter()
        for (service, _, _), uncommitted in self.lag_by_partition().items():
            lag[service] += uncommitted
        return dict(lag)

    def lag_by_partition(self) -> dict[tuple[str, str, int], int]:
        """Every worker group's uncommitted records on each partition of each topic it reads, as
        the broker sees them (`tierflow lag`'s numbers, the groups asked all at once)."""
        settings = self.infra.settings(**self.env())
        topics = Topics.from_settings(settings)

        async def lags() -> dict[tuple[str, str, int], int]:
            groups = await worker_groups(settings)
            answers = await asyncio.gather(
                *(
                    group_lag(settings, group, topics.consumed_by(service))
                    for service, group in groups.items()
                )
            )
            return {
                (service, partition.topic, partition.partition): uncommitted
                for service, answer in zip(groups, answers, strict=True)
                for partition, uncommitted in answer.items()
            }

        return asyncio.run(lags())

    def group(self, service: str) -> str:
        return f"{self.name}-{service}"

    def held_partitions(self, service: str, instance: int) -> set[str]:
        """The partitions (`topic[n]`) an instance holds in its service's group, as its log says."""
        held: set[str] = set()
        for line in self.running[service][instance].logs().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("group") != self.group(service):
                continue
            if entry.get("event") == "partitions assigned":
                held = set(entry["partitions"])
            elif entry.get("event") == "partitions revoked":
                held -= set(entry["partitions"])
        return held

    def _outboxes(self) -> dict[str, int]:
        return {schema: self.count(f"{schema}.outbox") for schema in WORKERS}

    def _pending(self) -> dict[tuple[str, int], int]:
        """Each live worker instance's unprocessed records and unrelayed rows, as it reports them."""
        return {
            (service, n): pending_work(process.base_url)
            for service in WORKERS
            for n, process in enumerate(self.running[service])
            if process.process is not None
        }

    def _unsettled(self) -> str:
        progress = {table: self.count(table) for table in _PROGRESS_TABLES}
        pending, lag = self._pending(), self._group_lag()
        behind = {s for (s, _), work in pending.items() if work}
        behind |= {HOSTED_BY.get(s, s) for s, n in lag.items() if n}
        logs = "".join(
            f"\n--- {service}[{n}]'s log ends:\n" + "\n".join(process.logs().splitlines()[-30:])
            for service in sorted(behind)
            for n, process in enumerate(self.running[service])
        )
        return f"progress {progress}, outboxes {self._outboxes()}, group lag {lag}, pending {pending}{logs}"

    def end_state(self) -> EndState:
        return EndState(
            customers={
                row["customer_id"]: (row["tier"], row["stage"], json.loads(row["state"]))
                for row in self.query(
                    "SELECT customer_id, tier, stage, state::text AS state FROM scoring.customers"
                )
            },
            tier_changes=self._rows(
                "SELECT change_id::text, customer_id, previous_tier, tier, previous_stage, stage, direction, "
                "score, policy_version, reasons::text, caused_by, trigger, at FROM scoring.tier_history"
            ),
            outreach=self._rows(
                "SELECT id::text, customer_id, branch_id, rule, kind, category, channel, priority, status, "
                "template, product, reason, trigger_event_id, context_tier, context_stage, assigned_to, "
                "cancel_reason FROM engagement.items"
            ),
            surveys=self._rows(
                "SELECT survey_id, customer_id, kind, score, comment, outreach_id, answered_at, branch_id, "
                "channel FROM feedback.surveys"
            ),
            complaints=self._rows(
                "SELECT complaint_id, customer_id, severity, category, status, opened_at, resolved_at, "
                "branch_id FROM feedback.complaints"
            ),
            dead_letters=self.dead_letters(),
            households=self._rows(
                "SELECT household_id, members, aum, aum_avg_30d, aum_avg_90d, "
                "array_to_string(products, ','), tier, primary_id, rm_id, branch_id FROM scoring.households"
            ),
            # Current members only, without the sequence: it counts the member's publications, and
            # how many a member's events make depends on how they were batched (one per batch), not
            # on what they say. So does the marker a member who left leaves behind (a row without a
            # contribution, to refuse their stale messages): a member who joins and leaves within
            # one batch never joined as far as the household is concerned, and leaves no marker.
            household_members=self._rows(
                "SELECT household_id, member_id, contribution::text FROM scoring.household_members"
                " WHERE contribution IS NOT NULL"
            ),
        )

    def dead_letters(self) -> list[tuple[Any, ...]]:
        """(source topic, key, reason) of every dead-lettered record."""
        topics = Topics(f"{self.name}.")
        return sorted(
            (dead, message.key, message.headers.get("tierflow-error", b"").decode())
            for dead in CONSUMED
            for message in read_messages(self.infra.bootstrap_servers, topics.dlq(dead))
        )

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(row) for row in self.query(sql))


# `settle` looks this often; whatever it waits for, nothing is taken as settled before the
# progress tables have stood still for QUIET_S, several polls of the loops that act on their own
# (scoring's review runs every TIERFLOW_REVIEW_POLL_S, 0.5 s, here).
SETTLE_POLL_S = 0.2
QUIET_S = 2.0
_PROGRESS_TABLES = (
    "scoring.applied_events",
    "scoring.tier_history",
    "engagement.applied_events",
    "engagement.items",
    "feedback.applied_events",
    "feedback.surveys",
    "feedback.complaint_audit",
)
_OUTBOXES = tuple(f"{schema}.outbox" for schema in WORKERS)


def _inject(fault: Fault, system: System) -> Iterator[None] | None:
    """Runs `fault` up to its yield, if it has one, and returns what is left of it."""
    steps = fault(system)
    if steps is not None:
        next(steps, None)
    return steps


def _finish(steps: Iterator[None]) -> None:
    for _ in steps:
        raise AssertionError("a fault yields once, where the rest of the stream is to be sent")


def _posts(chunk: list[Event]) -> list[tuple[str, str, list[Event]]]:
    posts: list[tuple[str, str, list[Event]]] = []
    bank = [e for e in chunk if is_bank_event(e)]
    if bank:
        posts.append(("ingest", "/v1/events", bank))
    for kind, path in FEEDBACK_PATHS.items():
        bodies = [e["data"] for e in chunk if e["type"] == kind]
        if bodies:
            posts.append(("feedback", path, bodies))
    return posts


class Sending:
    """Posts in the background as a careful client does: the same body again after 429, 503 or a
    dropped connection, until it is accepted; anything else fails the run."""

    def __init__(self, system: System, lanes: list[list[tuple[str, str, list[Event]]]]) -> None:
        self._system = system
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(lane,), daemon=True) for lane in lanes]
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float = 300) -> None:
        for thread in self._threads:
            thread.join(timeout_s)
            assert not thread.is_alive(), "sending did not finish"
        assert not self.errors, self.errors[:3]

    def _run(self, lane: list[tuple[str, str, list[Event]]]) -> None:
        with httpx.Client(headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
            for post in lane:
                try:
                    self._deliver(client, *post)
                except AssertionError as exc:
                    self.errors.append(str(exc))
                    return

    def _deliver(self, client: httpx.Client, service: str, path: str, body: list[Event]) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = client.post(self._system.url(service) + path, json=body)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if response.is_success:
                with self._lock:
                    self._system.accepted += len(body)
                return
            if response.status_code not in (429, 503):
                raise AssertionError(
                    f"{service}{path} answered {response.status_code}: {response.text[:300]}"
                )
            assert response.headers.get("retry-after"), "a 429/503 must say when to retry"
            with self._lock:
                refusals = self._system.refusals
                refusals[response.status_code] = refusals.get(response.status_code, 0) + 1
            time.sleep(float(response.headers["retry-after"]))
        raise AssertionError(f"{service}{path} did not accept a batch within 180 s")


@contextmanager
def running_system(infra: Infra, relays_apart: bool = False, **settings: str) -> Iterator[System]:
    system = System(infra, settings=settings)
    system.start_all(relays_apart)
    try:
        yield system
    finally:
        system.stop_all()
