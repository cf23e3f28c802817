"""The run history through the real daemon: a PR run's report lists exactly its new failures against main,
``get_test_run_status`` carries the delta, and ``ci-sidecar history`` prints a test's recent outcomes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from helpers import DaemonProcess, daemon_argv


def _run(c: Any, name: str, branch: str, outcomes: dict[str, str], pr: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "branch": branch}
    if pr is not None:
        params["pr_number"] = pr
    run = c.request("create_test_run", params)
    c.request("report_results", {"test_run_id": run["id"], "results": [
        {"name": n, "classname": "pkg.mod", "status": s, "duration": 0.25} for n, s in outcomes.items()]})
    return c.request("complete_test_run", {"test_run_id": run["id"], "wait": True})


def test_pr_report_lists_exactly_the_new_failures_against_main(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """main fails test_old; the PR breaks test_b and test_c and adds a failing test_new: those three, no more."""
    c = daemon.client()
    main = _run(c, "unit", "main", {"test_a": "passed", "test_b": "passed", "test_c": "passed",
                                    "test_old": "failed", "test_gone": "passed"})
    pr_client = daemon.client(config={"context": {"target_branch": "main"}})
    _run(pr_client, "unit", "feature", {"test_a": "passed"}, pr=12)  # the PR branch's own earlier run
    pr = _run(pr_client, "unit", "feature", {"test_a": "passed", "test_b": "failed", "test_c": "error",
                                             "test_old": "passed", "test_new": "failed"}, pr=12)
    delta = c.request("get_test_run_status", {"test_run_id": pr["id"]})["delta"]
    assert "target_branch" == delta["base_kind"] and main["id"] == delta["base"]["test_run_id"]
    assert ["pkg.mod.test_b", "pkg.mod.test_c", "pkg.mod.test_new"] == delta["new_failures"]
    assert ["pkg.mod.test_old"] == delta["fixed"] and ["pkg.mod.test_gone"] == delta["removed_tests"]
    md = (Path(pr["output_dir"]) / "report.md").read_text()
    section = md.split("### Compared with ", 1)[1]
    assert section.startswith("main") and r"\(target branch, run" in section.splitlines()[0]
    listed = section.split("**New failures (3)**", 1)[1].split("\n\n**", 1)[0]
    names = [line.split(" ", 2)[2] for line in listed.strip().splitlines()]
    assert [r"pkg.mod.test\_b", r"pkg.mod.test\_c", r"pkg.mod.test\_new"] == names
    html = (Path(pr["output_dir"]) / "report.html").read_text()
    assert '<section id="delta"><h2>Compared with main' in html
    report = json.loads((Path(pr["output_dir"]) / "report.json").read_text())
    assert delta == report["run"]["delta"]

    out = subprocess.run(daemon_argv("history", "pkg.mod.test_b", "--json", "--state-dir", env["CI_SIDECAR_STATE_DIR"]),
                         env=env, capture_output=True, text=True, timeout=60)
    assert 0 == out.returncode, out.stderr
    found = json.loads(out.stdout)
    assert ["pkg.mod.test_b"] == found["tests"]
    assert [("feature", "failed"), ("main", "passed")] == [(r["branch"], r["status"]) for r in found["runs"]]
