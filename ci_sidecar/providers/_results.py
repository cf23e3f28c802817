"""Reading a run's per-test results inside a provider: one decoding stream and one collecting pass.

``env.read_results`` yields msgpack-encoded :class:`~ci_sidecar.protocol.records.TestResult` records (or
already-decoded values from in-process callers); every provider reads them through :func:`iter_results`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import DurationHistogram, SlowestTests

from .base import ProviderEnv, RunSnapshot

__all__ = ["Collected", "collect", "iter_results"]

_decode = msgspec.msgpack.Decoder(TestResult).decode

ResultKey = tuple[str | None, str | None, str]


async def iter_results(run: RunSnapshot, env: ProviderEnv, start: int = 0,
                       end: int | None = None) -> AsyncIterator[TestResult]:
    """The records of ``run`` at positions [start, end) (default: all), in stream order, decoded (nothing when the
    session cannot read results)."""
    end = run.results_end if end is None else min(end, run.results_end)
    if env.read_results is None or end <= start:
        return
    async for raw in env.read_results(run.id, start, end):
        result = _decode(raw) if isinstance(raw, bytes | bytearray | memoryview) else raw
        if isinstance(result, dict):
            result = msgspec.convert(result, TestResult)
        yield result


class Collected:
    """What one pass over a run's per-test records yields (bounded except for ``latest``)."""

    def __init__(self, *, keep_all: bool = False) -> None:
        #: every record in stream order (all attempts), when asked for: a JUnit file lists reruns too
        self.all: list[TestResult] | None = [] if keep_all else None
        self.latest: dict[ResultKey, TestResult] = {}
        self.first_failure: dict[ResultKey, TestResult] = {}
        self.slowest = SlowestTests(10)
        self.histogram = DurationHistogram()

    def add(self, result: TestResult) -> None:
        key = (result.suite, result.classname, result.name)
        if self.all is not None:
            self.all.append(result)
        self.latest[key] = result
        if result.status in ("failed", "error") and key not in self.first_failure:
            # insertion order = stream order: stable as results are appended, so "annotations sent so far"
            # is a prefix that stays a prefix across attempts
            self.first_failure[key] = result

    def finish(self) -> None:
        for result in self.latest.values():
            self.slowest.add(result)
            self.histogram.add(result.duration)

    @property
    def failures(self) -> list[TestResult]:
        """The latest result of every test that failed or errored."""
        return [r for r in self.latest.values() if r.status in ("failed", "error")]

    @property
    def candidates(self) -> list[TestResult]:
        """The first failure of every test that ever failed, in stream order (a stable prefix across attempts)."""
        return list(self.first_failure.values())


async def collect(run: RunSnapshot, env: ProviderEnv, *, keep_all: bool = False) -> Collected:
    """One pass over ``run``'s results (``keep_all``: also every record, in :attr:`Collected.all`)."""
    collected = Collected(keep_all=keep_all)
    async with aclosing(iter_results(run, env)) as results:
        async for result in results:
            collected.add(result)
    collected.finish()
    return collected
