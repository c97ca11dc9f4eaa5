"""Wires ingest: settings → producer → router → app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.ingest.api import build_router
from services.ingest.handlers import Ingest
from shared.http import HttpLimits, create_app
from shared.kafka import LazyProducer
from shared.settings import Settings
from shared.topics import Topics

DESCRIPTION = """Accepts CloudEvents from core banking systems and publishes them to
`bank.events.v1`, keyed by customer id, once the broker acknowledged them."""


def build_app(settings: Settings) -> FastAPI:
    producer = LazyProducer(settings)
    ingest = Ingest(settings, producer, Topics.from_settings(settings).bank_events)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await producer.close()

    return create_app(
        service="ingest",
        keyring=settings.api_keys,
        lifespan=lifespan,
        readiness={"broker": producer.is_reachable},
        routers=[build_router(ingest)],
        description=DESCRIPTION,
        retry_after_s=settings.retry_after_s,
        limits=HttpLimits.from_settings(settings),
    )
