"""Load shedding: a bounded number of intake requests at once, the rest told when to come back."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.ingest.metrics import REQUESTS_IN_FLIGHT, REQUESTS_SHED
from shared.http import ApiError


class InFlightLimit:
    """A dependency admitting at most `limit` requests at once.

    The rest get 429 with Retry-After before their bodies are read, so a flood costs a few
    bytes per refused request and memory stays within `limit` times the body size limit.
    """

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self._limit = limit
        self._retry_after_s = retry_after_s
        self._in_flight = 0

    async def __call__(self) -> AsyncIterator[None]:
        if self._in_flight >= self._limit:
            REQUESTS_SHED.inc()
            # A new error each time: one instance raised over and over keeps every traceback.
            raise ApiError(
                429,
                f"ingest is working on {self._limit} requests already; retry after {self._retry_after_s} s",
                headers={"Retry-After": str(self._retry_after_s)},
            )
        self._in_flight += 1
        REQUESTS_IN_FLIGHT.inc()
        try:
            yield
        finally:
            self._in_flight -= 1
            REQUESTS_IN_FLIGHT.dec()
