"""The written reports list flaky tests and the run's uploaded artifacts (linked where a URL is known)."""

from __future__ import annotations

import base64
from pathlib import Path

from helpers import DaemonProcess


def test_reports_list_flaky_tests_and_artifacts(daemon: DaemonProcess) -> None:
    """A test that failed then passed gets a flaky section; an uploaded log is listed with its link."""
    c = daemon.client()
    run = c.request("create_test_run", {"name": "sections"})
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": "test_wobbly", "classname": "m", "status": "failed", "attempt": 1, "message": "timeout"},
        {"name": "test_wobbly", "classname": "m", "status": "passed", "attempt": 2},
        {"name": "test_solid", "classname": "m", "status": "passed"},
    ]})
    art = c.request("upload_artifact", {"test_run_id": run["id"], "name": "server.log",
                                        "content_base64": base64.b64encode(b"booted\n").decode()})
    done = c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
    out = Path(done["output_dir"])
    md = (out / "report.md").read_text()
    assert "### Flaky tests (1)" in md and r"m.test\_wobbly" in md.split("### Flaky tests (1)")[1]
    assert "### Artifacts (1)" in md and "server.log (7 B)" in md
    html = (out / "report.html").read_text()
    assert '<section id="flaky">' in html and "test_wobbly" in html
    assert '<section id="artifacts">' in html
    if art.get("url"):
        assert f'<a href="{art["url"]}">server.log</a>' in html
