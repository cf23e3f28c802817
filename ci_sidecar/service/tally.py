"""Counting a run's tests: each test keyed once, its latest attempt decides, resends replace.

Memory stays flat as runs grow: per test only a 64-bit key hash and one packed int are kept
(``failed-attempts bitmask << 8 | latest attempt << 2 | status``); full records live on disk. Only
the current failures (up to a cap, for live summaries) and the slowest tests are kept in full.

Counting rules (docs/protocol.md): counts are over tests, not attempts, using each test's latest attempt;
a test whose latest attempt passed after an earlier attempt failed counts as passed and as flaky.
"""

from __future__ import annotations

import heapq
import msgspec

from ci_sidecar.protocol.records import Counts, TestResult

from .result_versions import merge_versions, test_key

__all__ = ["Tally", "test_key", "STATUS_CODES"]

STATUS_CODES = {"passed": 0, "failed": 1, "error": 2, "skipped": 3}
_STATUS_NAMES = ("passed", "failed", "error", "skipped")
_MAX_ATTEMPT = 55  # attempts above this share the top bit (bitmask stays a machine-sized int)
MAX_FAILURES_IN_MEMORY = 1000
SLOWEST_KEPT = 20


class Tally(msgspec.Struct, kw_only=True):
    """Per-run counting state (persisted in snapshots)."""

    index: dict[int, int] = {}
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    test_time: float = 0.0  # sum of reported durations (all attempts as sent; resends counted once more)
    failures: dict[int, TestResult] = {}
    slowest: list[tuple[float, int, str]] = []

    def counts(self) -> Counts:
        return Counts(total=self.total, passed=self.passed, failed=self.failed, errors=self.errors,
                      skipped=self.skipped, flaky=self.flaky)

    def _count(self, packed: int, sign: int) -> None:
        status = packed & 3
        if status == 0:
            self.passed += sign
            if packed >> 8 & ((1 << ((packed >> 2) & 63)) - 1):
                self.flaky += sign  # passed now, an earlier attempt failed
        elif status == 1:
            self.failed += sign
        elif status == 2:
            self.errors += sign
        else:
            self.skipped += sign

    def add(self, r: TestResult, key: int | None = None) -> None:
        """Apply one result (a new test, a new attempt, or a resend of an attempt)."""
        if key is None:
            key = test_key(r)
        attempt = min(r.attempt or 1, _MAX_ATTEMPT)
        status = STATUS_CODES[r.status]
        failed_bit = 1 << attempt if status in (1, 2) else 0
        old = self.index.get(key)
        if old is None:
            latest = attempt
            mask = failed_bit
            self.total += 1
        else:
            self._count(old, -1)
            old_latest = (old >> 2) & 63
            mask = (old >> 8 & ~(1 << attempt)) | failed_bit
            latest = max(old_latest, attempt)
            if attempt < old_latest:
                # an earlier attempt arriving late does not change the latest status
                status = old & 3
        packed = mask << 8 | latest << 2 | status
        self.index[key] = packed
        self._count(packed, +1)
        if r.duration:
            self.test_time += r.duration
            if len(self.slowest) < SLOWEST_KEPT:
                heapq.heappush(self.slowest, (r.duration, key, r.name))
            elif r.duration > self.slowest[0][0]:
                heapq.heapreplace(self.slowest, (r.duration, key, r.name))
        if status in (1, 2) and attempt == latest:
            prev = self.failures.get(key)
            if prev is not None and min(prev.attempt or 1, _MAX_ATTEMPT) == attempt:
                self.failures[key] = _trim(merge_versions(prev, r))  # a second source of this failure
            elif prev is not None or len(self.failures) < MAX_FAILURES_IN_MEMORY:
                self.failures[key] = _trim(r)
        elif key in self.failures:
            del self.failures[key]

    def compact(self) -> None:
        """The run is finished (no more results): keep only the tests that ever failed, which is what
        rendering a report still looks up; the counts stay. A retained run then costs a few hundred
        bytes instead of ~90 per test."""
        self.index = {key: packed for key, packed in self.index.items() if packed >> 8}

    def status_of(self, key: int) -> str | None:
        packed = self.index.get(key)
        return None if packed is None else _STATUS_NAMES[packed & 3]


def _trim(r: TestResult) -> TestResult:
    """Failures kept in memory carry their message and a bounded trace, not their whole output."""
    details = r.details
    if details and len(details) > 4096:
        details = details[:4096] + "\n… (truncated; full trace in the run's results)"
    return msgspec.structs.replace(r, details=details, stdout=None, stderr=None)
