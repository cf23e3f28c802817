"""A run history another process holds locked: runs complete without waiting on it more than once, say why in the
log, and are recorded again once the history is free."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import DaemonProcess, wait_for


def test_a_locked_history_is_waited_for_once_not_per_run(short_tmp: Path, env: dict[str, str]) -> None:
    """With another connection holding history.sqlite3 in an exclusive transaction, three runs completing together
    all conclude (no comparison) within one lock wait plus a little, not one wait each; released, the next run is
    recorded and compared again."""
    d = DaemonProcess.start(short_tmp / "d.sock", {**env, "CI_SIDECAR_HISTORY_LOCK_WAIT_S": "3"})
    history = Path(env["CI_SIDECAR_STATE_DIR"]) / "history.sqlite3"
    holder = None
    try:
        c = d.client()
        wait_for(history.exists, what="the daemon to create its history")
        holder = sqlite3.connect(history, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        runs = [c.request("create_test_run", {"name": f"unit-{i}", "branch": "main"})["id"] for i in range(3)]
        pending = [c.send_request("complete_test_run", {"test_run_id": r}) for r in runs]
        # one wait of 3 s and two short ones; before, each waited the whole busy timeout in turn
        done = [f.result(20) for f in pending]
        assert [(r["status"], r.get("delta")) for r in done] == [("finished", None)] * 3
        assert d.log().count("another process holds it locked") == 3
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        again = c.request("create_test_run", {"name": "unit-0", "branch": "main"})["id"]
        recorded = c.request("complete_test_run", {"test_run_id": again}, timeout=20)
        assert recorded["delta"]["base_kind"] == "none"  # recorded and compared (unit-0 was never recorded)
        with sqlite3.connect(f"file:{history}?mode=ro", uri=True) as db:
            assert db.execute("SELECT run_id FROM runs").fetchall() == [(again,)]
    finally:
        if holder is not None:
            holder.close()
        d.stop()
