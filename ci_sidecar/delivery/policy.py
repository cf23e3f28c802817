"""The retry policy — the only place in the code base that decides whether and when to try again."""

from __future__ import annotations

import random

import msgspec

__all__ = ["RetryPolicy"]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with full jitter, honouring the provider's Retry-After, within a budget."""

    #: attempts without progress (an attempt that gets further resets the count); the budget is the real bound:
    #: a write needing several requests fails an attempt often under a flaky network (30% faults: ~2/3)
    max_attempts: int = 25
    base_s: float = 1.0
    cap_s: float = 60.0
    #: a write older than this is failed (-31004) instead of retried
    budget_s: float = 1800.0
    #: a Retry-After longer than this is capped (a provider asking for an hour still gets retried)
    max_retry_after_s: float = 900.0
    #: every delay is multiplied by this (config ``delivery_time_scale``: tests against fakes only)
    time_scale: float = 1.0

    def next_delay(self, attempts: int, retry_after: float | None, elapsed_s: float) -> float | None:
        """Seconds to wait before attempt ``attempts + 1``, or None when the write should fail now."""
        if attempts >= self.max_attempts:
            return None
        if retry_after is not None and retry_after >= 0:
            delay = min(retry_after, self.max_retry_after_s)
        else:
            ceiling = min(self.cap_s, self.base_s * (2 ** max(0, attempts - 1)))
            delay = random.uniform(ceiling / 2, ceiling)  # jitter keeps many clients from retrying in step
        delay *= self.time_scale
        if elapsed_s + delay > self.budget_s:
            return None
        return delay
