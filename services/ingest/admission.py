"""Load shedding: intake requests are admitted within a request limit and a memory budget.

Ingest's memory is what it holds for the requests it works on: a body, its decoded JSON and
the events validated and published from it. Counting requests does not bound that (one decoded
body costs up to `Settings.DECODED_BYTES_PER_BODY_BYTE` times its size), so each request is
charged, before its body is read, the most it can cost, and admitted only while the charges of
the requests in flight fit the budget. The rest get 429 with Retry-After at the cost of a few
bytes each, however many arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import Request

from services.ingest.metrics import MEMORY_RESERVED, REQUESTS_IN_FLIGHT, REQUESTS_SHED
from shared.http import ApiError

Admit = Callable[[Request], AsyncIterator[None]]


class Admission:
    """Requests in flight and the bytes charged for them, each within its limit."""

    def __init__(
        self, max_in_flight: int, budget_bytes: int, bytes_per_body_byte: int, retry_after_s: int
    ) -> None:
        self._max_in_flight = max_in_flight
        self._budget_bytes = budget_bytes
        self._bytes_per_body_byte = bytes_per_body_byte
        self._retry_after_s = retry_after_s
        self._in_flight = 0
        self._reserved = 0

    @property
    def reserved_bytes(self) -> int:
        return self._reserved

    def charge(self, request: Request, body_limit: int) -> int:
        """What the request may cost at most: its declared body size (else the limit) decoded."""
        declared = request.headers.get("content-length", "")
        size = min(int(declared), body_limit) if declared.isdigit() else body_limit
        return size * self._bytes_per_body_byte

    def for_bodies_up_to(self, body_limit: int) -> Admit:
        """A dependency admitting requests whose bodies the route reads up to `body_limit` bytes."""

        async def admit(request: Request) -> AsyncIterator[None]:
            charge = self.charge(request, body_limit)
            if self._in_flight >= self._max_in_flight:
                raise self._shed(f"ingest is working on {self._max_in_flight} requests already")
            if self._reserved + charge > self._budget_bytes:
                raise self._shed("ingest's memory budget is held by the requests it is working on")
            self._in_flight += 1
            self._reserved += charge
            REQUESTS_IN_FLIGHT.inc()
            MEMORY_RESERVED.set(self._reserved)
            try:
                yield
            finally:
                self._in_flight -= 1
                self._reserved -= charge
                REQUESTS_IN_FLIGHT.dec()
                MEMORY_RESERVED.set(self._reserved)

        return admit

    def _shed(self, why: str) -> ApiError:
        REQUESTS_SHED.inc()
        # A new error each time: one instance raised over and over keeps every traceback.
        return ApiError(
            429,
            f"{why}; retry after {self._retry_after_s} s",
            headers={"Retry-After": str(self._retry_after_s)},
        )
