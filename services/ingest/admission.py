"""Load shedding: intake requests are admitted within a request limit and a memory budget.

Ingest's memory is what it holds for the requests it works on: a body, its decoded JSON and
the events validated and published from it. Counting requests does not bound that (one decoded
body costs up to `Settings.DECODED_BYTES_PER_BODY_BYTE` times its size), so each part of a body
is charged, as it arrives and before it is kept, what it may cost decoded; a request is served
only while the charges of the requests in flight fit the budget. The rest get 429 with
Retry-After at the cost of a few bytes each, however many arrive.

Charging what has arrived rather than what a request declares means a client that announces a
large body and sends little of it holds little of the budget; the body-read deadline bounds how
long it holds its place among the requests in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.ingest.metrics import MEMORY_RESERVED, REQUESTS_IN_FLIGHT, REQUESTS_SHED
from shared.http import ApiError


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

    async def admit(self) -> AsyncIterator[BodyCharge]:
        """A dependency admitting a request while fewer than the limit are in flight; what its
        body costs is charged through the `BodyCharge` it yields, and released when it is answered."""
        if self._in_flight >= self._max_in_flight:
            raise self._shed(f"ingest is working on {self._max_in_flight} requests already")
        self._in_flight += 1
        REQUESTS_IN_FLIGHT.inc()
        charge = BodyCharge(self)
        try:
            yield charge
        finally:
            self._in_flight -= 1
            REQUESTS_IN_FLIGHT.dec()
            self._release(charge.charged)

    def reserve(self, body_bytes: int) -> int:
        """Charge what `body_bytes` of body may cost decoded (the bytes charged), or refuse with 429."""
        cost = body_bytes * self._bytes_per_body_byte
        if self._reserved + cost > self._budget_bytes:
            raise self._shed("ingest's memory budget is held by the requests it is working on")
        self._reserved += cost
        MEMORY_RESERVED.set(self._reserved)
        return cost

    def _release(self, charged: int) -> None:
        self._reserved -= charged
        MEMORY_RESERVED.set(self._reserved)

    def _shed(self, why: str) -> ApiError:
        REQUESTS_SHED.inc()
        # A new error each time: one instance raised over and over keeps every traceback.
        return ApiError(
            429,
            f"{why}; retry after {self._retry_after_s} s",
            headers={"Retry-After": str(self._retry_after_s)},
        )


class BodyCharge:
    """What one admitted request has been charged for the body received so far."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.charged = 0

    def received(self, body_bytes: int) -> None:
        """Charge another part of the body, or refuse the request with 429 if it does not fit."""
        self.charged += self._admission.reserve(body_bytes)
