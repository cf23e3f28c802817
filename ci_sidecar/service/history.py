"""Recording finished runs in the history and comparing each with its base (the run's ``delta``).

At completion the run service hands every run here before it is published: its tests go into the
history database (:mod:`ci_sidecar.state.history`) and the delta against the base comes back, to be
kept with the run and shown in every report. The database work runs in a worker thread, one call at a
time (the daemon's single writer); a history that cannot be written costs the run its delta, never its
completion.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import trio

from ci_sidecar.protocol.history import DELTA_LIST_CAP, BaseRun, DeltaCounts, FlakyTest, RunDelta
from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import display_name
from ci_sidecar.state.history import HISTORY_FILE, HistoryRun, HistoryStore, TestOutcome, to_signed

from .tally import STATUS_CODES, test_key

__all__ = ["Brief", "HistorySettings", "decode_brief", "RunHistory", "collect_outcomes", "compute_delta", "flips_of", "label"]

log = logging.getLogger("ci_sidecar.history")

_FAILING = (1, 2)
_PASSING = (0, 4)
_RETRIED = 4  # passed after a failed attempt


class Brief(msgspec.Struct):
    """The fields of a stored TestResult the history keeps (decoding only these is several times faster)."""

    name: str
    status: str
    suite: str | None = None
    classname: str | None = None
    attempt: int | None = None
    duration: float | None = None


#: a stored (msgpack) TestResult → :class:`Brief`
decode_brief = msgspec.msgpack.Decoder(Brief).decode


@dataclass(frozen=True)
class HistorySettings:
    """``[history]`` of the daemon's configuration."""

    enabled: bool = True
    window: int = 20
    max_runs: int = 1000
    max_age_s: float = 90 * 86400.0
    #: how long recording a run waits for another process's write to the history
    lock_wait_s: float = 10.0


#: once a wait was in vain, how long the next runs wait for the history (until one is recorded again)
CONTENDED_WAIT_S = 0.5


def label(suite: str | None, classname: str | None, name: str) -> str:
    """A test's name as reports show it."""
    return display_name(TestResult(name=name, classname=classname, suite=suite, status="passed"))


def collect_outcomes(results: Iterable[TestResult | Brief]) -> list[TestOutcome]:
    """One outcome per test from every stored attempt: the latest attempt decides, and a pass after a failed
    attempt is "passed on a retry" (the same rules as the run's counts)."""
    latest: dict[int, tuple[int, TestResult | Brief]] = {}
    failed_before: set[int] = set()
    for r in results:
        key = test_key(r)
        attempt = r.attempt or 1
        if r.status in ("failed", "error"):
            failed_before.add(key)
        seen = latest.get(key)
        if seen is None or attempt >= seen[0]:
            latest[key] = (attempt, r)
    out = []
    for key, (_attempt, r) in latest.items():
        status = STATUS_CODES[r.status]
        if status == 0 and key in failed_before:
            status = _RETRIED
        out.append(TestOutcome(key=to_signed(key), suite=r.suite, classname=r.classname, name=r.name,
                               status=status, duration=r.duration))
    return out


def flips_of(outcomes: str) -> tuple[int, int]:
    """(flips, outcomes counted) of a test's outcome letters: a change between passing and failing from one
    run to the next is a flip, and so is a pass on a retry; skips do not count."""
    flips = runs = 0
    previous = None
    for letter in outcomes:
        if letter == "S":
            continue
        runs += 1
        failing = letter == "F"
        if letter == "R":
            flips += 1
        if previous is not None and failing != previous:
            flips += 1
        previous = failing
    return flips, runs


def _capped(items: list[str]) -> list[str]:
    return sorted(items[:DELTA_LIST_CAP])


def compute_delta(tests: list[TestOutcome], base: HistoryRun | None, base_kind: str, base_statuses: dict[int, int],
                  recent: dict[int, str], window: int,
                  names_of: Callable[[list[int]], dict[int, tuple[str | None, str | None, str]]]) -> RunDelta:
    """The delta of a run's ``tests`` against its base's statuses, with the flaky tests of the window.

    ``recent`` holds each test's outcomes on the base's series before this run; ``names_of`` looks up the
    names of removed tests (they are not in this run).
    """
    new_failures: list[str] = []
    fixed: list[str] = []
    still: list[str] = []
    new_tests: list[str] = []
    counts = DeltaCounts()
    flaky: list[FlakyTest] = []
    for t in tests:
        before = base_statuses.get(t.key)
        now_failing = t.status in _FAILING
        if before is None:
            counts.new_tests += 1
            if len(new_tests) < DELTA_LIST_CAP:
                new_tests.append(label(t.suite, t.classname, t.name))
        if now_failing and before not in _FAILING:
            counts.new_failures += 1
            if len(new_failures) < DELTA_LIST_CAP:
                new_failures.append(label(t.suite, t.classname, t.name))
        elif now_failing:
            counts.still_failing += 1
            if len(still) < DELTA_LIST_CAP:
                still.append(label(t.suite, t.classname, t.name))
        elif before in _FAILING and t.status in _PASSING:
            counts.fixed += 1
            if len(fixed) < DELTA_LIST_CAP:
                fixed.append(label(t.suite, t.classname, t.name))
        past = recent.get(t.key, "")
        if now_failing or t.status == _RETRIED or "F" in past or "R" in past:
            letters = (past + "PFFSR"[t.status])[-window:] if window else ""
            n_flips, n_runs = flips_of(letters)
            if n_flips:
                flaky.append(FlakyTest(test=label(t.suite, t.classname, t.name), score=round(n_flips / n_runs, 2),
                                       flips=n_flips, runs=n_runs))
    current = {t.key for t in tests}
    removed_keys = [k for k in base_statuses if k not in current]
    counts.removed_tests = len(removed_keys)
    names = names_of(removed_keys[:DELTA_LIST_CAP])
    removed = [label(*names[k]) for k in removed_keys[:DELTA_LIST_CAP] if k in names]
    flaky = heapq.nsmallest(DELTA_LIST_CAP, flaky, key=lambda f: (-f.score, -f.flips, f.test))
    base_run = None
    if base is not None:
        base_run = BaseRun(test_run_id=base.run_id, name=base.name, branch=base.branch, commit_sha=base.commit_sha,
                           conclusion=base.conclusion, finished_at=base.end_time, build_id=base.build_id)
    return RunDelta(base_kind=base_kind, counts=counts, base=base_run,  # type: ignore[arg-type]
                    new_failures=_capped(new_failures), fixed=_capped(fixed), still_failing=_capped(still),
                    new_tests=_capped(new_tests), removed_tests=_capped(removed), flaky=flaky, window=window)


class RunHistory:
    """The daemon's history: one writer at a time on ``<state root>/history.sqlite3``.

    The connection is opened for each run recorded and closed after it: the daemon holds no descriptor for
    the history between runs (its descriptor budget goes to connections), and closing the last connection
    folds the write-ahead log back into the database.
    """

    def __init__(self, root: str | Path, settings: HistorySettings) -> None:
        self.path = Path(root) / HISTORY_FILE
        self.settings = settings
        self._lock = trio.Lock()  # one writer at a time
        #: the last run found the history locked by another process: the next ones barely wait for it (runs
        #: queued behind the lock would otherwise each wait the whole ``lock_wait_s`` to complete)
        self._contended = False

    def _open(self) -> None:
        HistoryStore(self.path).close()  # creates or migrates the schema

    async def open(self) -> None:
        """Open (or create) the database now, so a problem shows at start-up (logged; runs then have no delta)."""
        if not self.settings.enabled:
            return
        async with self._lock:
            try:
                await trio.to_thread.run_sync(self._open)
            except Exception as exc:
                log.error("cannot open the run history at %s: %s (runs will have no comparison)", self.path, exc)

    async def record(self, run: HistoryRun, results: Callable[[], Iterable[TestResult | Brief]]) -> RunDelta | None:
        """Record a finished run and return its delta; ``None`` (logged) when the history is off or fails."""
        if not self.settings.enabled:
            return None
        async with self._lock:
            try:
                return await trio.to_thread.run_sync(self._record, run, results)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    log.exception("could not record run %s in the history at %s (its reports show no comparison)",
                                  run.run_id, self.path)
                    return None
                log.warning("could not record run %s in the history at %s: another process holds it locked (%s); "
                            "the run has no comparison, and the next runs wait at most %.1f s for it until one is "
                            "recorded", run.run_id, self.path, exc, CONTENDED_WAIT_S)
                return None
            except Exception:
                log.exception("could not record run %s in the history at %s (its reports show no comparison)",
                              run.run_id, self.path)
                return None

    def _record(self, run: HistoryRun, results: Callable[[], Iterable[TestResult | Brief]]) -> RunDelta:
        tests = collect_outcomes(results())
        wait = CONTENDED_WAIT_S if self._contended else self.settings.lock_wait_s
        self._contended = True  # until this run is recorded
        store = HistoryStore(self.path, busy_timeout_s=wait)
        try:
            delta = self._record_in(store, run, tests)
        finally:
            store.close()
        self._contended = False
        return delta

    def _record_in(self, store: HistoryStore, run: HistoryRun, tests: list[TestOutcome]) -> RunDelta:
        base, kind = None, "none"
        if run.target_branch and run.pr_number is not None:
            base, kind = store.latest(run.name, run.repository, run.target_branch, exclude=run.run_id), "target_branch"
        previous = store.latest(run.name, run.repository, run.branch, exclude=run.run_id)
        if base is None:
            base, kind = previous, "previous_run"
        if base is None:
            kind = "none"
        statuses = store.statuses(base.run_id) if base is not None else {}
        series_branch = base.branch if base is not None else run.branch
        recent = store.recent(run.repository, run.name, series_branch)
        s = self.settings
        store.add_run(run, tests, window=s.window, known=statuses)
        store.retain(max_runs=s.max_runs, max_age_s=s.max_age_s)
        delta = compute_delta(tests, base, kind, statuses, recent, s.window, store.names)
        delta.previous_conclusion = previous.conclusion if previous is not None else None
        return delta

    async def forget(self, run_id: str) -> None:
        """Remove a recorded run (a group's merged run another daemon recorded as its final publisher)."""
        if not self.settings.enabled:
            return
        async with self._lock:
            try:
                await trio.to_thread.run_sync(self._forget, run_id)
            except Exception as exc:
                log.warning("cannot remove run %s from the history at %s: %s", run_id, self.path, exc)

    def _forget(self, run_id: str) -> None:
        store = HistoryStore(self.path)
        try:
            store.delete_run(run_id)
        finally:
            store.close()

    async def durations(self, name: str, repository: str | None, exclude: str) -> tuple[dict[int, float], int]:
        """Each test's mean duration over the last recorded runs of ``name`` (see
        :meth:`~ci_sidecar.state.history.HistoryStore.durations`); nothing (logged) when the history is off or
        cannot be read."""
        if not self.settings.enabled or not self.path.exists():
            return {}, 0

        def read() -> tuple[dict[int, float], int]:
            store = HistoryStore(self.path, readonly=True)
            try:
                return store.durations(name, repository, exclude=exclude)
            finally:
                store.close()

        async with self._lock:
            try:
                return await trio.to_thread.run_sync(read)
            except Exception as exc:
                log.warning("cannot read test durations from the history at %s: %s", self.path, exc)
                return {}, 0

    async def aclose(self) -> None:
        """Wait for a run being recorded (nothing stays open between runs)."""
        async with self._lock:
            pass
