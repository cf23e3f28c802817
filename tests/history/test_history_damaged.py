"""A damaged run history: runs still complete (without a comparison, the log says why), and ``ci-sidecar history``
says it cannot read the file instead of a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import DaemonProcess, daemon_argv


def test_a_damaged_history_costs_the_comparison_not_the_run(short_tmp: Path, env: dict[str, str]) -> None:
    """history.sqlite3 full of garbage: complete_test_run concludes with no delta and a log line naming the file;
    the history command exits 2 naming the file and the reason."""
    state = Path(env["CI_SIDECAR_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    (state / "history.sqlite3").write_bytes(b"this is not a database " * 500)
    d = DaemonProcess.start(short_tmp / "d.sock", env)
    try:
        c = d.client()
        run = c.request("create_test_run", {"name": "unit", "branch": "main"})
        c.request("report_results", {"test_run_id": run["id"], "results": [
            {"name": "t'); DROP TABLE runs;--", "status": "failed"}]})
        done = c.request("complete_test_run", {"test_run_id": run["id"]})
        assert (done["status"], done["conclusion"], done.get("delta")) == ("finished", "failure", None)
    finally:
        d.stop()
    assert f"could not record run {run['id']} in the history at {state / 'history.sqlite3'}" in d.log()
    out = subprocess.run(daemon_argv("history", "t'", "--state-dir", str(state)), env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"cannot read the run history at {state / 'history.sqlite3'}: file is not a database" in out.stderr
    assert "Traceback" not in out.stderr
