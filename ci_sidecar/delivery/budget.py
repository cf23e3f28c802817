"""Write budgets per provider token and per run: what keeps live updates from ever delaying a final write.

* :class:`TokenLane` (one per provider and token) sends mutating requests one at a time with the provider's
  minimum spacing; final writes go before waiting live ones, and a live request gives way (is deferred,
  nothing sent) when a final write is waiting, when the token is rate limited, or when less than the
  reserve of the hourly budget is left. It learns the budget from ``x-ratelimit-*``/``ratelimit-*``
  headers and counts its own requests when there are none. A 429/403 limit pauses the token for the
  server's wait, else for the provider's ``limited_wait_s``.
* :class:`LiveSchedule` (one per run target) spaces live updates: at first every ``live_spacing_s``,
  further apart as the run ages and as the token's budget is used, at most ``live_per_hour`` per hour.
  A live update that is not due stays one coalesced pending write (newer states replace it); it is never
  queued behind anything.

Numbers come from the provider (:class:`~ci_sidecar.providers.writes.WriteBudget`); nothing here knows a
provider. Time is the outbox's clock (wall seconds), so a virtual clock drives it in benchmarks.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping

import trio

from ci_sidecar.providers.writes import WriteBudget, WriteDeferred

__all__ = ["TokenLane", "AttemptGate", "LiveSchedule"]

_HOUR = 3600.0


def _header(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class TokenLane:
    """Mutating requests of one token: one at a time, spaced, finals first, within the hourly budget."""

    def __init__(self, budget: WriteBudget, clock: Callable[[], float]) -> None:
        self.budget = budget
        self._clock = clock
        self._stamps: collections.deque[float] = collections.deque()  # our requests in the last hour
        self.limit: float | None = float(budget.requests_per_hour) if budget.requests_per_hour else None
        self.remaining: float | None = None
        self.reset_at: float | None = None  # wall time the provider's window resets (from its headers)
        self._observed_at: float | None = None
        self.blocked_until = 0.0  # a rate limit pauses the whole token until then
        self._busy = False
        self._last_start = -1e18
        self._finals_waiting = 0
        self._changed = trio.Event()
        self.writes = 0  # mutating requests sent (benchmarks and status read it)
        self.deferred = 0  # live requests that gave way

    # --- the budget ---------------------------------------------------------------------------

    def _left(self, now: float) -> tuple[float, float] | None:
        """(requests left, hourly limit), from the headers when fresh, else from our own count."""
        while self._stamps and self._stamps[0] <= now - _HOUR:
            self._stamps.popleft()
        if self.remaining is not None and self.reset_at is not None and now < self.reset_at:
            # what the provider said, less what we sent since (other jobs may spend it too: never more)
            since = sum(1 for s in self._stamps if s > (self._observed_at or now))
            limit = self.limit or max(self.remaining, 1.0)
            return max(0.0, self.remaining - since), limit
        if self.limit is None:
            return None
        return max(0.0, self.limit - len(self._stamps)), self.limit

    def used_fraction(self, now: float | None = None) -> float:
        """Share of the hourly budget spent (0 when unknown)."""
        left = self._left(self._clock() if now is None else now)
        if left is None:
            return 0.0
        remaining, limit = left
        return min(1.0, max(0.0, 1.0 - remaining / limit)) if limit else 0.0

    def exhausted_until(self, now: float) -> float | None:
        """When the provider said the budget is used up: the reset time, if within the wait we accept."""
        if self.remaining is not None and self.remaining <= 0 and self.reset_at is not None:
            if now < self.reset_at <= now + self.budget.max_reset_wait_s:
                return self.reset_at
        return None

    def live_wait(self, now: float) -> float:
        """Seconds before a live request may go (0: now); live requests never wait in line for it."""
        waits = [self.blocked_until - now]
        exhausted = self.exhausted_until(now)
        if exhausted is not None:
            waits.append(exhausted - now)
        left = self._left(now)
        if left is not None and left[0] <= left[1] * self.budget.reserve_fraction:
            # short: only final writes may spend the rest; live updates resume when the window moves on
            if self.reset_at is not None and self.reset_at > now:
                waits.append(self.reset_at - now)
            elif self._stamps:
                waits.append(self._stamps[0] + _HOUR - now)
            else:
                waits.append(self.budget.live_spacing_max_s)
        return max(0.0, *waits)

    def final_wait(self, now: float) -> float:
        """Seconds before a final request may go: only a rate limit holds it."""
        exhausted = self.exhausted_until(now)
        return max(0.0, self.blocked_until - now, (exhausted - now) if exhausted is not None else 0.0)

    # --- the gate -------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def acquire(self, *, final: bool, preempted: Callable[[], bool] = lambda: False) -> None:
        """Wait for this token's turn to send one mutating request (then call :meth:`release`).

        Raises:
            WriteDeferred: the token is rate limited (any write), or a live write must give way.
        """
        if final:
            self._finals_waiting += 1
            self._notify()
        try:
            while True:
                now = self._clock()
                hold = self.final_wait(now) if final else self.live_wait(now)
                if hold > 0:
                    raise WriteDeferred("rate limited" if final or self.blocked_until > now else "budget short", hold)
                if not final and (self._finals_waiting or preempted()):
                    raise WriteDeferred("a final write goes first", self.budget.min_spacing_s)
                gap = self._last_start + self.budget.min_spacing_s - now
                if not self._busy and gap <= 0:
                    self._busy = True
                    self._last_start = now
                    self._stamps.append(now)
                    self.writes += 1
                    return
                changed = self._changed
                with trio.move_on_after(gap if not self._busy else _HOUR):
                    await changed.wait()
        except WriteDeferred:
            if not final:
                self.deferred += 1
            raise
        finally:
            if final:
                self._finals_waiting -= 1

    def release(self) -> None:
        """The request in flight is finished."""
        self._busy = False
        self._notify()

    def count_read(self) -> None:
        """A request that is not a write still spends the hourly budget."""
        self._stamps.append(self._clock())

    def observe(self, headers: Mapping[str, str], *, limited: bool = False, retry_after: float | None = None) -> None:
        """Learn the budget from a response; a rate limit pauses the token."""
        now = self._clock()
        limit, remaining, reset = _header(headers, "limit"), _header(headers, "remaining"), _header(headers, "reset")
        if limit is not None and limit > 0:
            self.limit = limit
        if remaining is not None:
            self.remaining = remaining
            self._observed_at = now
            if reset is not None:
                # GitHub sends an epoch; some servers send seconds from now
                self.reset_at = reset if reset > 1e9 else now + reset
        if limited:
            wait = retry_after if retry_after is not None else self.budget.limited_wait_s
            self.blocked_until = max(self.blocked_until, now + wait)
            self._notify()


class AttemptGate:
    """The :class:`~ci_sidecar.providers.writes.WriteGate` of one delivery attempt (final or live)."""

    def __init__(self, lane: TokenLane, *, final: bool) -> None:
        self.lane = lane
        self.final = final
        self.preempted = False

    async def acquire(self) -> None:
        await self.lane.acquire(final=self.final, preempted=lambda: self.preempted)

    def release(self) -> None:
        self.lane.release()

    def observe(self, headers: Mapping[str, str], *, limited: bool = False, retry_after: float | None = None) -> None:
        self.lane.observe(headers, limited=limited, retry_after=retry_after)

    def count_read(self) -> None:
        self.lane.count_read()

    def preempt(self) -> None:
        """A final write for the same target arrived: this live attempt sends nothing more."""
        self.preempted = True
        self.lane._notify()


class LiveSchedule:
    """When the next live update of one run target may go."""

    def __init__(self, first: float) -> None:
        self.first = first
        self.last: float | None = None
        self._sent: collections.deque[float] = collections.deque()

    def spacing(self, budget: WriteBudget, now: float, used: float) -> float:
        """Seconds between live updates: grows with the run's age and with the share of the budget used."""
        age = max(0.0, now - self.first)
        base = max(budget.live_spacing_s, age / budget.live_age_per_spacing_s)
        if used > 0.5:  # the second half of the budget goes four times slower, then slower still
            base *= 1.0 / max(0.05, (1.0 - used) * 2) ** 2
        return min(budget.live_spacing_max_s, base)

    def due(self, budget: WriteBudget, now: float, used: float) -> float:
        """The earliest time the next live update may go."""
        while self._sent and self._sent[0] <= now - _HOUR:
            self._sent.popleft()
        due = now if self.last is None else self.last + self.spacing(budget, now, used)
        if len(self._sent) >= budget.live_per_hour:
            due = max(due, self._sent[0] + _HOUR)
        return due

    def sent(self, now: float) -> None:
        self.last = now
        self._sent.append(now)
