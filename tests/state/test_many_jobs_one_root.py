"""A build agent running many jobs at once under one user and one state root, with default settings and real
processes: 8 ``exec`` jobs, 4 stdio-spawned daemons and a socket daemon, each job reporting 2,000 results.

Every job starts and every count and report is exact. Three of the jobs publish to a pull request on GitHub
while GitHub is down (429, Retry-After 10 minutes) and their daemons are killed with SIGKILL before anything
got through. A new daemon, started by a later job on the same agent, adopts the three instances it finds and
delivers what they held through 30% injected faults: the pull request then shows exactly what a fault-free
run of the same three jobs shows, and nothing of the dead daemons is left on disk.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar_client import Client
from fakes.github_scenario import World
from fakes.scenario import TIME_SCALE, job_environment
from fakes.spec import OpenApiSpec, require_spec
from helpers import DaemonProcess, daemon_argv, scrubbed_env

RESULTS = 2000
FAILED = 5  # per job, with file and line (annotations on GitHub)
SKIPPED = 7
EXEC_JOBS, STDIO_JOBS = 8, 4


@pytest.fixture
def gh_spec() -> OpenApiSpec:
    return require_spec("github/api.github.com.ci-subset.json")


def results(job: str) -> list[dict[str, Any]]:
    out = []
    for i in range(RESULTS):
        status = "failed" if i < FAILED else "skipped" if i < FAILED + SKIPPED else "passed"
        r: dict[str, Any] = {"name": f"test_{i:04d}", "suite": job, "classname": f"{job}.Case",
                             "file": f"tests/{job}.py", "line": 10 + i, "status": status}
        if status == "failed":
            r["message"] = f"{job}: assert {i} == {i + 1}"
        out.append(r)
    return out


JUNIT_WRITER = textwrap.dedent("""\
    import os, sys
    from xml.sax.saxutils import quoteattr
    job, n, failed, skipped = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(os.environ.get("SOCKET_FILE", os.devnull), "w") as fh:
        fh.write(os.environ["CI_SIDECAR_SOCKET"] + "\\n" + os.environ["CI_SIDECAR_RUN_ID"])
    cases = []
    for i in range(n):
        attrs = f'classname="{job}.Case" name="test_{i:04d}" file="tests/{job}.py" line="{10 + i}"'
        if i < failed:
            msg = quoteattr(f"{job}: assert {i} == {i + 1}")
            cases.append(f'<testcase {attrs}><failure message={msg}>trace</failure></testcase>')
        elif i < failed + skipped:
            cases.append(f'<testcase {attrs}><skipped/></testcase>')
        else:
            cases.append(f'<testcase {attrs}/>')
    with open("junit.xml", "w") as fh:
        fh.write(f'<testsuite name="{job}">' + "".join(cases) + "</testsuite>")
    sys.exit(1)
    """)


def start_exec(job: str, cwd: Path, env: dict[str, str], *, wait_s: float = 60) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "write_junit.py").write_text(JUNIT_WRITER)
    return subprocess.Popen(
        daemon_argv("exec", "--name", job, "--junit", "junit.xml", "--wait-s", str(wait_s), "--",
                    sys.executable, "write_junit.py", job, str(RESULTS), str(FAILED), str(SKIPPED)),
        cwd=cwd, env=dict(env, SOCKET_FILE=str(cwd / "socket")), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def client_job(c: Client, job: str, *, extras: bool = False) -> dict[str, Any]:
    """What a test runner does: a run, 2,000 results in batches, (on a PR) a comment and a status, the end."""
    run_id = c.request("create_test_run", {"name": job})["id"]
    batch = results(job)
    for i in range(0, RESULTS, 500):
        c.request("report_results", {"test_run_id": run_id, "results": batch[i:i + 500]})
    if extras:
        c.request("add_pr_comment", {"body": f"### {job}\n\ncoverage 81%", "key": job, "test_run_id": run_id})
        c.request("set_build_status", {"state": "failure", "context": f"ci/{job}", "description": f"{job} failed"})
    return c.request("complete_test_run", {"test_run_id": run_id})


def counts_ok(counts: dict[str, int]) -> bool:
    return counts == {"total": RESULTS, "passed": RESULTS - FAILED - SKIPPED, "failed": FAILED, "errors": 0,
                      "skipped": SKIPPED, "flaky": 0}


def exec_summary_ok(job: str, proc: subprocess.Popen, out: str, err: str) -> Path:
    assert proc.returncode == 1, err  # the command's status
    assert f"run '{job}': failure: {RESULTS - FAILED - SKIPPED} passed, {FAILED} failed, {SKIPPED} skipped" in err, err
    report = Path(re.search(r"ci-sidecar: report: (\S+)", err)[1])  # type: ignore[index]
    assert report.is_file(), err
    return report


def normalised(world: World) -> tuple[Any, ...]:
    """What a person sees on the PR, independent of the order things were created in."""
    v = world.view()
    return (sorted(v.check_runs), v.annotations, sorted(v.comments), v.statuses)


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Victims:
    """The three PR jobs: two test runners with stdio daemons and one ``exec`` job."""

    NAMES = ("pr-stdio-1", "pr-stdio-2", "pr-exec")

    def __init__(self, world: World, base: Path, env: dict[str, str]) -> None:
        self.job_env = dict(env, **{k: v for k, v in world.job_env(base / "pr").items()
                                    if k != "CI_SIDECAR_OUTPUT_DIR"})
        self.base = base
        self.clients: list[Client] = []

    def start(self, log: Path) -> subprocess.Popen:
        with job_environment(self.job_env), open(log, "ab") as fh:
            for _ in range(2):
                self.clients.append(Client.spawn(daemon_argv("serve", "--stdio"), env=self.job_env, stderr=fh))
        return start_exec("pr-exec", self.base / "pr-exec", self.job_env, wait_s=300)

    def run_clients(self) -> list[dict[str, Any]]:
        return [client_job(c, name, extras=True) for c, name in zip(self.clients, self.NAMES)]


def test_many_jobs_share_a_root_and_a_new_daemon_adopts_the_killed_ones(gh_spec: OpenApiSpec, tmp_path: Path,
                                                                        short_tmp: Path) -> None:
    """13 daemons on one root all work; three killed with SIGKILL are adopted by one new daemon, which
    delivers their writes through 30% faults so the PR equals a fault-free run, and removes them."""
    env = scrubbed_env(tmp_path)
    root = Path(env["CI_SIDECAR_STATE_DIR"])
    log = tmp_path / "daemons.log"
    socket_daemon = DaemonProcess.start(short_tmp / "svc.sock", env)  # first: it keeps the main instance
    world = World(gh_spec, fault_rate=0.0, seed=3)
    with world:
        # GitHub is down while the PR jobs run: every request answers 429 with Retry-After: 10 minutes
        world.rest.inject("429", times=10**6, retry_after=600)
        victims = Victims(world, tmp_path / "victims", env)
        try:
            pr_exec = victims.start(log)
            execs = {f"exec-{i}": start_exec(f"exec-{i}", tmp_path / f"exec-{i}", env) for i in range(EXEC_JOBS - 1)}
            with open(log, "ab") as fh:
                stdio = [Client.spawn(daemon_argv("serve", "--stdio"), env=env, stderr=fh)
                         for _ in range(STDIO_JOBS - 2)]
            svc = socket_daemon.client()
            done: dict[str, dict[str, Any]] = {}
            errors: list[BaseException] = []

            def job(c: Client, name: str) -> None:
                try:
                    done[name] = client_job(c, name)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=job, args=(c, f"stdio-{i}")) for i, c in enumerate(stdio)]
            threads.append(threading.Thread(target=job, args=(svc, "socket")))
            for t in threads:
                t.start()
            victim_runs = victims.run_clients()
            for t in threads:
                t.join(120)
            assert not errors, errors

            # every job started and counted exactly; every report was written
            for name, proc in execs.items():
                out, err = proc.communicate(timeout=120)
                exec_summary_ok(name, proc, out, err)
            for name, run in [*done.items(), *zip(Victims.NAMES, victim_runs)]:
                assert counts_ok(run["counts"]), (name, run["counts"])
            for name, run in done.items():
                c = svc if name == "socket" else stdio[int(name.split("-")[1])]
                view = c.request("get_test_run_status", {"test_run_id": run["id"]})
                wait_until(lambda: (Path(run["output_dir"]) / "report.html").is_file(), 30, f"{name}'s report")
                assert counts_ok(view["counts"])

            # the PR jobs: their runs are complete, nothing reached GitHub; kill -9 their daemons
            sock, run_id = (victims.base / "pr-exec" / "socket").read_text().split("\n")
            with Client.connect(sock) as c:
                wait_until(lambda: c.request("get_test_run_status", {"test_run_id": run_id})["status"] == "finished",
                           60, "the exec job's run to complete")
                pids = [c.request("sidecar/status", {})["pid"]]
                status = c.request("sidecar/status", {})
            pids += [c._process.pid for c in victims.clients if c._process is not None]
            assert world.rest.check_runs() == [] and world.rest.comments(42) == []
            live = {i["path"] for i in status["instances"] if i["state"] == "live"}
            assert len(live) >= 4  # at least the socket daemon's and the three PR jobs' own
            assert str(root) in live  # the main instance: the socket daemon's, started first
            svc.close(timeout=10)
            socket_daemon.stop()  # its job is done (a live one would adopt too, on its 30 s scan)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for c in victims.clients:
                c.close(timeout=2)
            out, err = pr_exec.communicate(timeout=60)
            assert pr_exec.returncode == 1 and "lost the ci-sidecar daemon" in err, err
            for c in stdio:
                c.close(timeout=30)
            orphans = {p for p in (root / "instances").iterdir()}
            assert len(orphans) == 3, sorted(orphans)  # the clean exits removed their own instances

            # GitHub is back, with 30% of requests failing; a later job on this agent starts a daemon
            with world.rest.lock:
                world.rest.faults.clear()
            world.set_faults(0.3)
            before = len(world.rest_calls())
            started = time.monotonic()
            # the adopter delivers at the scenario harness's pace (TIME_SCALE): the same writes, less waiting
            adopter_env = {**victims.job_env, "CI_SIDECAR_DELIVERY_TIME_SCALE": str(TIME_SCALE)}
            with job_environment(victims.job_env), open(log, "ab") as fh:
                adopter = Client.spawn(daemon_argv("serve", "--stdio"), env=adopter_env, stderr=fh)
            try:
                wait_until(lambda: not any(p.exists() for p in orphans), 120, "the orphans to be delivered")
                adopted_in = time.monotonic() - started
                status = adopter.request("sidecar/status", {})
            finally:
                adopter.close(timeout=30)
            print(f"three orphans adopted and delivered in {adopted_in:.1f} s under 30% faults")
            assert not world.violations()
            calls = world.rest_calls()[before:]
            faulty = [r for r in calls if r.status in (-1, 403, 429, 502, 503)]
            assert len(faulty) >= 0.15 * len(calls) and len(faulty) >= 3, [(r.method, r.path, r.status) for r in calls]
            pr_after_adoption = normalised(world)
        finally:
            socket_daemon.stop()
            for c in victims.clients:
                c.close(timeout=2)
    # nothing of the dead daemons is left: the root holds the main instance (the adopter's), the shared run
    # history, and nothing else
    assert sorted(os.listdir(root)) in (["history.sqlite3", "private"], ["history.sqlite3", "instances", "private"])
    assert list((root / "instances").iterdir()) == []
    assert [(i["name"], i["state"]) for i in status["instances"]] == [("main", "live")]

    # the same three PR jobs, fault-free and without kills, in their own world
    clean = World(gh_spec, fault_rate=0.0, seed=3)
    (tmp_path / "clean").mkdir()
    clean_env = scrubbed_env(tmp_path / "clean", CI_SIDECAR_DELIVERY_TIME_SCALE=str(TIME_SCALE))
    with clean:
        again = Victims(clean, tmp_path / "clean-victims", clean_env)
        pr_exec = again.start(tmp_path / "clean.log")
        again.run_clients()
        out, err = pr_exec.communicate(timeout=120)
        assert "not delivered" not in err, err
        for c in again.clients:
            summary = c.close(timeout=60)
            assert summary is not None and summary["pending"] == 0, summary
        assert normalised(clean) == pr_after_adoption
        view = clean.view()
        assert len(view.check_runs) == 3 and len(view.annotations) == 3 * FAILED and len(view.comments) == 2
        assert [s[:2] for s in view.statuses] == [("ci/pr-stdio-1", "failure"), ("ci/pr-stdio-2", "failure")]
        assert {c[3] for c in view.check_runs} == {"failure"} and {c[2] for c in view.check_runs} == {"completed"}
