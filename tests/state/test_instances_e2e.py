"""Many daemons of one user on one state root, with real processes: each gets an instance of its own when
the main one is taken, a daemon killed with SIGKILL leaves an orphan that exactly one later daemon adopts,
finishes and removes, and ``sidecar/status`` and ``ci-sidecar doctor`` show which is which.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from ci_sidecar_client import Client
from helpers import DaemonProcess, daemon_argv, main_taken


def stdio(env: dict[str, str], log: Path) -> Client:
    with open(log, "ab") as fh:
        return Client.spawn(daemon_argv("serve", "--stdio"), env=env, stderr=fh)


def orphans(env: dict[str, str], log: Path, n: int) -> list[str]:
    """``n`` stdio daemons with an open run and results each, then all killed with SIGKILL at once (one
    killed earlier would be adopted by the next one starting); returns the run ids."""
    clients = [stdio(env, log) for _ in range(n)]
    runs = []
    for i, c in enumerate(clients):
        run = c.request("create_test_run", {"name": f"job {i}"})
        c.request("report_results", {"test_run_id": run["id"], "results": [
            {"name": f"t{k}", "status": "failed" if k == 3 else "passed"} for k in range(50)]})
        runs.append(run["id"])
    for c in clients:
        assert c._process is not None
        c._process.kill()
    for c in clients:
        c.close(timeout=5)
    return runs


def instance_dirs(root: Path) -> list[str]:
    try:
        return sorted(p.name for p in (root / "instances").iterdir())
    except FileNotFoundError:
        return []


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_stdio_daemons_on_one_root_all_start_and_status_shows_them(env: dict[str, str], tmp_path: Path) -> None:
    """Three stdio daemons with default settings run side by side; each sees the others as live instances."""
    root = Path(env["CI_SIDECAR_STATE_DIR"])
    clients = [stdio(env, tmp_path / "d.log") for _ in range(3)]
    try:
        runs = [c.request("create_test_run", {"name": f"job {i}"})["id"] for i, c in enumerate(clients)]
        for c, run_id in zip(clients, runs):
            c.request("report_results", {"test_run_id": run_id, "results": [{"name": "a", "status": "passed"}]})
            assert c.request("get_test_run_status", {"test_run_id": run_id})["counts"]["passed"] == 1
        status = clients[1].request("sidecar/status", {})
        assert status["state_dir"] == str(root)
        assert Path(status["instance_dir"]).parent == root / "instances"
        seen = {i["path"]: i for i in status["instances"]}
        assert set(seen) == {str(root)} | {str(root / "instances" / n) for n in instance_dirs(root)}
        assert len(seen) == 3 and {i["state"] for i in seen.values()} == {"live"}
        pids = {c._process.pid for c in clients if c._process is not None}
        assert {i["pid"] for i in seen.values()} == pids and seen[status["instance_dir"]]["pending"] >= 0
        doctor = subprocess.run(daemon_argv("doctor", "--json"), env=env, capture_output=True, text=True,
                                timeout=60)
        found = json.loads(doctor.stdout)["instances"]
        assert found["root"] == str(root) and sorted(i["state"] for i in found["instances"]) == ["live"] * 3
    finally:
        for c in clients:
            c.close(timeout=10)
    # a clean exit leaves nothing behind but the main instance (the open runs are the adopter's to close)
    assert len(instance_dirs(root)) == 2


def test_state_dir_flag_means_exactly_that_directory(env: dict[str, str], tmp_path: Path) -> None:
    """--state-dir never moves to another directory: a second daemon on it says it is in use and exits 2."""
    exact = tmp_path / "exact"
    first = stdio(env, tmp_path / "d.log")
    first.close(timeout=10)
    c = Client.spawn(daemon_argv("serve", "--stdio", "--state-dir", str(exact)), env=env)
    try:
        assert c.request("sidecar/status", {})["instance_dir"] == str(exact)
        second = subprocess.run(daemon_argv("serve", "--stdio", "--state-dir", str(exact)), env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert f"state directory {exact}/private is in use by another ci-sidecar" in second.stderr
        assert not (exact / "instances").exists()
    finally:
        c.close(timeout=10)


def test_two_daemons_adopt_five_orphans_each_exactly_once(env: dict[str, str], short_tmp: Path,
                                                         tmp_path: Path) -> None:
    """Five daemons killed with SIGKILL mid-run; two daemons started together split the orphans between them:
    every orphan is adopted once, its open run closed as cancelled, its writes delivered, and it is removed."""
    root = Path(env["CI_SIDECAR_STATE_DIR"])
    out = Path(env["CI_SIDECAR_OUTPUT_DIR"])
    with main_taken(root):
        runs = orphans(env, tmp_path / "orphans.log", 5)
        left = instance_dirs(root)
        assert len(left) == 5
        listing = subprocess.run(daemon_argv("doctor", "--json"), env=env, capture_output=True, text=True,
                                 timeout=60)
        states = {i["name"]: i["state"] for i in json.loads(listing.stdout)["instances"]["instances"]}
        assert states == {"main": "live", **{name: "orphaned" for name in left}}

        adopters = [DaemonProcess.start(short_tmp / f"a{i}.sock", env, wait=False) for i in range(2)]
        try:
            for d in adopters:
                d.wait_ready()
            wait_for(lambda: not set(left) & set(instance_dirs(root)), 30, "the orphans to be removed")
            logs = [d.log() for d in adopters]
            status = adopters[0].client().request("sidecar/status", {})
        finally:
            for d in adopters:
                d.stop()
    adopted = Counter(m for log in logs for m in re.findall(r"adopted instance \S+/instances/(\S+) ", log))
    assert adopted == Counter({name: 1 for name in left}), logs
    assert all(i["state"] == "live" for i in status["instances"])  # nothing left to adopt
    for run_id in runs:
        run = _find_run(out, run_id)
        assert run["conclusion"] == "cancelled", run
        assert run["counts"]["passed"] == 49 and run["counts"]["failed"] == 1


def _find_run(out: Path, run_id: str) -> dict:
    for path in out.rglob("run.json"):
        doc = json.loads(path.read_text())
        if doc.get("id") == run_id:
            return doc
    raise AssertionError(f"no run.json for {run_id} under {out}: {sorted(map(str, out.rglob('*')))[:20]}")


def test_an_unusable_state_root_is_named(env: dict[str, str], tmp_path: Path) -> None:
    """A state root that cannot be created: the daemon exits 2 naming it (exec then runs the command alone)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = dict(env, CI_SIDECAR_STATE_DIR=str(blocker / "state"))
    proc = subprocess.run(daemon_argv("serve", "--stdio"), env=bad, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and str(blocker) in proc.stderr, proc.stderr


def test_an_orphan_that_cannot_be_read_is_left_alone_and_the_adopter_keeps_serving(
        env: dict[str, str], tmp_path: Path) -> None:
    """A broken orphan (here: a journal with a segment missing) is not deleted and does not take the adopter
    down."""
    root = Path(env["CI_SIDECAR_STATE_DIR"])
    broken = root / "instances" / "stdio-1-deadbeef"
    (broken / "private").mkdir(parents=True)
    (broken / "private" / "lock").write_text("")
    for seq in (1, 3):  # segment 2 is missing: recovering this would lose what it held
        (broken / "private" / f"journal.{seq:016d}.wal").write_bytes(b"")
    c = stdio(env, tmp_path / "d.log")
    try:
        wait_for(lambda: "; leaving it" in (tmp_path / "d.log").read_text(), 20, "the adoption to fail")
        run = c.request("create_test_run", {"name": "still serving"})
        assert run["status"] == "running"
    finally:
        c.close(timeout=10)
    assert (broken / "private" / f"journal.{3:016d}.wal").exists()
    assert {i.name for i in (root / "instances").iterdir()} == {broken.name}
