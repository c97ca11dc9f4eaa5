"""A service process that so far only serves probes and metrics.

Scoring, engagement and feedback start this way until their workers land: they own
their database schema and report readiness of the database and the broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from shared.db import create_engine, is_reachable
from shared.http import create_app
from shared.kafka import LazyProducer
from shared.settings import Settings


def build_placeholder_app(service: str, settings: Settings, purpose: str) -> FastAPI:
    engine = create_engine(settings)
    producer = LazyProducer(settings)

    async def database_reachable() -> bool:
        return await is_reachable(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await producer.close()
            await engine.dispose()

    router = APIRouter(tags=["operations"])

    @router.get("/", summary="What this service does and how complete it is")
    async def about() -> dict[str, str]:
        return {
            "service": service,
            "purpose": purpose,
            "status": "placeholder: serves health, readiness and metrics only",
        }

    return create_app(
        service=service,
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"database": database_reachable, "broker": producer.is_reachable},
        routers=[router],
        description=purpose,
        retry_after_s=settings.retry_after_s,
    )
