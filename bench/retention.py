"""Bounded storage soak: the simulated bank at a fixed population, retention in minutes, table
sizes printed per interval. With every retention shortened, the sizes must level off instead of
growing with the number of events.

make bench-retention
BENCH_RETENTION_CUSTOMERS=500 BENCH_RETENTION_INTERVALS=6 make bench-retention
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from shared.db import create_engine
from shared.settings import Settings
from tierflow.processes import free_port
from tierflow.simulate import Bank, Event, is_bank_event, records
from tierflow.sinks import FEEDBACK_PATHS, Tally, api_client, chunks
from tierflow.stack import SERVICES, Stack

CUSTOMERS = int(os.environ.get("BENCH_RETENTION_CUSTOMERS", "2000"))
INTERVALS = int(os.environ.get("BENCH_RETENTION_INTERVALS", "12"))
INTERVAL_S = float(os.environ.get("BENCH_RETENTION_INTERVAL_S", "30"))
# Retention in minutes: after a few intervals every kind of record starts to age out.
RETENTION = {
    "TIERFLOW_APPLIED_EVENTS_HORIZON": "PT4M",
    "TIERFLOW_APPLIED_EVENTS_PARTITION": "PT1M",
    "TIERFLOW_TIER_HISTORY_RETENTION": "PT3M",
    "TIERFLOW_AUDIT_RETENTION": "PT3M",
    "TIERFLOW_CLOSED_OUTREACH_RETENTION": "PT3M",
    "TIERFLOW_SURVEY_RETENTION": "PT3M",
    "TIERFLOW_COMPLAINT_RETENTION": "PT3M",
    "TIERFLOW_MAINTENANCE_INTERVAL_S": "10",
    # Marker partitions are dropped this long after the horizon passes them (one host's clock
    # here, so seconds suffice), rather than the default five minutes.
    "TIERFLOW_CONSUMER_CLOCK_TOLERANCE_S": "10",
}
TABLES = (
    "scoring.applied_events",
    "scoring.tier_history",
    "scoring.override_audit",
    "engagement.applied_events",
    "engagement.items",
    "engagement.item_audit",
    "feedback.applied_events",
    "feedback.tier_history",
    "feedback.surveys",
    "feedback.complaints",
)


def restamped(record: Event, round_no: int, now: str) -> Event:
    """The simulated record as if it happened now, under an id of this round: a live bank's
    next day, not a resend of the last one."""
    data: dict[str, Any] = dict(record["data"])
    for name, value in record["data"].items():
        if name.endswith("_at") and value is not None:
            data[name] = now
        elif name in ("survey_id", "complaint_id", "transaction_id") and value is not None:
            data[name] = f"r{round_no}-{value}"
    return {**record, "id": f"r{round_no}-{record['id']}", "time": now, "data": data}


def send_round(stack_settings: Settings, key: str, round_no: int) -> Tally:
    bank = Bank(CUSTOMERS, events_per_customer=12, seed=round_no, days=30)
    now = datetime.now(UTC).isoformat()
    tally = Tally()
    ingest = api_client(f"http://{stack_settings.host}:{stack_settings.ingest_port}", key)
    feedback = api_client(f"http://{stack_settings.host}:{stack_settings.feedback_port}", key)
    try:
        for chunk in chunks((restamped(r, round_no, now) for r in records(bank)), 1_000):
            events = [r for r in chunk if is_bank_event(r)]
            if events:
                ingest.post("/v1/events", json=events).raise_for_status()
                tally.sent += len(events)
            for record_type, path in FEEDBACK_PATHS.items():
                bodies = [r["data"] for r in chunk if r["type"] == record_type]
                if bodies and feedback.post(path, json=bodies).status_code < 300:
                    tally.feedback += len(bodies)
    finally:
        ingest.close()
        feedback.close()
    return tally


async def sizes(settings: Settings) -> list[int]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as db:
            return [int(await db.scalar(text(f"SELECT count(*) FROM {table}")) or 0) for table in TABLES]  # noqa: S608
    finally:
        await engine.dispose()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tfr-", dir="/tmp"))
    env = {
        **os.environ,
        **RETENTION,
        "TIERFLOW_EMBEDDED_POSTGRES_PORT": str(free_port()),
        "TIERFLOW_EMBEDDED_BROKER_PORT": str(free_port()),
        **{f"TIERFLOW_{name.upper()}_PORT": str(free_port()) for name in SERVICES},
    }
    stack = Stack(workdir, env=env)
    settings = stack.start()
    try:
        key = stack.env["TIERFLOW_API_KEYS"].split("=")[0]
        short = [table.replace("applied_events", "markers") for table in TABLES]
        print(f"{CUSTOMERS:,} customers, a round of events every {INTERVAL_S:.0f}s, retention in minutes")
        print(f"{'t (s)':>6} {'sent':>8} " + " ".join(f"{name:>22}" for name in short))
        started = time.monotonic()
        for round_no in range(INTERVALS):
            tally = send_round(settings, key, round_no)
            time.sleep(max(0.0, started + (round_no + 1) * INTERVAL_S - time.monotonic()))
            counts = asyncio.run(sizes(settings))
            elapsed = time.monotonic() - started
            sent = tally.sent + tally.feedback
            print(f"{elapsed:>6.0f} {sent:>8,} " + " ".join(f"{count:>22,}" for count in counts), flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
