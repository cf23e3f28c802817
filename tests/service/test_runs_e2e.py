"""Runs end to end: the real daemon, driven through the Python client, publishing to `local`."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ci_sidecar_client import Client, RpcError
from helpers import DaemonProcess, daemon_argv


def results(n: int, status: str = "passed", suite: str = "s", attempt: int | None = None) -> list[dict]:
    out = []
    for i in range(n):
        r = {"name": f"test_{i}", "suite": suite, "classname": "C", "status": status, "duration": 0.01 * (i + 1),
             "file": "tests/test_x.py", "line": i + 1}
        if attempt:
            r["attempt"] = attempt
        out.append(r)
    return out


def test_run_lifecycle_on_local(daemon: DaemonProcess, tmp_path: Path) -> None:
    c = daemon.client(config={"output_dir": str(tmp_path / "out")})
    run = c.request("create_test_run", {"name": "unit tests", "wait": True})
    assert run["status"] == "running" and run["targets"][0]["provider"] == "local"
    assert run["targets"][0]["delivery"]["state"] == "delivered"
    assert c.request("report_results", {"test_run_id": run["id"], "results": results(3)}) == {"accepted": 3, "total": 3}
    bad = [{"name": "test_bad", "status": "failed", "message": "assert 1 == 2", "suite": "s"}]
    c.request("report_results", {"test_run_id": run["id"], "results": bad})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    assert done["status"] == "finished" and done["conclusion"] == "failure"
    assert done["counts"] == {"total": 4, "passed": 3, "failed": 1, "errors": 0, "skipped": 0, "flaky": 0}
    assert done["delivery"] == {"pending": 0, "failed": 0} and done["duration"] >= 0
    out = Path(done["output_dir"])
    assert out.parent == tmp_path / "out"
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    stored = json.loads((out / "results.json").read_text())
    assert len(stored["results"]) == 4 and stored["results"][3]["message"] == "assert 1 == 2"


def test_resend_replaces_and_flaky_counts(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "r"})["id"]
    c.request("report_results", {"test_run_id": rid, "results": results(5)})
    c.request("report_results", {"test_run_id": rid, "results": results(5)})  # a resend
    c.request("report_results", {"test_run_id": rid, "results": results(2, "failed", suite="f", attempt=1)})
    c.request("report_results", {"test_run_id": rid, "results": results(2, "passed", suite="f", attempt=2)})
    c.request("report_results", {"test_run_id": rid, "results": results(1, "failed", suite="g", attempt=1)})
    counts = c.request("get_test_run_status", {"test_run_id": rid})["counts"]
    assert counts == {"total": 8, "passed": 7, "failed": 1, "errors": 0, "skipped": 0, "flaky": 2}
    assert c.request("complete_test_run", {"test_run_id": rid})["conclusion"] == "failure"


def test_pipelined_complete_counts_every_result(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "pipelined"})["id"]
    futs = [c.send_request("report_results", {"test_run_id": rid, "results": results(50, suite=f"s{i}")})
            for i in range(20)]
    done = c.send_request("complete_test_run", {"test_run_id": rid})
    late = c.send_request("report_results", {"test_run_id": rid, "results": results(1, suite="late")})
    assert done.result(30)["counts"]["total"] == 1000
    assert all(f.result(30)["accepted"] == 50 for f in futs)
    with pytest.raises(RpcError) as e:
        late.result(30)
    assert e.value.code == -31008 and e.value.data == {"test_run_id": rid}


def test_finished_run_refuses_changes_but_takes_comments(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "f"})["id"]
    c.request("update_test_run", {"test_run_id": rid, "status": "completed"})
    for method, params in [("report_results", {"results": results(1)}), ("update_test_run", {"name": "x"}),
                           ("complete_test_run", {})]:
        with pytest.raises(RpcError) as e:
            c.request(method, {"test_run_id": rid, **params})
        assert e.value.code == -31008
    res = c.request("add_pr_comment", {"body": "late log", "key": "logs", "test_run_id": rid, "wait": True})
    assert res["action"] == "created" and res["delivery"]["state"] == "delivered"
    run = c.request("get_test_run_status", {"test_run_id": rid})
    assert run["conclusion"] == "success" and run["comments"][0]["key"] == "logs"


def test_unknown_run_and_bad_params(daemon: DaemonProcess) -> None:
    c = daemon.client()
    with pytest.raises(RpcError) as e:
        c.request("get_test_run_status", {"test_run_id": "nope"})
    assert e.value.code == -31001 and e.value.data == {"test_run_id": "nope"}
    with pytest.raises(RpcError) as e:
        c.request("create_test_run", {"name": "x", "pr_number": "12"})
    assert e.value.code == -32602 and e.value.data["path"] == "$.pr_number"
    rid = c.request("create_test_run", {"name": "x"})["id"]
    with pytest.raises(RpcError) as e:
        c.request("report_results", {"test_run_id": rid, "results": [{"name": "a", "status": "exploded"}]})
    assert e.value.code == -32602 and e.value.data["path"] == "$.results[0].status"


def test_coverage_is_validated_kept_and_shown_in_the_report(daemon: DaemonProcess, tmp_path: Path) -> None:
    """A run's coverage (percent) from report_results, replaced by complete_test_run, is read back and in report.md;
    a value outside 0–100 is refused with its path and changes nothing."""
    c = daemon.client(config={"output_dir": str(tmp_path / "out")})
    rid = c.request("create_test_run", {"name": "cov"})["id"]
    c.request("report_results", {"test_run_id": rid, "results": results(2), "coverage": 80})
    assert c.request("get_test_run_status", {"test_run_id": rid})["coverage"] == 80
    for bad in (100.5, -1, "85%"):
        with pytest.raises(RpcError) as e:
            c.request("complete_test_run", {"test_run_id": rid, "coverage": bad})
        assert e.value.code == -32602 and e.value.data["path"] == "$.coverage"
    assert c.request("get_test_run_status", {"test_run_id": rid})["status"] == "running"
    done = c.request("complete_test_run", {"test_run_id": rid, "coverage": 85.5, "wait": True})
    assert done["coverage"] == 85.5
    assert json.loads((Path(done["output_dir"]) / "run.json").read_text())["coverage"] == 85.5  # what providers get
    c.request("render_report", {"test_run_id": rid, "format": "markdown"})
    report = (Path(done["output_dir"]) / "report.md").read_text()
    assert "| Coverage |" in report and "| 85.5% |" in report
    html = Path(c.request("render_report", {"test_run_id": rid, "format": "html"})["path"]).read_text()
    assert "<b>85.5%</b>Coverage" in html
    assert "coverage" not in c.request("create_test_run", {"name": "no coverage"})  # omitted when never reported


def test_summary_shapes_and_contradictions(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "s"})["id"]
    run = c.request("update_test_run", {"test_run_id": rid, "summary": {"total_tests": 10, "passed_tests": 8,
                                                                          "failed_tests": 1, "skipped_tests": 1}})
    assert run["counts"]["total"] == 10 and run["counts"]["failed"] == 1
    run = c.request("update_test_run", {"test_run_id": rid, "summary": {"total_tasks": 3,
                                                                          "task_statuses": {"completed": 2, "failed": 1}}})
    assert run["counts"]["passed"] == 2 and run["counts"]["failed"] == 1
    with pytest.raises(RpcError) as e:
        c.request("update_test_run", {"test_run_id": rid, "summary": {"passed": 5, "passed_tests": 6}})
    assert e.value.code == -32602 and e.value.data["path"] == "$.summary.passed_tests"
    with pytest.raises(RpcError) as e:
        c.request("update_test_run", {"test_run_id": rid, "summary": {"total": 2, "passed": 2, "failed": 1}})
    assert e.value.code == -32602 and e.value.data["path"] == "$.summary.total"
    # per-test results, once there are any, decide the counts
    c.request("report_results", {"test_run_id": rid, "results": results(1)})
    assert c.request("get_test_run_status", {"test_run_id": rid})["counts"]["total"] == 1


def test_external_id_is_idempotent_and_ids_unique_under_concurrency(daemon: DaemonProcess) -> None:
    c = daemon.client()
    a = c.request("create_test_run", {"name": "x", "external_id": "build-42"})
    b = c.request("create_test_run", {"name": "x", "external_id": "build-42"})
    assert a["id"] == b["id"]
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        cl = daemon.client()
        for _ in range(10):
            rid = cl.request("create_test_run", {"name": "c"})["id"]
            with lock:
                ids.append(rid)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 40 and len(set(ids)) == 40


def test_concurrent_sessions_report_into_one_run(daemon: DaemonProcess) -> None:
    rid = daemon.client().request("create_test_run", {"name": "shared"})["id"]

    def worker(k: int) -> None:
        cl = daemon.client()
        for j in range(5):
            cl.request("report_results", {"test_run_id": rid, "results": results(20, suite=f"w{k}-{j}")})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert daemon.client().request("get_test_run_status", {"test_run_id": rid})["counts"]["total"] == 400


def test_list_runs_filters_and_pages(daemon: DaemonProcess) -> None:
    c = daemon.client()
    ids = [c.request("create_test_run", {"name": f"r{i}"})["id"] for i in range(7)]
    c.request("complete_test_run", {"test_run_id": ids[0]})
    page = c.request("list_test_runs", {"limit": 3})
    seen = [r["id"] for r in page["runs"]]
    while page.get("next_cursor"):
        page = c.request("list_test_runs", {"limit": 3, "cursor": page["next_cursor"]})
        seen += [r["id"] for r in page["runs"]]
    assert seen == list(reversed(ids))  # newest first, each once
    finished = c.request("list_test_runs", {"status": "finished"})["runs"]
    assert [r["id"] for r in finished] == [ids[0]]
    with pytest.raises(RpcError) as e:
        c.request("list_test_runs", {"cursor": "!!"})
    assert e.value.code == -32602


def test_sessions_ending_never_cancel_runs(daemon: DaemonProcess, env: dict[str, str]) -> None:
    call = lambda *a: subprocess.run(daemon_argv("call", *a, "--socket", str(daemon.path)), env=env,  # noqa: E731
                                     capture_output=True, text=True, timeout=30)
    created = call("create_test_run", '{"name": "from shell"}')
    rid = json.loads(created.stdout)["id"]
    call("report_results", json.dumps({"test_run_id": rid, "results": results(2)}))
    done = json.loads(call("complete_test_run", json.dumps({"test_run_id": rid})).stdout)
    assert done["conclusion"] == "success" and done["counts"]["total"] == 2


def test_kill_9_loses_nothing_acknowledged(short_tmp: Path, env: dict[str, str]) -> None:
    d = DaemonProcess.start(short_tmp / "k.sock", env)
    c = d.client()
    rid = c.request("create_test_run", {"name": "durable", "external_id": "ext-1"})["id"]
    acked = 0
    for i in range(30):
        acked += c.request("report_results", {"test_run_id": rid, "results": results(100, suite=f"b{i}")})["accepted"]
    c.request("add_pr_comment", {"body": "hi", "key": "k", "test_run_id": rid, "wait": True})
    d.proc.kill()
    d.proc.wait()
    c.close()  # the connection died with the daemon; release its socket
    d2 = DaemonProcess.start(short_tmp / "k.sock", env)
    try:
        c2 = d2.client()
        run = c2.request("get_test_run_status", {"test_run_id": rid})
        assert run["counts"]["total"] == acked == 3000 and run["comments"][0]["key"] == "k"
        assert c2.request("create_test_run", {"name": "durable", "external_id": "ext-1"})["id"] == rid
        done = c2.request("complete_test_run", {"test_run_id": rid, "wait": True})
        assert done["counts"]["total"] == 3000 and done["delivery"]["pending"] == 0
        stored = json.loads((Path(done["output_dir"]) / "results.json").read_text())
        assert len(stored["results"]) == 3000
    finally:
        d2.stop()


def test_abandoned_run_is_cancelled_with_a_note(short_tmp: Path, env: dict[str, str]) -> None:
    d = DaemonProcess.start(short_tmp / "a.sock", dict(env, CI_SIDECAR_ABANDON_TIMEOUT_S="1"))
    try:
        c = d.client()
        rid = c.request("create_test_run", {"name": "forgotten"})["id"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            run = c.request("get_test_run_status", {"test_run_id": rid})
            if run["status"] == "finished":
                break
            time.sleep(0.2)
        assert run["conclusion"] == "cancelled" and "abandoned" in run["note"]
    finally:
        d.stop()


def test_initialize_reports_roles(daemon: DaemonProcess) -> None:
    init = daemon.client().initialize_result
    roles = init["capabilities"]["roles"]
    assert roles["ci"]["provider"] == "local" and roles["ci"]["test_run"]["kind"] == "local"
    assert {"create_test_run", "report_results", "complete_test_run"} <= set(init["capabilities"]["methods"])
