"""Scoring benchmark: raw consume, raw upsert and TierFlow's end-to-end rate, side by side.

    make bench                         # 100,000 customers, 1,000,000 events
    BENCH_CUSTOMERS=20000 BENCH_EVENTS=200000 make bench
    BENCH_CUSTOMERS=1000000 make bench  # the end-of-day feed of a million customers
    BENCH_SECTIONS=eod,ingest make bench
    BENCH_SECTIONS=labels make bench   # events/s with and without the default labels
    BENCH_SECTIONS=households make bench  # events/s of the stream with and without households

Every figure is written to .bench/scoring.json as well.

Everything runs on this machine against the embedded PostgreSQL and broker, in one run,
so the ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from shared.kafka import ensure_topics
from shared.migrations import upgrade_all
from shared.settings import Settings
from shared.topics import Topics
from tierflow.embedded import EmbeddedBroker, EmbeddedPostgres
from tierflow.processes import free_port, spawn, stop
from tierflow.simulate import Bank, events

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
KEY = "bench-admin-key"
# Sections after the end-to-end run, comma-separated (all by default).
SECTIONS = os.environ.get("BENCH_SECTIONS", "eod,ingest,latency,two,labels,households,profile").split(",")
OUTPUT = Path(__file__).resolve().parent.parent / ".bench" / "scoring.json"
REPO = Path(__file__).resolve().parent.parent
PASSED_THROUGH = ("TIERFLOW_GC_", "TIERFLOW_SCORING_STATE_CACHE_SIZE")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def bank_stream() -> Iterator[dict[str, Any]]:
    bank = Bank(
        customers=CUSTOMERS,
        events_per_customer=1.1 * EVENTS / CUSTOMERS,
        start=datetime.now(UTC) - timedelta(days=366),
    )
    for count, event in enumerate(events(bank)):
        if count >= EVENTS:
            return
        yield event


HOUSEHOLD_FIELDS = ("household_id", "household_role")


def without_households(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The same events as a bank without households sends them: profiles name no household (a
    member's move becomes a profile update that changes nothing), so the count is the same."""
    for event in stream:
        if event["type"] == "bank.customer.v1" and HOUSEHOLD_FIELDS[0] in event["data"]:
            data = {k: v for k, v in event["data"].items() if k not in HOUSEHOLD_FIELDS}
            event = {**event, "data": data}
        yield event


def produce_all(
    bootstrap: str, topic: str, stream: Iterable[dict[str, Any]] | None = None
) -> tuple[int, float]:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000, "acks": "all"}
    )
    started = time.perf_counter()
    count = 0
    for event in bank_stream() if stream is None else stream:
        while True:
            try:
                producer.produce(
                    topic, key=event["data"]["customer_id"].encode(), value=json.dumps(event).encode()
                )
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return count, time.perf_counter() - started


async def raw_consume(settings: Settings, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                started = started or time.perf_counter()
                for record in records:
                    json.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    assert started is not None
    return seen / (time.perf_counter() - started)


async def raw_upsert(database_url: str, rows: int, rows_per_batch: int) -> float:
    """Batched upserts of the rows scoring wrote in this run, as scoring writes them.

    The same table shape (a copy of `scoring.customers`), real state rows taken from it (so
    the same encoded size), the same rows per transaction, and a row lock before each write.
    """
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE bench_state (LIKE scoring.customers INCLUDING ALL)")
        sample = await connection.fetch(
            "SELECT * FROM scoring.customers WHERE state IS NOT NULL ORDER BY random() LIMIT 5000"
        )
        columns = list(sample[0].keys())
        types = {
            row["attname"]: row["type"]
            for row in await connection.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
                "WHERE attrelid = 'scoring.customers'::regclass AND attnum > 0 AND NOT attisdropped"
            )
        }
        # An array column (the labels) travels comma-joined, as scoring sends it: unnest would
        # flatten an array of arrays.
        arrays = {c for c in columns if types[c].endswith("[]")}
        unnest = ", ".join(
            f"${n + 1}::text[]" if c in arrays else f"${n + 1}::{types[c]}[]" for n, c in enumerate(columns)
        )
        selected = ", ".join(f"string_to_array(u.{c}, ',')" if c in arrays else f"u.{c}" for c in columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "customer_id")
        upsert = (
            f"INSERT INTO bench_state ({', '.join(columns)}) SELECT {selected} "  # noqa: S608
            f"FROM unnest({unnest}) AS u({', '.join(columns)}) "
            f"ON CONFLICT (customer_id) DO UPDATE SET {updates}"
        )
        statement = await connection.prepare(upsert)
        lock = await connection.prepare("SELECT 1 FROM bench_state WHERE customer_id = ANY($1) FOR UPDATE")
        started = time.perf_counter()
        for first in range(0, rows, rows_per_batch):
            batch = [sample[n % len(sample)] for n in range(first, min(first + rows_per_batch, rows))]
            ids = [f"C{n % CUSTOMERS:08d}" for n in range(first, first + len(batch))]
            values = [ids] + [
                [",".join(row[c]) if c in arrays else row[c] for row in batch] for c in columns[1:]
            ]
            async with connection.transaction():
                await lock.fetch(ids)
                await statement.fetch(*values)
        return rows / (time.perf_counter() - started)
    finally:
        await connection.execute("DROP TABLE IF EXISTS bench_state")
        await connection.close()


async def average_state_bytes(database_url: str) -> float:
    """The encoded size of a state row's `state` value, as scoring sends it (JSON text)."""
    value = await scalar(
        database_url, "SELECT avg(octet_length(state::text)) FROM scoring.customers WHERE state IS NOT NULL"
    )
    return float(value)


async def scalar(database_url: str, sql: str) -> Any:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def service(name: str, env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = spawn(
        [sys.executable, "-m", f"services.{name}"],
        log_file=workdir / f"{name}.log",
        env={**env, f"TIERFLOW_{name.upper()}_PORT": str(port)},
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not start; see {workdir / (name + '.log')}")


def applied_count(database_url: str) -> int:
    return int(asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.applied_events")))


def outbox_backlog(database_url: str) -> int:
    return int(asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.outbox")))


def wait_applied(database_url: str, target: int, started: float | None = None) -> tuple[float, int, float]:
    """Wait until `target` events are applied; (first time any was seen, count then, end time)."""
    first_at, first_count = started, applied_count(database_url) if started is None else 0
    while True:
        applied = applied_count(database_url)
        now = time.perf_counter()
        if first_at is None and applied > first_count:
            first_at, first_count = now, applied
        if applied >= target:
            return (now, applied, now) if first_at is None else (first_at, first_count, now)
        time.sleep(0.25)


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def end_to_end(env: dict[str, str], workdir: Path, database_url: str, expected: int) -> dict[str, float]:
    process, url = service("scoring", env, workdir)
    try:
        first_at, first_count, done_at = wait_applied(database_url, expected)
        seconds = done_at - first_at
        return {
            "e2e_eps": (expected - first_count) / seconds,
            "tier_changes": float(
                asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.tier_history"))
            ),
            "busy": _metric(url, "tierflow_scoring_batch_seconds_sum") / seconds,
            "batches": _metric(url, "tierflow_scoring_batch_seconds_count"),
            "states_written": _metric(url, "tierflow_scoring_states_written_total"),
            "rss_mb": peak_rss_mb(process),
        }
    finally:
        stop(process)


def end_of_day(
    env: dict[str, str], workdir: Path, database_url: str, bootstrap: str, topic: str
) -> dict[str, float]:
    """One balance per existing customer, produced at once; until applied and every change relayed."""
    customers = [
        row[0] for row in asyncio.run(_rows(database_url, "SELECT customer_id FROM scoring.customers"))
    ]
    process, _ = service("scoring", env, workdir)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "acks": "all"})
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        warm_up(producer, topic, database_url, customers[0], today)
        before = applied_count(database_url)
        started = time.perf_counter()
        for n, customer_id in enumerate(customers):
            aum, as_of = f"{(n * 7919) % 9_000_000}.00", today.isoformat()
            event = {
                "specversion": "1.0", "id": f"eod-{uuid.uuid4()}", "source": "bench/core",
                "type": "bank.balance.v1", "time": today.isoformat(),
                "data": {"customer_id": customer_id, "aum": aum, "currency": "CNY", "as_of": as_of},
            }  # fmt: skip
            while True:
                try:
                    producer.produce(topic, key=customer_id.encode(), value=json.dumps(event).encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(120) == 0
        wait_applied(database_url, before + len(customers), started)
        while outbox_backlog(database_url) > 0:
            time.sleep(0.25)
        return {"eod_customers": float(len(customers)), "eod_s": time.perf_counter() - started,
                "rss_mb_after_eod": peak_rss_mb(process)}  # fmt: skip
    finally:
        stop(process)


def fresh_run(env: dict[str, str], admin_url: str, name: str) -> tuple[dict[str, str], str, Topics]:
    """Topics with the prefix `name.`, a database of its own migrated, and groups of their own:
    (the environment of a scoring process for it, its database URL, its topics)."""
    topics = Topics(f"{name}.")
    database_url = asyncio.run(fresh_database(admin_url, f"bench_{name}"))
    env = {**env, "DATABASE_URL": database_url, "TIERFLOW_TOPIC_PREFIX": topics.prefix,
           "TIERFLOW_SCORING_GROUP": f"bench-{name}",
           "TIERFLOW_HOUSEHOLD_GROUP": f"bench-{name}-households"}  # fmt: skip
    os.environ["DATABASE_URL"] = database_url
    try:
        settings = Settings()
        asyncio.run(ensure_topics(settings, topics.all()))
        asyncio.run(upgrade_all(settings))
    finally:
        os.environ["DATABASE_URL"] = admin_url
    return env, database_url, topics


def two_processes(env: dict[str, str], workdir: Path, admin_url: str, bootstrap: str) -> float:
    """The same stream on fresh topics and a fresh database, two scoring processes in one group."""
    env, database_url, topics = fresh_run(env, admin_url, "two")
    produced, _ = produce_all(bootstrap, topics.bank_events)
    first, _ = service("scoring", env, workdir)
    second, _ = service("scoring", env, workdir)
    try:
        first_at, first_count, done_at = wait_applied(database_url, produced)
        return (produced - first_count) / (done_at - first_at)
    finally:
        stop(second)
        stop(first)


async def fresh_database(admin_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def warm_up(producer: Producer, topic: str, database_url: str, customer_id: str, today: datetime) -> None:
    """One event through, so the timing starts with the consumer group joined and running."""
    before = applied_count(database_url)
    event = {
        "specversion": "1.0", "id": f"warm-{uuid.uuid4()}", "source": "bench/core", "type": "bank.balance.v1",
        "time": today.isoformat(),
        "data": {"customer_id": customer_id, "aum": "1.00", "currency": "CNY", "as_of": today.isoformat()},
    }  # fmt: skip
    producer.produce(topic, key=customer_id.encode(), value=json.dumps(event).encode())
    assert producer.flush(30) == 0
    wait_applied(database_url, before + 1)


def through_ingest(env: dict[str, str], workdir: Path, database_url: str, topic: str, count: int) -> float:
    """The stream posted to POST /v1/events in batches of 500 by 4 clients, until all applied."""
    stream = [
        {**event, "id": f"ing-{event['id']}"} for _, event in zip(range(count), bank_stream(), strict=False)
    ]
    batches = [stream[first : first + 500] for first in range(0, len(stream), 500)]
    total = len(stream)
    scoring, _ = service("scoring", env, workdir)
    ingest, ingest_url = service("ingest", env, workdir)
    try:
        producer = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "acks": "all"})
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        warm_up(producer, topic, database_url, stream[0]["data"]["customer_id"], today)
        before = applied_count(database_url)
        queue = list(reversed(batches))
        lock = threading.Lock()

        def client() -> None:
            headers = {"authorization": f"Bearer {KEY}", "content-type": "application/cloudevents-batch+json"}
            with httpx.Client(timeout=60) as http:
                while True:
                    with lock:
                        if not queue:
                            return
                        batch = queue.pop()
                    response = http.post(
                        f"{ingest_url}/v1/events", content=json.dumps(batch), headers=headers
                    )
                    assert response.status_code == 202, response.text[:300]

        started = time.perf_counter()
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        _, _, done_at = wait_applied(database_url, before + total, started)
        return total / (done_at - started)
    finally:
        stop(ingest)
        stop(scoring)


async def _rows(database_url: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
        return rows
    finally:
        await connection.close()


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def latency(
    env: dict[str, str], workdir: Path, bootstrap: str, rate: int, seconds: float = 20
) -> tuple[float, float, int]:
    """Ingest acceptance to tier change on the stream, for new customers at a steady `rate` per second.

    Runs on topics of its own, so it measures a steady load and not the bulk backlog. Above
    50/s the events are posted in batches, 20 posts a second, each timed from its 202.
    """
    topics = Topics(f"latency{rate}.")
    env = {**env, "TIERFLOW_TOPIC_PREFIX": topics.prefix, "TIERFLOW_SCORING_GROUP": f"bench-latency-{rate}"}
    asyncio.run(ensure_topics(Settings(), topics.all()))
    scoring, _ = service("scoring", env, workdir)
    ingest, ingest_url = service("ingest", env, workdir)
    accepted: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        # A subscriber that fetches often, so the figure is TierFlow's delay and not the listener's.
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                "fetch.wait.max.ms": 10,
            }
        )
        topic = topics.name("customer.tier-changes.v1")
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
        ready.set()
        while not done.is_set():
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                # Other events share the topic (profile changes, erasures) and cause no tier change.
                cause = json.loads(message.value() or b"{}")["data"].get("caused_by")
                if isinstance(cause, dict):  # an event's source and id; review/override are strings
                    arrived.setdefault(cause["id"], time.perf_counter())
        consumer.close()

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(30)
    time.sleep(1)
    try:
        with httpx.Client(timeout=10) as client:

            def post(customer_ids: list[str]) -> None:
                body: list[dict[str, Any]] = [
                    {
                        "specversion": "1.0", "id": f"lat-{uuid.uuid4()}", "source": "bench",
                        "type": "bank.transaction.v1", "time": datetime.now(UTC).isoformat(),
                        "data": {"customer_id": customer_id, "amount": "1.00", "currency": "CNY",
                                 "direction": "credit"},
                    }
                    for customer_id in customer_ids
                ]  # fmt: skip
                response = client.post(
                    f"{ingest_url}/v1/events",
                    content=json.dumps(body),
                    headers={
                        "authorization": f"Bearer {KEY}",
                        "content-type": "application/cloudevents-batch+json",
                    },
                )
                assert response.status_code == 202
                at = time.perf_counter()
                for event in body:
                    accepted[event["id"]] = at

            # Warm up until the scoring worker has joined its group and answers.
            deadline = time.monotonic() + 60
            while not arrived and time.monotonic() < deadline:
                post([f"W{uuid.uuid4().hex[:8]}"])
                time.sleep(0.5)
            time.sleep(2)
            accepted.clear()
            arrived.clear()
            per_post = max(1, rate // 20) if rate > 50 else 1
            interval = per_post / rate
            next_at = time.perf_counter()
            for n in range(int(rate * seconds / per_post)):
                post([f"L{rate}-{n:06d}-{k}" for k in range(per_post)])
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.monotonic() + 60
        while len(arrived.keys() & accepted.keys()) < len(accepted) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        done.set()
        listener.join()
        stop(ingest)
        stop(scoring)
    delays = sorted((arrived[i] - accepted[i]) * 1000 for i in accepted if i in arrived)
    if len(delays) < len(accepted):
        raise RuntimeError(f"{len(accepted) - len(delays)} tier changes did not arrive within 60 s")
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1], len(delays)


def _domain_stream(sample: int) -> list[bytes]:
    return [json.dumps(e).encode() for _, e in zip(range(sample), bank_stream(), strict=False)]


def _apply_in_domain(raw: list[bytes], policy: Any) -> None:
    """Decode and apply every event in one process, as the consumer does, without I/O."""
    from services.scoring.domain.customer import CustomerState, apply
    from services.scoring.domain.events import ScoringEvent
    from services.scoring.domain.money import amount_in_base
    from services.scoring.handlers import SCORED_MODELS
    from shared.contracts.envelope import ValidationRules, decode_json, validate_event

    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), lambda _c: True, SCORED_MODELS)
    now = datetime.now(UTC)
    states: dict[str, CustomerState] = {}
    for body in raw:
        valid = validate_event(decode_json(body), rules)
        event = ScoringEvent(
            valid.envelope.source, valid.envelope.id, valid.envelope.type, valid.envelope.time, valid.data
        )
        state = states.get(event.customer_id) or CustomerState.new(event.customer_id)
        states[event.customer_id], _ = apply(state, event, amount_in_base(event.data, "CNY", {}), policy, now)


def profile_domain(sample: int = 20_000) -> str:
    from services.scoring.domain.policy import default_policy

    raw = _domain_stream(sample)
    policy = default_policy()
    profiler = cProfile.Profile()
    profiler.runcall(_apply_in_domain, raw, policy)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def without_labels_policy() -> Any:
    from services.scoring.domain.policy import default_policy

    policy = default_policy()
    return policy.model_copy(update={"version": f"{policy.version}-no-labels", "labels": []})


def domain_label_cost(sample: int = 20_000) -> dict[str, float]:
    """Decode + domain events/s in one process, the default policy against it without labels,
    each the best of three alternating runs (the machine is shared)."""
    from services.scoring.domain.policy import default_policy

    raw = _domain_stream(sample)
    timings: dict[str, list[float]] = {"domain_eps_labels": [], "domain_eps_no_labels": []}
    policies = {"domain_eps_labels": default_policy(), "domain_eps_no_labels": without_labels_policy()}
    for _ in range(3):
        for name, policy in policies.items():
            started = time.perf_counter()
            _apply_in_domain(raw, policy)
            timings[name].append(time.perf_counter() - started)
    return {name: len(raw) / min(seconds) for name, seconds in timings.items()}


def end_to_end_without_labels(
    env: dict[str, str], workdir: Path, admin_url: str, expected: int
) -> dict[str, float]:
    """The same topic again, into a fresh database whose active policy has no labels."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from services.scoring.store import ScoringStore

    database_url = asyncio.run(fresh_database(admin_url, "bench_no_labels"))
    os.environ["DATABASE_URL"] = database_url
    try:
        asyncio.run(upgrade_all(Settings()))
    finally:
        os.environ["DATABASE_URL"] = admin_url

    async def install() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await ScoringStore(connection).install_policy(without_labels_policy(), "bench", activate=True)
        finally:
            await engine.dispose()

    asyncio.run(install())
    env = {**env, "DATABASE_URL": database_url, "TIERFLOW_SCORING_GROUP": "bench-no-labels"}
    run = end_to_end(env, workdir, database_url, expected)
    return {"e2e_no_labels_eps": run["e2e_eps"], "no_labels_tier_changes": run["tier_changes"]}


UNFOLDED_MEMBERS = """
    SELECT count(*) FROM scoring.household_memberships m
    WHERE m.sequence > 0 AND NOT EXISTS (
        SELECT 1 FROM scoring.household_members h
        WHERE h.member_id = m.customer_id AND h.sequence = m.sequence)
"""


def household_cost(env: dict[str, str], workdir: Path, admin_url: str, bootstrap: str) -> dict[str, float]:
    """The stream with its households and the same stream without household ids, each on fresh
    topics into a fresh database, one scoring process (its household stage included) each,
    timed until every event is applied and every member's latest contribution folded."""
    figures: dict[str, float] = {}
    for name in ("households", "no_households"):
        stream = bank_stream() if name == "households" else without_households(bank_stream())
        run_env, database_url, topics = fresh_run(env, admin_url, name)
        produced, _ = produce_all(bootstrap, topics.bank_events, stream)
        process, _ = service("scoring", run_env, workdir)
        try:
            first_at, first_count, _ = wait_applied(database_url, produced)
            while int(asyncio.run(scalar(database_url, UNFOLDED_MEMBERS))) > 0:
                time.sleep(0.25)
            figures[f"e2e_{name}_eps"] = (produced - first_count) / (time.perf_counter() - first_at)
        finally:
            stop(process)
        members = asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.household_members"))
        figures[f"{name}_member_rows"] = float(members)
    return figures


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tfb-", dir="/tmp"))
    postgres = EmbeddedPostgres(workdir, free_port(), workdir / "postgres.log")
    broker = EmbeddedBroker(free_port(), workdir / "broker.log")
    postgres.start()
    broker.start()
    try:
        env = {
            # The collector's settings and the state cache's bound pass through, so their effect
            # can be measured.
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("TIERFLOW_") or k.startswith(PASSED_THROUGH)
            },
            "DATABASE_URL": postgres.url(),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "TIERFLOW_API_KEYS": f"{KEY}=admin",
            "TIERFLOW_LOG_LEVEL": "WARNING",
        }
        os.environ.update(
            {k: env[k] for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_API_KEYS")}
        )
        settings = Settings()
        topics = Topics()
        asyncio.run(ensure_topics(settings, topics.all()))
        asyncio.run(upgrade_all(settings))
        log(f"producing {EVENTS:,} events for {CUSTOMERS:,} customers")
        produced, produce_s = produce_all(broker.bootstrap_servers, topics.bank_events)
        log(f"produced {produced:,} in {produce_s:.1f}s")
        figures: dict[str, float] = {"customers": CUSTOMERS, "events": produced}
        figures["raw_consume_eps"] = asyncio.run(raw_consume(settings, topics.bank_events, produced))
        log(f"raw consume + decode: {figures['raw_consume_eps']:,.0f} events/s")
        run = end_to_end(env, workdir, postgres.url(), produced)
        figures.update(run)
        log(f"end to end: {run['e2e_eps']:,.0f} events/s, {run['tier_changes']:,.0f} tier changes")
        figures["rows_per_batch"] = run["states_written"] / max(run["batches"], 1)
        figures["avg_state_row_bytes"] = asyncio.run(average_state_bytes(postgres.url()))
        rows = int(min(run["states_written"], 200_000))
        rows_per_batch = max(1, round(figures["rows_per_batch"]))
        figures["raw_upsert_rps"] = asyncio.run(raw_upsert(postgres.url(), rows, rows_per_batch))
        log(
            f"raw batched upsert: {figures['raw_upsert_rps']:,.0f} rows/s "
            f"({rows_per_batch} rows per batch, {figures['avg_state_row_bytes']:,.0f} bytes of state each)"
        )
        figures["ratio"] = figures["e2e_eps"] / min(figures["raw_consume_eps"], figures["raw_upsert_rps"])
        if "eod" in SECTIONS:
            figures.update(
                end_of_day(env, workdir, postgres.url(), broker.bootstrap_servers, topics.bank_events)
            )
            figures["eod_raw_s"] = figures["eod_customers"] / figures["raw_upsert_rps"]
            log(f"end of day: {figures['eod_customers']:,.0f} balances in {figures['eod_s']:.1f}s "
                f"(raw upsert {figures['eod_raw_s']:.1f}s)")  # fmt: skip
        if "ingest" in SECTIONS:
            figures["ingest_eps"] = through_ingest(
                env, workdir, postgres.url(), topics.bank_events, max(produced // 4, 500)
            )
            figures["ingest_ratio"] = figures["ingest_eps"] / figures["e2e_eps"]
            log(f"through ingest: {figures['ingest_eps']:,.0f} events/s")
        if "latency" in SECTIONS:
            p50, p99, samples = latency(env, workdir, broker.bootstrap_servers, 50)
            figures.update(latency_p50_ms=p50, latency_p99_ms=p99)
            log(f"latency at 50/s over {samples} events: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
            p50, p99, samples = latency(env, workdir, broker.bootstrap_servers, 1_000, 10)
            figures.update(latency_1k_p50_ms=p50, latency_1k_p99_ms=p99)
            log(f"latency at 1,000/s over {samples} events: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        if "two" in SECTIONS:
            figures["two_process_e2e_eps"] = two_processes(
                env, workdir, postgres.url(), broker.bootstrap_servers
            )
            log(f"two scoring processes: {figures['two_process_e2e_eps']:,.0f} events/s")
        if "labels" in SECTIONS:
            figures.update(end_to_end_without_labels(env, workdir, postgres.url(), produced))
            figures["labels_e2e_ratio"] = figures["e2e_eps"] / figures["e2e_no_labels_eps"]
            figures["ratio_no_labels"] = figures["e2e_no_labels_eps"] / min(
                figures["raw_consume_eps"], figures["raw_upsert_rps"]
            )
            figures.update(domain_label_cost())
            figures["labels_domain_ratio"] = figures["domain_eps_labels"] / figures["domain_eps_no_labels"]
            log(f"without labels: {figures['e2e_no_labels_eps']:,.0f} events/s end to end, "
                f"{figures['domain_eps_no_labels']:,.0f} in the domain "
                f"(with: {figures['domain_eps_labels']:,.0f})")  # fmt: skip
        if "households" in SECTIONS:
            figures.update(household_cost(env, workdir, postgres.url(), broker.bootstrap_servers))
            figures["households_e2e_ratio"] = figures["e2e_households_eps"] / figures["e2e_no_households_eps"]
            log(f"with households: {figures['e2e_households_eps']:,.0f} events/s end to end, "
                f"without: {figures['e2e_no_households_eps']:,.0f}")  # fmt: skip
        profile = profile_domain() if "profile" in SECTIONS else ""
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2) + "\n")
    print()
    print(f"TierFlow scoring benchmark: {CUSTOMERS:,} customers, {produced:,} events, {os.cpu_count()} cores")
    print(f"  raw consume + JSON decode      {figures['raw_consume_eps']:>12,.0f} events/s")
    print(
        f"  raw batched state upsert       {figures['raw_upsert_rps']:>12,.0f} rows/s"
        f"   ({rows_per_batch} rows/batch, avg_state_row_bytes {figures['avg_state_row_bytes']:,.0f})"
    )
    print(
        f"  end to end (applied+committed) {figures['e2e_eps']:>12,.0f} events/s"
        f"   ({figures['tier_changes']:,.0f} tier changes)"
    )
    print(f"  ratio end-to-end / min(raw)    {figures['ratio']:>12.2f}")
    print(f"  time inside batch handling     {figures['busy']:>12.0%} of the end-to-end run")
    print(f"  scoring peak RSS               {figures['rss_mb']:>12,.0f} MB")
    if "eod_s" in figures:
        eod = f"{figures['eod_customers']:,.0f} balances (raw upsert {figures['eod_raw_s']:.1f} s)"
        print(f"  end-of-day feed                {figures['eod_s']:>12.1f} s for {eod}")
    if "ingest_eps" in figures:
        print(f"  through ingest (4 x 500)       {figures['ingest_eps']:>12,.0f} events/s   "
              f"(ratio to end to end {figures['ingest_ratio']:.2f})")  # fmt: skip
    if "latency_p50_ms" in figures:
        print(f"  ingest accepted -> tier change p50 {figures['latency_p50_ms']:.0f} ms, "
              f"p99 {figures['latency_p99_ms']:.0f} ms (at 50/s)")  # fmt: skip
        print(f"  ingest accepted -> tier change p50 {figures['latency_1k_p50_ms']:.0f} ms, "
              f"p99 {figures['latency_1k_p99_ms']:.0f} ms (at 1,000/s)")  # fmt: skip
    if "two_process_e2e_eps" in figures:
        print(f"  two scoring processes          {figures['two_process_e2e_eps']:>12,.0f} events/s")
    if "e2e_no_labels_eps" in figures:
        print(f"  end to end without labels      {figures['e2e_no_labels_eps']:>12,.0f} events/s"
              f"   (with labels {figures['labels_e2e_ratio']:.2f} of it; "
              f"ratio without labels {figures['ratio_no_labels']:.2f})")  # fmt: skip
        without = f"{figures['domain_eps_no_labels']:,.0f}"
        print(f"  domain with / without labels   {figures['domain_eps_labels']:>12,.0f} / {without} events/s"
              f"   ({figures['labels_domain_ratio']:.2f})")  # fmt: skip
    if "e2e_households_eps" in figures:
        without = f"{figures['e2e_no_households_eps']:,.0f}"
        print(f"  with / without households     {figures['e2e_households_eps']:>12,.0f} / {without} events/s"
              f"   ({figures['households_e2e_ratio']:.2f}; "
              f"{figures['households_member_rows']:,.0f} household member rows)")  # fmt: skip
    print(f"  figures written to {OUTPUT.relative_to(REPO)}")
    if profile:
        print()
        print("Where the time goes (decode + domain, one process, cProfile):")
        print(profile)


if __name__ == "__main__":
    main()
