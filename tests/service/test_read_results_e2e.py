"""``read_test_results`` end to end: a run's records from a cursor, each once, across a kill -9 of the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_sidecar_client import RpcError
from helpers import DaemonProcess, scrubbed_env


def _results(start: int, n: int, status: str = "passed") -> list[dict]:
    return [{"name": f"test_{i}", "suite": "s", "classname": "C", "status": status} for i in range(start, start + n)]


def _read_all(c, run_id: str, cursor: int, limit: int = 7) -> tuple[list[str], int]:
    names: list[str] = []
    while True:
        page = c.request("read_test_results", {"test_run_id": run_id, "cursor": cursor, "limit": limit})
        names += [r["name"] for r in page["results"]]
        if page["cursor"] == cursor:
            return names, cursor
        cursor = page["cursor"]


def test_pages_by_cursor_and_resends_come_out_once(daemon: DaemonProcess) -> None:
    """Pages continue where the last one ended; a resent test is not read again; finished says the end."""
    c = daemon.client()
    run_id = c.request("create_test_run", {"name": "r"})["id"]
    c.request("report_results", {"test_run_id": run_id, "results": _results(0, 10)})
    names, cursor = _read_all(c, run_id, 0)
    assert [f"test_{i}" for i in range(10)] == names and 10 == cursor
    c.request("report_results", {"test_run_id": run_id, "results": _results(5, 10, "failed")})  # 5..9 resent
    more, cursor = _read_all(c, run_id, cursor)
    assert [f"test_{i}" for i in range(10, 15)] == more
    page = c.request("read_test_results", {"test_run_id": run_id, "cursor": cursor})
    assert (page["results"], page["finished"]) == ([], False)
    c.request("complete_test_run", {"test_run_id": run_id})
    assert c.request("read_test_results", {"test_run_id": run_id, "cursor": cursor})["finished"] is True


def test_a_cursor_survives_kill_9(tmp_path: Path) -> None:
    """A reader that keeps its cursor reads every record exactly once across a kill -9 and restart."""
    env = scrubbed_env(tmp_path)
    daemon = DaemonProcess.start(tmp_path / "d.sock", env)
    try:
        c = daemon.client()
        run_id = c.request("create_test_run", {"name": "r"})["id"]
        c.request("report_results", {"test_run_id": run_id, "results": _results(0, 30)})
        seen, cursor = _read_all(c, run_id, 0)
        daemon.proc.kill()
        daemon.proc.wait()
        daemon.stop()
        daemon = DaemonProcess.start(tmp_path / "d.sock", env)
        c = daemon.client()
        c.request("report_results", {"test_run_id": run_id, "results": _results(30, 20)})
        more, _ = _read_all(c, run_id, cursor)
        assert [f"test_{i}" for i in range(50)] == seen + more
    finally:
        daemon.stop()



def test_a_bogus_cursor_or_limit_is_refused_not_moved(daemon: DaemonProcess) -> None:
    """A cursor past the run's end (another run's), negative or not a number, and a limit out of 1..5000 answer
    -32602 naming the field; a reader is never silently sent back to an earlier position."""
    c = daemon.client()
    run_id = c.request("create_test_run", {"name": "r"})["id"]
    c.request("report_results", {"test_run_id": run_id, "results": _results(0, 10)})
    for params, path in (({"cursor": 11}, "$.cursor"), ({"cursor": -1}, "$.cursor"), ({"cursor": "10"}, "$.cursor"),
                         ({"limit": 0}, "$.limit"), ({"limit": 10**9}, "$.limit")):
        with pytest.raises(RpcError) as refused:
            c.request("read_test_results", {"test_run_id": run_id, **params})
        assert (refused.value.code, refused.value.data["path"]) == (-32602, path), params
    assert c.request("read_test_results", {"test_run_id": run_id, "cursor": 10})["cursor"] == 10
