"""Running one TierFlow service process: settings once, logging, uvicorn, signals."""

from __future__ import annotations

import gc
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import Settings


def serve(service: str, build_app: Callable[[Settings], FastAPI]) -> None:
    settings = Settings()
    configure_logging(service, settings.log_level, settings.log_format)
    app = build_app(settings)
    tune_garbage_collector(settings.gc_gen0_threshold, settings.gc_freeze_at_start)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port_of(service),
        log_config=None,
        access_log=True,
        server_header=False,
        timeout_graceful_shutdown=10,
        limit_concurrency=1000,
        # The client address is the peer's: a forwarded-for header would let anyone choose the
        # address their failed authentications are counted against.
        proxy_headers=False,
    )
    uvicorn.Server(config).run()


def tune_garbage_collector(gen0_threshold: int, freeze: bool) -> None:
    if freeze:
        gc.collect()
        gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(gen0_threshold, older, oldest)
