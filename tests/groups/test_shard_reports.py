"""A merged run's shards section in every report: one row per shard with its counts, the missing and slowest
shards, and a balance hint taken from the history's test durations when it has them, else from this run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.protocol.shards import ShardReport, ShardRow
from ci_sidecar.providers._render import report_data
from ci_sidecar.providers._results import Collected
from ci_sidecar.providers.base import ProviderEnv, RunSnapshot
from ci_sidecar.reports import fit_markdown, render_html, render_json
from ci_sidecar.service.groups.balance import concluded, longest_first
from helpers import DaemonProcess


def _data(shards: ShardReport):  # type: ignore[no-untyped-def]
    run = RunSnapshot(id="group-x", name="unit", status="finished", conclusion="failure",
                      start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T00:01:00Z",
                      counts=Counts(total=9, passed=7, failed=2), shards=shards, output_dir="/nonexistent")
    env = ProviderEnv.build(CIContext(provider="github", sources={}), {}, None, None)
    return report_data(run, env, Collected(), max_failures=10)


REPORT = concluded(ShardReport(rows=[
    ShardRow(shard=0, status="finished", machine="rig-<a>|1", duration=30.0, total=5, passed=4, failed=1),
    ShardRow(shard=1, status="finished", machine="rig-b", duration=90.0, total=4, passed=3, failed=1),
    ShardRow(shard=2, status="missing"),
]), {1: 30.0, 2: 20.0, 3: 10.0, 4: 10.0}, {}, 0)


def test_check_summary_html_and_json_carry_the_shards_section() -> None:
    """The summary a provider publishes lists each shard's counts and machine (escaped), the missing shard, the
    slowest and a hint; the HTML report escapes the machine; the JSON report has every row."""
    data = _data(REPORT)
    text = fit_markdown(data, 65535).text
    section = text.split("### Shards (3: 2 finished, 1 missing)", 1)[1]
    assert "| 0 | finished | 30.00 s | 5 | 4 | 1 | 0 | rig\\-\\<a\\>\\|1 |" in section
    assert "| 2 | missing |  |  |  |  |  |  |" in section
    assert "**Missing shard(s):** 2 (not counted as passed)" in section
    assert "Slowest shard: 1 (1m 30s)" in section
    assert "Balance: split by test duration, the slowest shard would take 30.00 s instead of 1m 30s" in section
    html = render_html(data)
    assert "rig-&lt;a&gt;|1" in html and "<a>" not in html.split('<section id="shards">')[1]
    doc = json.loads(render_json(data))
    assert [r["shard"] for r in doc["run"]["shards"]["rows"]] == [0, 1, 2]
    assert doc["run"]["shards"]["balance"]["sizes"] == [1, 1, 2] and doc["run"]["shards"]["missing"] == [2]


def test_many_shards_stay_compact_when_the_summary_is_short_of_room() -> None:
    """With 400 shards and little room, the table keeps the missing and slowest shards and sums up the rest."""
    rows = [ShardRow(shard=n, status="finished", machine=f"rig-{n}", duration=10.0 + n % 7, total=50, passed=50)
            for n in range(400)]
    rows[123] = ShardRow(shard=123, status="missing")
    data = _data(ShardReport(rows=rows, missing=[123]))
    assert fit_markdown(data, 65535).text.count("| finished |") == 49  # the full table stops at 50 rows
    fitted = fit_markdown(data, 2000)
    assert fitted.step == "no-traces" and len(fitted.text.encode()) <= 2000
    assert "| 123 | missing |" in fitted.text and "… and 390 more shard(s), 19500 tests" in fitted.text
    assert fitted.text.count("| finished |") == 9


def test_a_hint_from_history_differs_from_one_from_this_run() -> None:
    """The same run's split follows the history's durations when it has them: test 1 was slow only this time."""
    rows = [ShardRow(shard=0, status="finished", duration=6.0, total=3), ShardRow(shard=1, status="finished",
                                                                            duration=3.0, total=2)]
    now = {1: 6.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0}
    this_run = concluded(ShardReport(rows=rows), now, {}, 0).balance
    past = concluded(ShardReport(rows=rows), now, {k: 2.0 for k in now}, 4).balance
    assert this_run is not None and past is not None
    assert (this_run.source, this_run.sizes, this_run.predicted) == ("this_run", [1, 4], [6.0, 4.0])
    assert (past.source, sorted(past.sizes), past.known, past.runs) == ("history", [2, 3], 5, 4)
    assert longest_first([], 3) == ([0, 0, 0], [0.0, 0.0, 0.0])


def _fan_in(c: Any, durations: dict[str, float], rows: list[dict[str, Any]]) -> dict[str, Any]:
    run = c.request("create_test_run", {"name": "unit", "branch": "main", "shards": rows})
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": n, "classname": "pkg", "status": "failed" if n == "t4" else "passed", "duration": d}
        for n, d in durations.items()]})
    return c.request("complete_test_run", {"test_run_id": run["id"]})


def test_fan_in_runs_report_shards_and_balance_from_history(daemon: DaemonProcess) -> None:
    """A fan-in run's shards reach its reports; the next run's hint comes from the history's durations and
    differs from the split this run's own durations give; a shard listed twice is refused."""
    c = daemon.client()
    rows = [{"shard": 0, "status": "finished", "duration": 6.0, "total": 3, "passed": 3},
            {"shard": 1, "status": "finished", "duration": 3.0, "total": 2, "passed": 1, "failed": 1}]
    first = _fan_in(c, {f"t{i}": 2.0 for i in range(5)}, rows)
    assert first["shards"]["balance"]["source"] == "this_run" and first["shards"]["slowest"] == 0
    second = _fan_in(c, {"t0": 6.0, "t1": 1.0, "t2": 1.0, "t3": 1.0, "t4": 1.0}, rows)
    balance = second["shards"]["balance"]
    assert (balance["source"], balance["known"], balance["runs"]) == ("history", 5, 1)
    assert sorted(balance["sizes"]) == [2, 3] and max(balance["predicted"]) == 6.0  # this run's alone: [1, 4]
    assert second["delta"]["base"]["test_run_id"] == first["id"]
    paths = {fmt: Path(c.request("render_report", {"test_run_id": second["id"], "format": fmt})["path"])
             for fmt in ("json", "markdown", "html")}
    assert json.loads(paths["json"].read_text())["run"]["shards"]["rows"][1] == rows[1]
    assert "| 1 | finished | 3.00 s | 2 | 1 | 1 | 0 |" in paths["markdown"].read_text()
    assert "Balance: split by test duration" in paths["html"].read_text()
    from ci_sidecar_client import RpcError

    with pytest.raises(RpcError) as twice:
        c.request("create_test_run", {"name": "unit", "shards": [rows[0], rows[0]]})
    assert twice.value.code == -32602 and twice.value.data["path"] == "$.shards[1].shard"


def test_a_forgotten_merged_run_is_no_longer_the_branchs_last_run(tmp_path: Path) -> None:
    """A daemon whose final publication passed to another shard's daemon removes its record of the merged run:
    its history's last run on the branch is the earlier one again, and durations come from that one only."""
    from ci_sidecar.state.history import HistoryRun, HistoryStore, TestOutcome

    store = HistoryStore(tmp_path / "history.sqlite3")
    try:
        for run_id, took in (("earlier", 1.0), ("group-x", 9.0)):
            store.add_run(HistoryRun(run_id=run_id, name="unit", repository=None, branch="main", target_branch=None,
                                     pr_number=None, commit_sha=None, build_id=None, conclusion="success",
                                     finished=0.0, end_time=None, total=1, failed=0),
                          [TestOutcome(key=7, suite=None, classname="pkg", name="t", status=0, duration=took)], window=20)
        assert store.latest("unit", None, "main").run_id == "group-x"  # type: ignore[union-attr]
        assert store.delete_run("group-x") and not store.delete_run("group-x")
        assert store.latest("unit", None, "main").run_id == "earlier"  # type: ignore[union-attr]
        assert store.durations("unit", None) == ({7: 1.0}, 1)
    finally:
        store.close()
