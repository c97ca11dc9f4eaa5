"""Scoring benchmark: raw consume, raw upsert and TierFlow's end-to-end rate, side by side.

    make bench                         # 100,000 customers, 1,000,000 events
    BENCH_CUSTOMERS=10000 BENCH_EVENTS=100000 make bench

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
from collections.abc import Iterator
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
REPO = Path(__file__).resolve().parent.parent


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


def produce_all(bootstrap: str, topic: str) -> tuple[int, float]:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000, "acks": "all"}
    )
    started = time.perf_counter()
    count = 0
    for event in bank_stream():
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


async def raw_upsert(database_url: str, rows: int) -> float:
    """Batched upserts of jsonb state rows the size scoring writes, 2,000 per transaction."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    state = json.dumps(
        {"features": {"days": {str(739000 + d): [2, "1234.56", 1] for d in range(40)}}, "pad": "x" * 300}
    )
    try:
        await connection.execute(
            "CREATE TABLE bench_state (customer_id text PRIMARY KEY, state jsonb, tier text)"
        )
        started = time.perf_counter()
        for first in range(0, rows, 2000):
            ids = [f"C{n:08d}" for n in range(first, min(first + 2000, rows))]
            async with connection.transaction():
                await connection.execute(
                    "SELECT 1 FROM bench_state WHERE customer_id = ANY($1) FOR UPDATE", ids
                )
                await connection.execute(
                    "INSERT INTO bench_state SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[]) "
                    "ON CONFLICT (customer_id) DO UPDATE SET state = EXCLUDED.state, tier = EXCLUDED.tier",
                    ids,
                    [state] * len(ids),
                    ["vip"] * len(ids),
                )
        return rows / (time.perf_counter() - started)
    finally:
        await connection.execute("DROP TABLE IF EXISTS bench_state")
        await connection.close()


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


def end_to_end(
    env: dict[str, str], workdir: Path, database_url: str, expected: int
) -> tuple[float, int, float]:
    process, url = service("scoring", env, workdir)
    try:
        first_applied_at = None
        while True:
            applied = asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.applied_events"))
            now = time.perf_counter()
            if applied and first_applied_at is None:
                first_applied_at, first_count = now, applied
            if applied >= expected:
                break
            time.sleep(0.5)
        assert first_applied_at is not None
        rate = (expected - first_count) / (now - first_applied_at)
        changes = asyncio.run(scalar(database_url, "SELECT count(*) FROM scoring.tier_history"))
        batch_seconds = _metric(url, "tierflow_scoring_batch_seconds_sum")
        return rate, int(changes), batch_seconds / (now - first_applied_at)
    finally:
        stop(process)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def latency(env: dict[str, str], workdir: Path, bootstrap: str) -> tuple[float, float, int]:
    """Ingest acceptance to tier change on the stream, for new customers at a steady 50/s.

    Runs on topics of its own, so it measures a steady load and not the bulk backlog.
    """
    topics = Topics("latency.")
    env = {**env, "TIERFLOW_TOPIC_PREFIX": topics.prefix, "TIERFLOW_SCORING_GROUP": "bench-latency"}
    asyncio.run(ensure_topics(Settings(), topics.all()))
    scoring, _ = service("scoring", env, workdir)
    ingest, ingest_url = service("ingest", env, workdir)
    accepted: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"})
        topic = topics.name("customer.tier-changes.v1")
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
        ready.set()
        while not done.is_set():
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                cause = json.loads(message.value() or b"{}")["data"]["caused_by"]
                if isinstance(cause, dict):  # an event's source and id; review/override are strings
                    arrived.setdefault(cause["id"], time.perf_counter())
        consumer.close()

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(30)
    time.sleep(1)
    try:
        with httpx.Client(timeout=10) as client:

            def post(customer_id: str) -> None:
                event_id = f"lat-{uuid.uuid4()}"
                body = {
                    "specversion": "1.0", "id": event_id, "source": "bench", "type": "bank.transaction.v1",
                    "time": datetime.now(UTC).isoformat(),
                    "data": {
                        "customer_id": customer_id, "amount": "1.00",
                        "currency": "CNY", "direction": "credit",
                    },
                }  # fmt: skip
                response = client.post(
                    f"{ingest_url}/v1/events", json=body, headers={"authorization": f"Bearer {KEY}"}
                )
                assert response.status_code == 202
                accepted[event_id] = time.perf_counter()

            # Warm up until the scoring worker has joined its group and answers.
            deadline = time.monotonic() + 60
            while not arrived and time.monotonic() < deadline:
                post(f"W{uuid.uuid4().hex[:8]}")
                time.sleep(0.5)
            time.sleep(2)
            accepted.clear()
            arrived.clear()
            for n in range(1000):
                post(f"L{n:06d}")
                time.sleep(0.02)
        time.sleep(5)
    finally:
        done.set()
        listener.join()
        stop(ingest)
        stop(scoring)
    delays = sorted((arrived[i] - accepted[i]) * 1000 for i in accepted if i in arrived)
    if not delays:
        raise RuntimeError(f"no tier change arrived; see {workdir}")
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1], len(delays)


def profile_domain(sample: int = 20_000) -> str:
    from services.scoring.domain.customer import CustomerState, apply
    from services.scoring.domain.events import ScoringEvent
    from services.scoring.domain.money import amount_in_base
    from services.scoring.domain.policy import default_policy
    from services.scoring.handlers import SCORED_MODELS
    from shared.contracts.envelope import ValidationRules, decode_json, validate_event

    raw = [json.dumps(e).encode() for _, e in zip(range(sample), bank_stream(), strict=False)]
    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), lambda _c: True, SCORED_MODELS)
    policy = default_policy()
    now = datetime.now(UTC)

    def run() -> None:
        states: dict[str, CustomerState] = {}
        for body in raw:
            valid = validate_event(decode_json(body), rules)
            event = ScoringEvent(
                valid.envelope.source, valid.envelope.id, valid.envelope.type, valid.envelope.time, valid.data
            )
            state = states.get(event.customer_id) or CustomerState.new(event.customer_id)
            states[event.customer_id], _ = apply(
                state, event, amount_in_base(event.data, "CNY", {}), policy, now
            )

    profiler = cProfile.Profile()
    profiler.runcall(run)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tfb-", dir="/tmp"))
    postgres = EmbeddedPostgres(workdir, free_port(), workdir / "postgres.log")
    broker = EmbeddedBroker(free_port(), workdir / "broker.log")
    postgres.start()
    broker.start()
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")},
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
        consume_rate = asyncio.run(raw_consume(settings, topics.bank_events, produced))
        log(f"raw consume + decode: {consume_rate:,.0f} events/s")
        upsert_rate = asyncio.run(raw_upsert(postgres.url(), min(produced, 200_000)))
        log(f"raw batched upsert: {upsert_rate:,.0f} rows/s")
        e2e_rate, changes, busy = end_to_end(env, workdir, postgres.url(), produced)
        log(f"end to end: {e2e_rate:,.0f} events/s, {changes:,} tier changes")
        p50, p99, samples = latency(env, workdir, broker.bootstrap_servers)
        log(f"latency over {samples} events: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        profile = profile_domain()
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    floor = min(consume_rate, upsert_rate)
    print()
    print(f"TierFlow scoring benchmark: {CUSTOMERS:,} customers, {produced:,} events, {os.cpu_count()} cores")
    print(f"  raw consume + JSON decode      {consume_rate:>12,.0f} events/s")
    print(f"  raw batched state upsert       {upsert_rate:>12,.0f} rows/s")
    print(f"  end to end (applied+committed) {e2e_rate:>12,.0f} events/s   ({changes:,} tier changes)")
    print(f"  ratio end-to-end / min(raw)    {e2e_rate / floor:>12.2f}")
    print(f"  time inside batch handling     {busy:>12.0%} of the end-to-end run")
    print(f"  ingest accepted -> tier change p50 {p50:.0f} ms, p99 {p99:.0f} ms ({samples} events at 50/s)")
    print()
    print("Where the time goes (decode + domain, one process, cProfile):")
    print(profile)


if __name__ == "__main__":
    main()
