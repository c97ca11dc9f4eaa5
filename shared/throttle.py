"""Rate limits kept in process memory: a token bucket per API key, and a window of failed
authentications per client address. Pure: the caller passes the monotonic time in."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class KeyRates:
    """A token bucket per key: `rate_per_s` requests a second on average, `burst` at once.

    Keys come from the keyring, so the buckets are bounded by the number of configured keys."""

    rate_per_s: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key id -> (tokens, at)

    def take(self, key_id: str, now: float) -> float | None:
        """Spend one request of the key's allowance; if it has none, the seconds until it has."""
        tokens, at = self._buckets.get(key_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate_per_s
        self._buckets[key_id] = (tokens - 1, now)
        return None


@dataclass
class FailureWindows:
    """Failed authentications per client address in fixed windows of `window_s`; an address with
    `limit` failures in its window is refused until the window ends.

    At most `max_addresses` are remembered (the least recently failing are forgotten first), so
    a flood from many addresses costs bounded memory."""

    limit: int
    window_s: float
    max_addresses: int = 10_000
    _windows: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)  # start, count

    def refused_for(self, address: str, now: float) -> float | None:
        """Seconds the address must wait before it may try a key again, or None."""
        window = self._windows.get(address)
        if window is None:
            return None
        started, failures = window
        ends = started + self.window_s
        if now >= ends:
            del self._windows[address]
            return None
        return ends - now if failures >= self.limit else None

    def failed(self, address: str, now: float) -> None:
        started, failures = self._windows.pop(address, (now, 0))
        if now >= started + self.window_s:
            started, failures = now, 0
        self._windows[address] = (started, failures + 1)
        while len(self._windows) > self.max_addresses:
            self._windows.popitem(last=False)
