"""What every report renderer takes: :class:`ReportData`, plus small streaming helpers to build it.

The run service keeps counts, failures and the slowest tests in memory and per-test records on disk; the
renderers therefore get the bounded parts as lists and the unbounded part (every result) as a *factory*
that returns a fresh iterator, so a renderer can make its own pass over a huge run without holding it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator

import msgspec

from ci_sidecar.protocol.records import CIContext, TestResult, TestRun

__all__ = [
    "DURATION_EDGES",
    "DurationHistogram",
    "HistogramBucket",
    "ReportArtifact",
    "ReportData",
    "SlowestTests",
    "bucket_label",
    "display_name",
    "format_coverage",
    "format_duration",
]

#: Upper edges (seconds) of the duration histogram buckets; a last bucket takes everything above.
#: Decades suit test suites: unit tests sit in the first buckets, integration tests in the later ones.
DURATION_EDGES: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0)


class HistogramBucket(msgspec.Struct, kw_only=True, frozen=True):
    """Tests whose duration is in ``[lower, upper)``; ``upper`` is ``None`` for the open last bucket."""

    lower: float
    upper: float | None
    count: int


class ReportArtifact(msgspec.Struct, kw_only=True, frozen=True):
    """An artifact of the run as a report lists it: its URL when one is known (never a guessed one)."""

    name: str
    size: int
    url: str | None = None


class ReportData(msgspec.Struct, kw_only=True):
    """Everything a renderer needs for one run.

    Args:
        run: the run (name, status, conclusion, counts, times).
        ci: where it ran, if known (repository, commit, build link).
        failures: every failed or errored test (latest attempt), in the order to show them.
        slowest: the slowest tests, slowest first.
        histogram: duration distribution buckets (see :class:`DurationHistogram`).
        results: ``None`` or a callable returning a *fresh* iterable of every result (all attempts) each
            time it is called; renderers that list passed tests or write every test call it once per pass.
        full_report_url: where the complete report lives, linked when a rendering is shortened.
        flaky: tests that failed and then passed on a later attempt (their passing attempt).
        artifacts: the run's artifacts when the report was written.
    """

    run: TestRun
    ci: CIContext | None = None
    failures: list[TestResult] = []
    slowest: list[TestResult] = []
    histogram: list[HistogramBucket] = []
    results: Callable[[], Iterable[TestResult]] | None = None
    full_report_url: str | None = None
    flaky: list[TestResult] = []
    artifacts: list[ReportArtifact] = []

    def iter_results(self) -> Iterator[TestResult]:
        """A fresh pass over every result (nothing when the run has no per-test results)."""
        if self.results is None:
            return iter(())
        return iter(self.results())


class DurationHistogram:
    """Counts durations into fixed buckets, one result at a time (constant memory)."""

    def __init__(self, edges: tuple[float, ...] = DURATION_EDGES) -> None:
        self._edges = edges
        self._counts = [0] * (len(edges) + 1)

    def add(self, duration: float | None) -> None:
        """Count one duration; ``None`` (unknown) is not counted."""
        if duration is None:
            return
        for i, edge in enumerate(self._edges):
            if duration < edge:
                self._counts[i] += 1
                return
        self._counts[-1] += 1

    def buckets(self) -> list[HistogramBucket]:
        """The buckets in ascending order, empty ones included so charts keep a stable x axis."""
        lowers = (0.0, *self._edges)
        uppers: tuple[float | None, ...] = (*self._edges, None)
        return [
            HistogramBucket(lower=lo, upper=up, count=n)
            for lo, up, n in zip(lowers, uppers, self._counts, strict=True)
        ]


class SlowestTests:
    """Keeps the ``n`` slowest results seen so far (a min-heap, so memory stays O(n))."""

    def __init__(self, n: int = 10) -> None:
        self._n = n
        self._heap: list[tuple[float, int, TestResult]] = []
        self._tie = itertools.count()  # TestResult is not orderable; the counter breaks ties

    def add(self, result: TestResult) -> None:
        """Consider one result; results without a duration are ignored."""
        if result.duration is None or self._n <= 0:
            return
        item = (result.duration, next(self._tie), result)
        if len(self._heap) < self._n:
            heapq.heappush(self._heap, item)
        elif item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def results(self) -> list[TestResult]:
        """The kept results, slowest first."""
        return [r for _d, _t, r in sorted(self._heap, key=lambda x: (-x[0], x[1]))]


def display_name(result: TestResult) -> str:
    """A test's human name: ``classname.name`` unless the name already says it, then the bare name."""
    name = result.name
    cls = result.classname
    if cls and cls != name and not name.startswith(cls):
        name = f"{cls}.{name}" if not cls.endswith((".", "/", ":")) else f"{cls}{name}"
    if result.attempt is not None and result.attempt > 1:
        name = f"{name} (attempt {result.attempt})"
    return name


def format_coverage(percent: float | None) -> str:
    """``"—"`` for unknown, else at most two decimals: ``"85.5%"``, ``"100%"``."""
    if percent is None:
        return "—"
    return f"{round(percent, 2):g}%"


def format_duration(seconds: float | None) -> str:
    """``"—"`` for unknown, ``"850 ms"``, ``"4.21 s"``, ``"3m 05s"``, ``"1h 02m 03s"``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _edge(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g} ms"
    if seconds < 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


def bucket_label(bucket: HistogramBucket) -> str:
    """``"< 10 ms"`` for a bounded bucket, ``"≥ 1 min"`` for the open last one."""
    if bucket.upper is None:
        return f"≥ {_edge(bucket.lower)}"
    return f"< {_edge(bucket.upper)}"
