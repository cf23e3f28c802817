"""A merged run's shards section: rows from the shards' states, and at completion the slowest shard and the
balance hint — the split of the run's tests that would make the shards take equal times next run.

The split is the longest-processing-time greedy one (each test, longest first, goes to the shard with the least
time so far: within 4/3 of the best split), over each test's duration as the history knows it (the mean of its
last recorded runs of the same name), else as this run measured it. It assumes equally fast machines.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

import msgspec

from ci_sidecar.protocol.shards import ShardBalance, ShardReport, ShardRow

from .model import GroupDoc, ShardDoc

__all__ = ["group_report", "concluded", "longest_first"]


def _duration(s: ShardDoc) -> float | None:
    return round(max(0.0, s.end_wall - s.start_wall), 3) if s.end_wall is not None else None


def group_report(doc: GroupDoc, shards: dict[int, ShardDoc], final: bool) -> ShardReport:
    """One row per expected shard (those that never reported too), in shard order; at the final publication a
    shard that has not finished is missing."""
    expected = sorted(set(range(doc.total)) | set(shards)) if doc.total else sorted(shards)
    rows = []
    for n in expected:
        s = shards.get(n)
        if s is None:
            rows.append(ShardRow(shard=n, status="missing"))
            continue
        status = "finished" if s.status == "finished" else ("missing" if final else "running")
        c = s.counts
        rows.append(ShardRow(shard=n, status=status, machine=s.machine[:256] or None, duration=_duration(s),  # type: ignore[arg-type]
                             total=c.total, passed=c.passed, failed=c.failed + c.errors, skipped=c.skipped))
    return _with_slowest(ShardReport(rows=rows))


def _with_slowest(report: ShardReport) -> ShardReport:
    timed = [(r.duration, -r.shard) for r in report.rows if r.status == "finished" and r.duration is not None]
    slowest = -max(timed)[1] if timed else None
    missing = [r.shard for r in report.rows if r.status == "missing"]
    return msgspec.structs.replace(report, slowest=slowest, missing=missing)


def longest_first(durations: list[float], shards: int) -> tuple[list[int], list[float]]:
    """(tests per shard, seconds per shard) of the greedy longest-first split of ``durations`` over ``shards``."""
    sizes = [0] * shards
    loads = [(0.0, n) for n in range(shards)]
    for d in sorted(durations, reverse=True):
        load, n = heapq.heappop(loads)
        sizes[n] += 1
        heapq.heappush(loads, (load + d, n))
    times = [0.0] * shards
    for load, n in loads:
        times[n] = round(load, 3)
    return sizes, times


def concluded(report: ShardReport, this_run: Mapping[int, float | None], history: Mapping[int, float],
              runs: int) -> ShardReport:
    """``report`` at the run's completion: the slowest shard, the missing ones, and the balance hint over the
    tests of ``this_run`` (test key → duration measured now), taking ``history``'s duration (test key → mean over
    its last ``runs`` recorded runs) where it has one. No hint for fewer than two shards or no known duration."""
    report = _with_slowest(report)
    shards = len(report.rows)
    durations: list[float | None] = []
    known = 0
    for key, now in this_run.items():
        past = history.get(key)
        if past is not None:
            known += 1
        durations.append(past if past is not None else now)
    measured = [d for d in durations if d is not None]
    if shards < 2 or not measured:
        return report
    typical = sum(measured) / len(measured)  # a test nobody timed counts as an average one
    sizes, times = longest_first([d if d is not None else typical for d in durations], shards)
    slowest = next((r.duration for r in report.rows if r.shard == report.slowest), None)
    balance = ShardBalance(source="history" if known else "this_run", tests=len(durations), sizes=sizes,
                           predicted=times, slowest_s=slowest, known=known, runs=runs if known else 0)
    return msgspec.structs.replace(report, balance=balance)
