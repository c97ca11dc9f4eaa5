"""Background loops of a service process, restarted with backoff if they fail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.logs import get_logger

log = get_logger(__name__)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the process is stopping."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def supervise(name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run `run(stop)` until `stop` is set; an unexpected failure is logged and the loop restarted.

    A crashed loop must not leave the process looking healthy while doing nothing, nor take the
    HTTP API down with it: it is restarted after a growing pause.
    """
    failures = 0
    while not stop.is_set():
        try:
            await run(stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # any failure of a loop is logged and the loop restarted
            failures += 1
            delay = min(30.0, 0.5 * 2**failures)
            log.exception("background loop failed; restarting", loop=name, restart_in_s=delay)
            await pause(stop, delay)


async def every(seconds: float, action: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await action()
        await pause(stop, seconds)
