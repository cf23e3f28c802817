"""A finished run keeps its counts and what its reports need, not a per-test index: retained runs cost
memory per run, not per test."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from ci_sidecar.config import load_config
from ci_sidecar.protocol.methods import CompleteTestRunParams, CreateTestRunParams
from ci_sidecar.protocol.records import TestResult
from ci_sidecar.service.app import CoreService
from ci_sidecar.service.tally import Tally


class TestFinishedRunMemory:
    def test_compact_keeps_counts_and_the_tests_that_ever_failed(self) -> None:
        """After compact() the counts are unchanged and only tests with a failed attempt stay indexed."""
        tally = Tally()
        for i in range(1000):
            tally.add(TestResult(name=f"t{i}", status="passed"))
        tally.add(TestResult(name="flaky", status="failed", attempt=1))
        tally.add(TestResult(name="flaky", status="passed", attempt=2))
        tally.add(TestResult(name="broken", status="error"))
        before = tally.counts()
        tally.compact()
        assert before == tally.counts()
        assert 2 == len(tally.index)
        assert (1002, 1001, 1, 1) == (before.total, before.passed, before.errors, before.flaky)

    async def test_a_completed_run_reports_the_same_failures_with_a_small_index(self, tmp_path: Path) -> None:
        """Completing a run drops its per-test index; the report still lists only the latest failures,
        even for a retry that arrived before the attempt it replaced."""
        loaded = load_config(env={}, cwd=str(tmp_path), flags={"state_dir": str(tmp_path / "state")})
        core = CoreService(loaded)
        async with trio.open_nursery() as nursery:
            await nursery.start(core.run)
            ctx = core._context_for("s", {}, str(tmp_path), loaded.config)
            run = await core.runs.create(ctx, CreateTestRunParams(name="retained"))
            state = core.runs.runs[run.id]
            results = [TestResult(name=f"t{i}", status="passed") for i in range(2000)]
            results += [TestResult(name="retried", status="passed", attempt=2),
                        TestResult(name="retried", status="failed", attempt=1, message="first try"),
                        TestResult(name="broken", status="failed", message="still broken")]
            await core.runs.add_results(ctx, state, results)
            done = await core.runs.complete(ctx, CompleteTestRunParams(test_run_id=run.id))
            assert (2002, 1, 1) == (done.counts.total, done.counts.failed, done.counts.flaky)
            assert len(state.tally.index) <= 2
            report = await core.reporting.render_report(run.id, "json", None)
            await core.close()
            nursery.cancel_scope.cancel()
        failures = json.loads(Path(report["path"]).read_text())["failures"]
        assert ["broken"] == [f["name"] for f in failures]
