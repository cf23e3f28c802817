"""Reads of a run's results (render_report, the final results.json) see every results write answered or
applied before them, even while that write is still on its way to the run's record file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from ci_sidecar.config import load_config
from ci_sidecar.protocol.methods import CreateTestRunParams
from ci_sidecar.protocol.records import TestResult
from ci_sidecar.service.app import CoreService
from ci_sidecar.state import segments
from helpers import DaemonProcess


class TestReadAfterWrite:
    async def test_render_waits_for_a_results_write_in_progress(self, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """A report rendered while the previous batch is still being written (slow disk) counts all of it."""
        loaded = load_config(env={}, cwd=str(tmp_path), flags={"state_dir": str(tmp_path / "state")})
        config = loaded.config
        core = CoreService(loaded)
        write = segments.AppendFile.write
        rendered: dict[str, dict] = {}

        async with trio.open_nursery() as nursery:

            async def render() -> None:
                rendered["json"] = await core.reporting.render_report(run.id, "json", None)

            def slow_write(self: segments.AppendFile, data: bytes) -> None:
                if self.path.suffix == ".rec" and "json" not in rendered:
                    # a report is asked for while the batch is on its way to the record file (slow disk)
                    trio.from_thread.run_sync(nursery.start_soon, render)
                    time.sleep(0.3)
                write(self, data)

            await nursery.start(core.run)
            ctx = core._context_for("s", {}, str(tmp_path), config)
            run = await core.runs.create(ctx, CreateTestRunParams(name="pipelined"))
            state = core.runs.runs[run.id]
            monkeypatch.setattr(segments.AppendFile, "write", slow_write)
            await core.runs.add_results(ctx, state, [TestResult(name=f"t{i}", status="passed") for i in range(500)])
            while "json" not in rendered:
                await trio.sleep(0.05)
            monkeypatch.undo()
            await core.close()
            nursery.cancel_scope.cancel()
        doc = json.loads(Path(rendered["json"]["path"]).read_text())
        assert 500 == len(doc["results"])

    def test_pipelined_report_complete_render(self, daemon: DaemonProcess) -> None:
        """report_results, complete_test_run and render_report sent back to back: the report and the
        final results.json list every result, in every trial."""
        c = daemon.client()
        for trial in range(5):
            run = c.request("create_test_run", {"name": f"pipelined {trial}"})["id"]
            results = [{"name": f"t{i}", "suite": "s", "status": "passed"} for i in range(5000)]
            reported = c.send_request("report_results", {"test_run_id": run, "results": results})
            completed = c.send_request("complete_test_run", {"test_run_id": run, "wait": True})
            rendered = c.send_request("render_report", {"test_run_id": run, "format": "json"})
            assert 5000 == reported.result(30)["total"]
            done = completed.result(30)
            assert 5000 == len(json.loads(Path(rendered.result(30)["path"]).read_text())["results"])
            final = json.loads((Path(done["output_dir"]) / "results.json").read_text())
            assert 5000 == len(final["results"])
