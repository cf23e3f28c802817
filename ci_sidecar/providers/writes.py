"""What a provider declares about its write budget, and the gate its HTTP layer passes each write through.

The delivery layer owns the budget (:mod:`ci_sidecar.delivery.budget`): per token it sends mutating
requests one at a time with a minimum spacing, lets final writes go ahead of live updates, keeps live
updates inside what is left of the token's hourly budget, and waits out rate limits. A provider only
declares its numbers (:class:`WriteBudget`) and calls the :class:`WriteGate` it finds in
``ProviderEnv.writes`` around every mutating request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import msgspec

from ci_sidecar.protocol.errors import ExchangeError

__all__ = ["WriteBudget", "WriteDeferred", "WriteGate"]


class WriteBudget(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's budget numbers for one token (the defaults suit a REST API without published limits)."""

    #: requests per hour the token may make (reads count too); None: learn it from the rate-limit headers
    requests_per_hour: int | None = None
    #: seconds between the starts of two mutating requests of one token (GitHub asks for at least 1 s)
    min_spacing_s: float = 1.0
    #: how long a token pauses after a 429/403 rate limit that names no wait (GitHub: at least a minute)
    limited_wait_s: float = 60.0
    #: a primary limit that resets within this is waited for (the write stays pending), not failed
    max_reset_wait_s: float = 3600.0
    #: spacing of a run's live updates while the run is young, and the most it grows to
    live_spacing_s: float = 2.0
    live_spacing_max_s: float = 300.0
    #: a run's age (s) per second of live spacing: at 20, a 10-minute-old run updates every 30 s
    live_age_per_spacing_s: float = 20.0
    #: live writes per run and hour (final writes are not counted against it)
    live_per_hour: int = 100
    #: share of the hourly budget kept for final writes: live updates stop when less than this is left
    reserve_fraction: float = 0.1

    def scaled(self, factor: float) -> WriteBudget:
        """The same budget with every wait multiplied by ``factor`` (config ``delivery_time_scale``)."""
        if factor == 1.0:
            return self
        return msgspec.structs.replace(
            self, min_spacing_s=self.min_spacing_s * factor, limited_wait_s=self.limited_wait_s * factor,
            max_reset_wait_s=self.max_reset_wait_s * factor, live_spacing_s=self.live_spacing_s * factor,
            live_spacing_max_s=self.live_spacing_max_s * factor,
            live_age_per_spacing_s=self.live_age_per_spacing_s / factor)


class WriteDeferred(ExchangeError):
    """A write that may not be sent now: a live update while the budget is short or a final write waits, or
    any write while the token is rate limited. Nothing was sent; try again in ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class WriteGate(Protocol):
    """The delivery layer's gate for one attempt: the HTTP layer calls it around requests."""

    async def acquire(self) -> None:
        """Wait for this token's turn to send one mutating request; raises :class:`WriteDeferred`."""
        ...

    def release(self) -> None:
        """The mutating request is finished (answered or failed)."""
        ...

    def count_read(self) -> None:
        """A request that changes nothing was sent: it still spends the token's hourly budget."""
        ...

    def observe(self, headers: Mapping[str, str], *, limited: bool = False,
                retry_after: float | None = None) -> None:
        """Every response's headers (rate-limit state); ``limited`` when it was a 429/403 rate limit."""
        ...
