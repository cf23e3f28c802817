"""ingest_junit, render_report and render_badge through the real daemon."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

from ci_sidecar_client import RpcError
from helpers import DaemonProcess

FIXTURES = Path(__file__).parents[1] / "reports" / "fixtures"


def test_ingest_glob_skips_known_files_and_reports_broken_ones(daemon: DaemonProcess, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("pytest.xml", "surefire.xml", "jest-junit.xml"):
        shutil.copy(FIXTURES / name, work / name)
    (work / "broken.xml").write_text('<testsuite name="b"><testcase name="ok" time="0.1"/><testcase name="cut"')
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "ingest"})["id"]
    seen: list[dict] = []
    c.on_notification(lambda m, p: seen.append(p) if m == "$/progress" else None)
    first = c.request("ingest_junit", {"test_run_id": rid, "path": str(work / "*.xml"), "workDoneToken": "ing"})
    assert first["files"] == 4 and first["skipped_files"] == 0 and first["accepted"] > 0
    (err,) = first["errors"]
    assert err["file"].endswith("broken.xml") and err.get("line") == 1 and err["message"]
    assert [p["value"]["kind"] for p in seen][0] == "begin" and seen[-1]["value"]["kind"] == "end"
    counts = c.request("get_test_run_status", {"test_run_id": rid})["counts"]
    assert 0 < counts["total"] <= first["accepted"]  # results count attempts; totals count tests
    again = c.request("ingest_junit", {"test_run_id": rid, "path": str(work / "*.xml")})
    assert again == {"accepted": 0, "files": 0, "skipped_files": 4, "errors": []}
    assert c.request("get_test_run_status", {"test_run_id": rid})["counts"] == counts  # nothing counted twice


def test_ingest_refuses_paths_outside_the_roots(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "paths"})["id"]
    for path in ("/etc/passwd", "../../../../etc/hostname"):
        with pytest.raises(RpcError) as e:
            c.request("ingest_junit", {"test_run_id": rid, "path": path})
        assert e.value.code == -31005 and e.value.data["path"] == path and e.value.data["reason"]
    with pytest.raises(RpcError) as e:
        c.request("ingest_junit", {"test_run_id": rid, "path": "/tmp/definitely-missing-cis.xml"})
    assert e.value.code == -31005 and "no such file" in e.value.data["reason"]
    assert e.value.message == "File not found: /tmp/definitely-missing-cis.xml"  # not "Path not allowed"
    with pytest.raises(RpcError) as e:
        c.request("ingest_junit", {"test_run_id": rid, "path": "missing-here.xml"})
    assert e.value.message.startswith("File not found: missing-here.xml (looked for /")


def test_render_report_formats_and_budget(daemon: DaemonProcess) -> None:
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "render"})["id"]
    results = [{"name": f"t{i}", "suite": "s", "status": "passed", "duration": 0.01} for i in range(300)]
    results.append({"name": "bad <b>", "suite": "s", "status": "failed", "message": "x" * 5000, "details": "tb\n" * 400})
    c.request("report_results", {"test_run_id": rid, "results": results})
    md = c.request("render_report", {"test_run_id": rid, "format": "markdown", "max_bytes": 4000})
    assert md["bytes"] <= 4000 and md["truncated"] is True
    text = Path(md["path"]).read_text()
    assert "bad" in text and len(text.encode()) == md["bytes"]
    junit = c.request("render_report", {"test_run_id": rid, "format": "junit"})
    root = ElementTree.parse(junit["path"]).getroot()
    assert len(root.findall(".//testcase")) == 301 and len(root.findall(".//failure")) == 1
    html = c.request("render_report", {"test_run_id": rid, "format": "html"})
    page = Path(html["path"]).read_text()
    assert "bad &lt;b&gt;" in page and "bad <b>" not in page
    with pytest.raises(RpcError) as e:
        c.request("render_report", {"test_run_id": rid, "format": "pdf"})
    assert e.value.code == -32602 and e.value.data["path"] == "$.format"


def test_render_badge_for_a_run_and_a_status(daemon: DaemonProcess) -> None:
    """A run's badge says running, then its final count; the badge written at completion keeps the caller's look."""
    c = daemon.client()
    rid = c.request("create_test_run", {"name": "badge"})["id"]
    c.request("report_results", {"test_run_id": rid, "results": [{"name": "a", "status": "failed"},
                                                                  {"name": "b", "status": "passed"}]})
    look = {"test_run_id": rid, "label": "unit", "style": "flat-square"}
    running = c.request("render_badge", look)
    assert "running" in running["svg"]
    c.request("complete_test_run", {"test_run_id": rid, "wait": True})  # the reports (and badge) are written
    written = Path(running["path"]).read_text()
    badge = c.request("render_badge", look)
    assert written == badge["svg"], "the completion's badge replaced the caller's label and style"
    assert badge["svg"].startswith("<svg") and 'role="img"' in badge["svg"] and "1 failed" in badge["svg"]
    assert Path(badge["path"]).read_text() == badge["svg"]
    assert (Path(badge["path"]).parent / "badge.json").exists()
    plain = c.request("render_badge", {"label": "build", "status": "passing"})
    assert plain.get("path") is None and "passing" in plain["svg"]


def test_ingest_of_a_fifo_is_refused_without_blocking_the_run_or_the_stop(short_tmp: Path, env: dict) -> None:
    """A FIFO named to ingest_junit is -31005 at once; the run goes on and SIGTERM still stops the daemon."""
    import os
    import subprocess

    fifo = short_tmp / "results.xml"
    os.mkfifo(fifo)
    d = DaemonProcess.start(short_tmp / "d.sock", env)
    try:
        c = d.client()
        rid = c.request("create_test_run", {"name": "fifo"})["id"]
        with pytest.raises(RpcError) as e:
            c.request("ingest_junit", {"test_run_id": rid, "path": str(fifo)}, timeout=5)
        assert (-31005, "not a regular file") == (e.value.code, e.value.data["reason"])
        got = c.request("report_results", {"test_run_id": rid, "results": [{"name": "t", "status": "passed"}]},
                        timeout=5)
        assert 1 == got["total"]
    finally:
        d.proc.terminate()
        try:
            assert 0 == d.proc.wait(10)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            raise
        d.stop()
