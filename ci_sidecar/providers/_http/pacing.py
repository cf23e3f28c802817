"""Per-token pacing of content-creating calls, and the rate-limit state ``sidecar/status`` shows."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import trio

__all__ = ["DEFAULT_PACING", "Pacer", "RateLimitState"]

#: GitHub's documented secondary limit for content creation; other providers pass their own windows.
DEFAULT_PACING: tuple[tuple[int, float], ...] = ((80, 60.0), (500, 3600.0))

class RateLimitState(msgspec.Struct, kw_only=True):
    """The last ``x-ratelimit-*`` values a provider answered with, and the last time it limited us."""

    limit: int | None = None
    remaining: int | None = None
    used: int | None = None
    reset: int | None = None  # UTC epoch seconds
    resource: str | None = None
    observed_at: float | None = None
    limited_at: float | None = None  # when a 429/403 rate limit was last seen
    limited_retry_after: float | None = None
    paced_waits: int = 0  # how often the pacer made a write wait

    def update(self, headers: httpx.Headers) -> None:
        """Remember the rate-limit headers of one response (absent headers leave old values alone)."""
        seen = False
        for name, attr in (("limit", "limit"), ("remaining", "remaining"), ("used", "used"), ("reset", "reset")):
            raw = headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")
            if raw is not None:
                try:
                    setattr(self, attr, int(float(raw)))
                    seen = True
                except ValueError:
                    pass
        if headers.get("x-ratelimit-resource"):
            self.resource = headers["x-ratelimit-resource"]
        if seen:
            self.observed_at = time.time()

    def as_dict(self) -> dict[str, Any]:
        """For ``sidecar/status``: only the fields known so far."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


class Pacer:
    """Sliding-window pacing of content-creating calls for one token (at most N per window, every window).

    Calls are serialized while they wait so two writers cannot both take the last slot.
    """

    def __init__(self, windows: tuple[tuple[int, float], ...] = DEFAULT_PACING) -> None:
        self._windows = windows
        self._stamps: collections.deque[float] = collections.deque()
        self._horizon = max((w for _n, w in windows), default=0.0)
        self._lock: trio.Lock | None = None

    def delay(self, now: float) -> float:
        """Seconds until one more call fits every window."""
        while self._stamps and self._stamps[0] <= now - self._horizon:
            self._stamps.popleft()
        wait = 0.0
        stamps = list(self._stamps)
        for limit, window in self._windows:
            recent = [s for s in stamps if s > now - window]
            if len(recent) >= limit:
                wait = max(wait, recent[len(recent) - limit] + window - now)
        return wait

    async def acquire(self, say: Callable[[str], None] | None = None, what: str = "write") -> float:
        """Wait for a slot (saying so when it waits) and take it; returns the seconds waited."""
        if self._lock is None:
            self._lock = trio.Lock()
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self.delay(now)
                if wait <= 0:
                    self._stamps.append(now)
                    return waited
                if say is not None and waited == 0.0:
                    say(f"pacing {what}: waiting {wait:.1f} s to stay under the provider's content-creation limit")
                await trio.sleep(wait)
                waited += wait


