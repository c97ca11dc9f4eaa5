"""/readyz runs its checks at most once per TIERFLOW_READINESS_CACHE_S, however many probes come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from shared.auth import ApiKeyring
from shared.http import HttpLimits, create_app


@asynccontextmanager
async def _no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield


async def test_a_burst_of_probes_costs_one_check_and_a_later_one_checks_again() -> None:
    calls = 0

    async def database_reachable() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # a round trip: concurrent probes arrive while it runs
        return True

    app = create_app(
        service="probe",
        keyring=ApiKeyring(),
        lifespan=_no_lifespan,
        readiness={"database": database_reachable},
        routers=[],
        description="",
        limits=HttpLimits(readiness_cache_s=0.3),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        assert {a.status_code for a in answers} == {200}
        assert answers[0].json()["checks"] == {"database": True}
        assert calls == 1
        await asyncio.sleep(0.35)
        assert (await client.get("/readyz")).status_code == 200
        assert calls == 2
