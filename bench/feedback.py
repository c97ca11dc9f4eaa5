"""Feedback reports at a million records: each report timed with its indexes and without.

make bench-feedback            # 1,000,000 surveys, 200,000 complaints, 100,000 customers
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback import views
from shared.db import create_engine
from shared.migrations import upgrade_all
from shared.settings import Settings
from tierflow.embedded import EmbeddedPostgres
from tierflow.processes import free_port

SURVEYS = int(os.environ.get("BENCH_SURVEYS", "1000000"))
CUSTOMERS = 100_000
UNINDEXED_LIMIT_S = 30
NOW = datetime(2026, 11, 1, tzinfo=UTC)

FILL = """
INSERT INTO feedback.customers (customer_id, tier, stage, branch_id)
SELECT 'C' || n, (ARRAY['mass','mass','mass','vip','wealth','private'])[1 + n % 6],
       (ARRAY['new','regular','core','at_risk','churned'])[1 + n % 5], 'BR' || (n % 40)
FROM generate_series(1, :customers) n;
INSERT INTO feedback.tier_history (event_id, customer_id, at, tier, stage)
SELECT 'h' || n || '-' || k, 'C' || n, CAST(:now AS timestamptz) - (k * 90 || ' days')::interval,
       (ARRAY['mass','vip','wealth','private'])[1 + (n + k) % 4], 'regular'
FROM generate_series(1, :customers) n, generate_series(0, 3) k;
INSERT INTO feedback.invitations (outreach_id, customer_id, action, tier, channel, outcome, requested_at, expires_at, survey_id)
SELECT 'o' || n, 'C' || (1 + n % :customers), (ARRAY['rm_call','sms','return_visit_call'])[1 + n % 3],
       (ARRAY['mass','vip','wealth','private'])[1 + n % 4], 'phone',
       (ARRAY['reached','converted','not_reached'])[1 + n % 3],
       CAST(:now AS timestamptz) - ((n % 365) || ' days')::interval, CAST(:now AS timestamptz) - ((n % 365) || ' days')::interval + interval '14 days',
       CASE WHEN n % 2 = 0 THEN 's' || n END
FROM generate_series(1, :customers) n;
INSERT INTO feedback.surveys (survey_id, customer_id, kind, score, outreach_id, answered_at, tier, stage, branch_id, channel)
SELECT 's' || n, 'C' || (1 + n % :customers), CASE WHEN n % 3 = 0 THEN 'csat' ELSE 'nps' END,
       CASE WHEN n % 3 = 0 THEN 1 + n % 5 ELSE n % 11 END, CASE WHEN n % 2 = 0 AND n <= :customers THEN 'o' || n END,
       CAST(:now AS timestamptz) - ((n % 365) || ' days')::interval - ((n % 1440) || ' minutes')::interval,
       (ARRAY['mass','vip','wealth','private'])[1 + n % 4], 'regular', 'BR' || (n % 40), 'phone'
FROM generate_series(1, :surveys) n;
INSERT INTO feedback.complaints (complaint_id, customer_id, severity, category, status, opened_at, resolved_at, updated_at, tier, branch_id)
SELECT 'k' || n, 'C' || (1 + n % :customers), (ARRAY['low','medium','high','critical'])[1 + n % 4], 'fees',
       CASE WHEN n % 5 = 0 THEN 'open' ELSE 'resolved' END,
       CAST(:now AS timestamptz) - ((n % 365) || ' days')::interval,
       CASE WHEN n % 5 = 0 THEN NULL ELSE CAST(:now AS timestamptz) - ((n % 365) || ' days')::interval + ((n % 72) || ' hours')::interval END,
       CAST(:now AS timestamptz), (ARRAY['mass','vip','wealth','private'])[1 + n % 4], 'BR' || (n % 40)
FROM generate_series(1, :surveys / 5) n
"""


async def timed(
    db: AsyncConnection, run: Callable[[AsyncConnection], Awaitable[Any]], repeats: int = 3
) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        await run(db)
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tff-", dir="/tmp"))
    postgres = EmbeddedPostgres(workdir, free_port(), workdir / "postgres.log")
    postgres.start()
    try:
        os.environ["DATABASE_URL"] = postgres.url()
        settings = Settings()
        await upgrade_all(settings)
        engine = create_engine(settings)
        started = time.perf_counter()
        async with engine.begin() as db:
            params = {"customers": CUSTOMERS, "surveys": SURVEYS, "now": NOW}
            for statement in FILL.split(";"):
                await db.execute(text(statement), params)
        async with engine.begin() as db:
            await db.execute(text("ANALYZE"))
        print(
            f"loaded {SURVEYS:,} surveys, {SURVEYS // 5:,} complaints in {time.perf_counter() - started:.1f}s"
        )

        start, end = NOW - timedelta(days=30), NOW
        queries: dict[str, Callable[[AsyncConnection], Awaitable[Any]]] = {
            "NPS/CSAT by tier, 30 days": lambda db: views.satisfaction(db, start, end, "tier"),
            "NPS/CSAT by branch, 30 days": lambda db: views.satisfaction(db, start, end, "branch"),
            "complaints by tier and severity": lambda db: views.complaints(db, start, end),
            "effectiveness with control, 30 days": lambda db: views.effectiveness(db, start, end, 30),
        }
        print(f"\nFeedback reports over {SURVEYS:,} surveys (best of 3, one run, same data)")
        print(f"  {'report':<38}{'indexed':>12}{'no indexes':>14}{'ratio':>8}")
        async with engine.connect() as db:
            for name, query in queries.items():
                indexed = await timed(db, query)
                await db.execute(text("SET enable_indexscan = off"))
                await db.execute(text("SET enable_bitmapscan = off"))
                await db.execute(text("SET enable_indexonlyscan = off"))
                await db.execute(text(f"SET statement_timeout = '{UNINDEXED_LIMIT_S}s'"))
                try:
                    unindexed = await timed(db, query, repeats=1)
                    shown = f"{unindexed:>12.0f}ms{unindexed / indexed:>7.1f}x"
                except DBAPIError:
                    await db.rollback()
                    shown = f"{'> ' + str(UNINDEXED_LIMIT_S) + ' s':>14}{'> ' + str(int(UNINDEXED_LIMIT_S * 1000 / indexed)):>7}x"
                await db.execute(text("RESET ALL"))
                print(f"  {name:<38}{indexed:>10.0f}ms{shown}")
        await engine.dispose()
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
