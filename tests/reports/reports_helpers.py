"""Builders for report tests: runs and ReportData from a list of results."""

from __future__ import annotations

from ci_sidecar.protocol.records import Counts, DeliverySummary, TestResult, TestRun
from ci_sidecar.reports import DurationHistogram, ReportData, SlowestTests

HOSTILE = "<script>alert(1)</script> | `tick` ]]> & [x](javascript:alert(1)) *b* _i_ #h"


def counts_of(results: list[TestResult]) -> Counts:
    """Counts over tests using the latest attempt, as docs/protocol.md defines them."""
    latest: dict[tuple, TestResult] = {}
    failed_before: set[tuple] = set()
    for r in sorted(results, key=lambda r: r.attempt or 1):
        key = (r.suite, r.classname, r.name)
        if key in latest and latest[key].status in ("failed", "error"):
            failed_before.add(key)
        latest[key] = r
    c = Counts(total=len(latest))
    for key, r in latest.items():
        if r.status == "passed":
            c.passed += 1
            if key in failed_before:
                c.flaky += 1
        elif r.status == "failed":
            c.failed += 1
        elif r.status == "error":
            c.errors += 1
        else:
            c.skipped += 1
    return c


def make_run(results: list[TestResult], *, name: str = "unit tests", conclusion: str | None = None) -> TestRun:
    counts = counts_of(results)
    if conclusion is None:
        conclusion = "failure" if counts.failed or counts.errors else ("success" if counts.total else "neutral")
    return TestRun(
        id="run-1",
        name=name,
        status="finished",
        conclusion=conclusion,  # type: ignore[arg-type]
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T10:01:00Z",
        duration=sum(r.duration or 0 for r in results),
        counts=counts,
        delivery=DeliverySummary(pending=0, failed=0),
        targets=[],
        comments=[],
    )


def make_data(results: list[TestResult], **kw) -> ReportData:
    hist = DurationHistogram()
    slow = SlowestTests(5)
    for r in results:
        hist.add(r.duration)
        slow.add(r)
    return ReportData(
        run=make_run(results, **{k: kw.pop(k) for k in ("name", "conclusion") if k in kw}),
        failures=[r for r in results if r.status in ("failed", "error")],
        slowest=slow.results(),
        histogram=hist.buckets(),
        results=lambda: iter(results),
        **kw,
    )
