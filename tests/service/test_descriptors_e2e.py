"""Open file descriptors: retained runs hold none, the daemon raises its soft limit, and recovery of
more retained runs than the limit allows works."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from helpers import DaemonProcess


def _limit(soft: int, hard: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def _soft_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-files line")


class TestDescriptors:
    def test_soft_limit_is_raised_to_the_hard_limit(self, short_tmp: Path, env: dict[str, str]) -> None:
        """A daemon started with a soft limit of 64 and a hard limit of 4096 serves with 4096."""
        d = DaemonProcess.start(short_tmp / "d.sock", env, preexec_fn=_limit(64, 4096))
        try:
            assert 4096 == _soft_limit(d.proc.pid)
        finally:
            d.stop()

    def test_retained_runs_hold_no_descriptors_and_recover_past_the_limit(self, short_tmp: Path,
                                                                          env: dict[str, str]) -> None:
        """Under a hard limit of 96 descriptors, 150 finished runs all succeed with flat descriptors,
        and a restart recovers all 150 runs and keeps serving."""
        d = DaemonProcess.start(short_tmp / "d.sock", env, preexec_fn=_limit(96, 96))
        try:
            c = d.client()
            start = d.open_fds()
            for i in range(150):
                run = c.request("create_test_run", {"name": f"r{i}"})["id"]
                c.request("report_results", {"test_run_id": run, "results": [
                    {"name": f"t{j}", "status": "passed"} for j in range(20)]})
                assert "finished" == c.request("complete_test_run", {"test_run_id": run})["status"]
            # deliveries of the last runs may still have a file open: wait until none is left to deliver,
            # then for the descriptors to be closed (generous deadlines: a loaded machine is slow, not leaky)
            deadline = time.monotonic() + 60
            while c.request("sidecar/status")["outbox"]["pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert 0 == c.request("sidecar/status")["outbox"]["pending"]
            while d.open_fds() - start > 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert d.open_fds() - start <= 2  # the journal segment and the client's connection
        finally:
            assert 0 == d.stop()
        d = DaemonProcess.start(short_tmp / "d.sock", env, preexec_fn=_limit(96, 96))
        try:
            c = d.client()
            runs = c.request("list_test_runs", {"limit": 500})["runs"]
            assert 150 == len(runs)
            assert {20} == {r["counts"]["passed"] for r in runs}
            run = c.request("create_test_run", {"name": "after restart"})["id"]
            report = c.request("render_report", {"test_run_id": runs[-1]["id"], "format": "json"})
            assert report["bytes"] > 0
            assert "finished" == c.request("complete_test_run", {"test_run_id": run})["status"]
        finally:
            assert 0 == d.stop()
