"""The run history: a sequence of runs with known flips gives the expected deltas and flaky scores."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import trio

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.service.history import HistorySettings, RunHistory, flips_of
from ci_sidecar.state.history import HISTORY_FILE, HistoryRun, HistoryStore


def _run(run_id: str, branch: str = "main", *, target: str | None = None, pr: int | None = None,
         finished: float | None = None) -> HistoryRun:
    return HistoryRun(run_id=run_id, name="unit", repository="acme/app", branch=branch, target_branch=target,
                      pr_number=pr, commit_sha=f"sha-{run_id}", build_id=None, conclusion="success",
                      finished=time.time() if finished is None else finished, end_time="2026-01-01T00:00:00Z", total=0, failed=0)


def _results(outcomes: dict[str, str]) -> list[TestResult]:
    out = []
    for name, code in outcomes.items():
        if code == "R":  # failed, then passed on a retry
            out += [TestResult(name=name, classname="t", status="failed", attempt=1),
                    TestResult(name=name, classname="t", status="passed", attempt=2)]
        else:
            out.append(TestResult(name=name, classname="t", status={"P": "passed", "F": "failed", "S": "skipped",
                                                                     "E": "error"}[code], duration=0.5))
    return out


def _record_all(root: Path, runs: list[tuple[HistoryRun, dict[str, str]]], **settings: object) -> list:
    async def main() -> list:
        history = RunHistory(root, HistorySettings(**settings))  # type: ignore[arg-type]
        deltas = [await history.record(run, lambda r=results: _results(r)) for run, results in runs]
        await history.aclose()
        return deltas
    return trio.run(main)


def test_sequence_of_runs_gives_expected_deltas(tmp_path: Path) -> None:
    """Each run is compared with the previous run of its branch: new failures, fixed, still failing, new, removed."""
    deltas = _record_all(tmp_path, [
        (_run("r1"), {"a": "P", "b": "P", "c": "F", "d": "P"}),
        (_run("r2"), {"a": "F", "b": "P", "c": "F", "e": "P"}),
        (_run("r3"), {"a": "P", "b": "E", "c": "P", "e": "P", "f": "F"}),
    ])
    first, second, third = deltas
    assert "none" == first.base_kind and first.base is None
    assert ["t.c"] == first.new_failures and 4 == first.counts.new_tests
    assert "previous_run" == second.base_kind and "r1" == second.base.test_run_id
    assert (["t.a"], [], ["t.c"], ["t.e"], ["t.d"]) == (
        second.new_failures, second.fixed, second.still_failing, second.new_tests, second.removed_tests)
    assert (["t.b", "t.f"], ["t.a", "t.c"], [], ["t.f"], []) == (
        third.new_failures, third.fixed, third.still_failing, third.new_tests, third.removed_tests)
    assert (2, 2, 0, 1, 0) == (third.counts.new_failures, third.counts.fixed, third.counts.still_failing,
                               third.counts.new_tests, third.counts.removed_tests)


def test_flaky_scores_count_flips_over_the_window(tmp_path: Path) -> None:
    """A test alternating pass/fail scores flips per run over the window; a pass on a retry counts as a flip."""
    pattern = "PFPFP"
    runs = [(_run(f"r{i}"), {"flip": pattern[i], "steady": "P", "retry": "R" if i == 4 else "P"})
            for i in range(5)]
    last = _record_all(tmp_path, runs, window=4)[-1]
    by_name = {f.test: f for f in last.flaky}
    assert {"t.flip", "t.retry"} == set(by_name)
    assert (3, 4, 0.75) == (by_name["t.flip"].flips, by_name["t.flip"].runs, by_name["t.flip"].score)
    assert (1, 4) == (by_name["t.retry"].flips, by_name["t.retry"].runs)
    assert "t.flip" == last.flaky[0].test  # highest score first
    assert (0, 0) == flips_of("S") and (2, 3) == flips_of("PSFP")


def test_pr_run_is_compared_with_its_target_branch(tmp_path: Path) -> None:
    """A PR run's base is the last finished run of its target branch, not the PR branch's previous run."""
    deltas = _record_all(tmp_path, [
        (_run("m1"), {"a": "P", "b": "F", "c": "P"}),
        (_run("p1", "feature", target="main", pr=7), {"a": "F", "b": "F", "c": "P"}),
        (_run("m2"), {"a": "P", "b": "P", "c": "P"}),
        (_run("p2", "feature", target="main", pr=7), {"a": "F", "b": "F", "c": "F"}),
    ])
    pr = deltas[3]
    assert "target_branch" == pr.base_kind and "m2" == pr.base.test_run_id and "main" == pr.base.branch
    assert ["t.a", "t.b", "t.c"] == pr.new_failures and [] == pr.still_failing


def test_history_survives_restart_and_keeps_retention(tmp_path: Path) -> None:
    """Runs recorded by one daemon are the base of the next one; retention deletes the oldest and the too old."""
    _record_all(tmp_path, [(_run(f"r{i}"), {"a": "P"}) for i in range(4)], max_runs=3)
    again = _record_all(tmp_path, [(_run("r9"), {"a": "F"})], max_runs=3)[0]
    assert "r3" == again.base.test_run_id and ["t.a"] == again.new_failures
    store = HistoryStore(tmp_path / HISTORY_FILE, readonly=True)
    try:
        assert 3 == store.count_runs()
        assert store.run("r0") is None and store.run("r9") is not None
    finally:
        store.close()
    db = HistoryStore(tmp_path / HISTORY_FILE)
    try:
        assert 3 == db.retain(max_runs=100, max_age_s=60, now=time.time() + 61)
        assert 0 == db.count_runs()
    finally:
        db.close()
    assert 0o600 == stat.S_IMODE(os.stat(tmp_path / HISTORY_FILE).st_mode)


def test_recording_a_run_again_replaces_it(tmp_path: Path) -> None:
    """A run recorded twice (a crash between the history and the journal) is one run in the history."""
    deltas = _record_all(tmp_path, [
        (_run("r1"), {"a": "P"}), (_run("r2"), {"a": "F"}), (_run("r2"), {"a": "F"}),
    ])
    assert ["t.a"] == deltas[2].new_failures and "r1" == deltas[2].base.test_run_id
    store = HistoryStore(tmp_path / HISTORY_FILE, readonly=True)
    try:
        assert 2 == store.count_runs()
        assert "PF" == next(iter(store.recent("acme/app", "unit", "main").values()))
    finally:
        store.close()
