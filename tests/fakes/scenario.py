"""The provider-neutral scenario harness: one CI job end to end through a real daemon and the Python client,
against a provider's loopback fakes, with faults and a kill -9, compared with a fault-free run.

The plan is what a test runner of a 10,000-test suite does: results in batches of 100 with file and line, two
updates of one sticky comment, 20 small artifacts, two build-status contexts each set twice, then
``complete_test_run``; nothing waits for delivery until the end, when the outbox must be empty.

A provider plugs in with a :class:`ScenarioWorld` — its fakes, started and stopped together — which says
how to configure the job for them (:meth:`~ScenarioWorld.job_env`) and how to read the state a person would
see on the fakes (:meth:`~ScenarioWorld.view`, anything with ``==``; a ``differences(other)`` method makes
failures readable). Its test file then needs a few lines::

    def make_world(rate: float, seed: int) -> MyWorld: ...

    def test_faults_change_nothing(scenario_dirs):
        assert_faults_change_nothing(make_world, scenario_dirs, seed=8)

    def test_kill_9_changes_nothing(scenario_dirs):
        assert_kill_9_changes_nothing(make_world, scenario_dirs, seed=12)

``tests/fakes/github_scenario.py`` is the GitHub world; ``bench/bench_github.py`` runs the same job.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ci_sidecar_client import Client
from helpers import CI_NAMES, CI_PREFIXES, DaemonProcess, scrubbed_env

from ._server import Recorded

__all__ = ["Plan", "JobResult", "ScenarioWorld", "run_scenario", "scenario", "assert_faults_change_nothing",
           "assert_kill_9_changes_nothing", "job_environment", "connect", "wait_delivered", "clean_job", "RUN_NAME",
           "COMMENT_KEY", "TIME_SCALE"]

RUN_NAME = "unit tests"
COMMENT_KEY = "coverage"


@dataclass(frozen=True)
class Plan:
    """What the job does (sizes are parameters so a quick check can run a smaller one)."""

    results: int = 10_000
    failures: int = 300
    batch: int = 100
    artifacts: int = 20
    comments: tuple[str, ...] = (
        "### Coverage\n\n| file | lines |\n|---|---|\n| pkg/mod.py | 80.1% |\n\nTotal: **80.1%**",
        "### Coverage\n\n| file | lines |\n|---|---|\n| pkg/mod.py | 85.5% |\n\nTotal: **85.5%** (+5.4%)",
    )

    def failing(self) -> set[int]:
        """Indexes of the failing tests, spread over the whole run."""
        return {k * self.results // self.failures for k in range(self.failures)}

    def result(self, i: int, failing: set[int]) -> dict[str, Any]:
        module = i // 500
        out: dict[str, Any] = {
            "name": f"test_case_{i:05d}", "suite": f"pkg.mod{module}", "classname": f"pkg.mod{module}.Case",
            "file": f"tests/test_mod{module}.py", "line": 10 + i % 500, "duration": (i % 7) / 1000,
            "status": "failed" if i in failing else "passed",
        }
        if i in failing:
            out["message"] = f"assert {i} == {i + 1}"
            out["details"] = f"Traceback (most recent call last):\n  File \"tests/test_mod{module}.py\", line " \
                             f"{10 + i % 500}\nAssertionError: assert {i} == {i + 1}"
        return out

    def batches(self) -> list[list[dict[str, Any]]]:
        failing = self.failing()
        results = [self.result(i, failing) for i in range(self.results)]
        return [results[i:i + self.batch] for i in range(0, len(results), self.batch)]

    def artifact(self, i: int) -> tuple[str, bytes]:
        lines = "".join(f"[shard {i}] line {n}: ok\n" for n in range(5 + 3 * i))
        return f"logs/shard-{i:02d}.log", lines.encode()


class ScenarioWorld(Protocol):
    """A provider's fakes for one job (a context manager that starts and stops them)."""

    #: the share of requests the fakes fail at random
    fault_rate: float

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """The job's variables pointing the daemon at the fakes (``tokens=False``: the same job, no secret)."""

    def view(self) -> Any:
        """What a person sees on the fakes' remote side (compared with ``==`` across runs)."""

    def calls(self) -> list[Recorded]:
        """Every request the fakes saw."""

    def violations(self) -> list[str]:
        """Requests that broke the vendor's spec."""

    def remote_started(self) -> bool:
        """Something of the job is on the remote side already (when the harness may kill the daemon)."""

    def wait_idle(self) -> None:
        """Return once the fakes have answered everything that reached them (after a kill -9)."""

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        """Assert the tiers ``initialize`` reported for the job (``capabilities.roles``)."""

    def secrets(self) -> list[str]:
        """Credentials that must never show in a log line."""

    # optional: ``daemon_env(env) -> env``, the daemon's environment with settings of its own (an
    # ``[artifact_store]`` the job's artifacts go to)
    # optional: ``hold_for_kill()``, called before a job that is killed: the world picks the moment itself (a write
    # the fake made and whose answer it holds back; ``remote_started`` then says so), and the first daemon too
    # delivers at the fast pace


@contextmanager
def job_environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment as the job's while a client connects (the client sends it at initialize)."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith(CI_PREFIXES) or n in CI_NAMES]:
            del os.environ[name]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def connect(daemon: DaemonProcess, env: dict[str, str]) -> Client:
    with job_environment(env):
        return daemon.client()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def first_half(c: Client, plan: Plan) -> str:
    """Statuses go pending, the run starts, half the results, the first comment, half the artifacts."""
    c.request("set_build_status", {"state": "pending", "context": "lint", "description": "linting"})
    c.request("set_build_status", {"state": "pending", "context": "coverage", "description": "measuring"})
    run_id = c.request("create_test_run", {"name": RUN_NAME})["id"]
    batches = plan.batches()
    for batch in batches[: len(batches) // 2]:
        c.request("report_results", {"test_run_id": run_id, "results": batch})
    c.request("add_pr_comment", {"body": plan.comments[0], "key": COMMENT_KEY, "test_run_id": run_id})
    for i in range(plan.artifacts // 2):
        name, data = plan.artifact(i)
        c.request("upload_artifact", {"test_run_id": run_id, "name": name, "content_base64": _b64(data)})
    c.request("set_build_status", {"state": "success", "context": "lint", "description": "no findings"})
    return run_id


def second_half(c: Client, plan: Plan, run_id: str) -> None:
    """The rest of the results, the comment's update, the other artifacts, the end of the run."""
    batches = plan.batches()
    for batch in batches[len(batches) // 2:]:
        c.request("report_results", {"test_run_id": run_id, "results": batch})
    for i in range(plan.artifacts // 2, plan.artifacts):
        name, data = plan.artifact(i)
        c.request("upload_artifact", {"test_run_id": run_id, "name": name, "content_base64": _b64(data)})
    c.request("add_pr_comment", {"body": plan.comments[-1], "key": COMMENT_KEY, "test_run_id": run_id})
    c.request("complete_test_run", {"test_run_id": run_id})
    c.request("set_build_status", {"state": "failure", "context": "coverage", "description": "85.5% < 90%"})


def wait_delivered(c: Client, timeout: float) -> dict[str, Any]:
    """Poll ``sidecar/status`` until nothing is pending; fails fast when a write failed for good."""
    deadline = time.monotonic() + timeout
    while True:
        status = c.request("sidecar/status", {})
        outbox = status["outbox"]
        if outbox["failed"]:
            raise AssertionError(f"a write failed for good: {status}")
        if outbox["pending"] == 0:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"still pending after {timeout} s: {status}")
        time.sleep(0.05)


@dataclass
class JobResult:
    """One scenario: what the remote side shows, how long it took, and what the client saw of the run."""

    view: Any
    seconds: float
    run: dict[str, Any]
    logs: list[str] = field(default_factory=list)
    #: outbox depth in a daemon restarted after kill -9, before any session brought a token
    pending_after_restart: int | None = None
    #: requests the fakes saw while the restarted daemon had no token
    sent_without_token: int | None = None


def run_scenario(world: ScenarioWorld, start_daemon: Callable[[], DaemonProcess], root: Path, plan: Plan = Plan(),
                 *, kill_halfway: bool = False, timeout: float = 120.0, logs: list[str] | None = None) -> JobResult:
    """Drive one job from the first status to an empty outbox and return what the remote side shows.

    The daemons' logs (and the messages the client was shown) are appended to ``logs`` even when it fails.
    """
    env = world.job_env(root)
    daemon = start_daemon()
    extra: dict[str, Any] = {}
    logs = [] if logs is None else logs
    try:
        c = connect(daemon, env)
        started = time.monotonic()  # wall time: from the job's first write to the last one delivered
        assert c.initialize_result is not None
        world.check_capabilities(c.initialize_result["capabilities"]["roles"])
        run_id = first_half(c, plan)
        if kill_halfway:
            # kill while the first half is still being delivered (through faults, with requests in flight)
            deadline = time.monotonic() + 10
            while not world.remote_started() and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.proc.kill()
            daemon.proc.wait()
            daemon.stop()
            logs.append(daemon.log())
            world.wait_idle()  # what the killed daemon sent before it died still counts as sent before
            seen = len(world.calls())
            daemon = start_daemon()
            anonymous = connect(daemon, world.job_env(root / "anonymous", tokens=False))
            time.sleep(0.5)
            extra["pending_after_restart"] = anonymous.request("sidecar/status", {})["outbox"]["pending"]
            extra["sent_without_token"] = len(world.calls()) - seen
            anonymous.close()
            c = connect(daemon, env)  # the job's next step: its session brings the tokens back
        second_half(c, plan, run_id)
        wait_delivered(c, timeout)
        elapsed = time.monotonic() - started
        run = c.request("get_test_run_status", {"test_run_id": run_id})
        logs += [n["params"]["message"] for n in list(c.notifications) if n.get("method") == "window/logMessage"]
    finally:
        daemon.stop()
        logs.append(daemon.log())
    return JobResult(view=world.view(), seconds=elapsed, run=run, logs=logs, **extra)


WorldFactory = Callable[[float, int], ScenarioWorld]

#: the scenario daemons' ``delivery_time_scale``: the providers' write spacing (GitHub 1 s, GitLab 0.5 s), the
#: retry backoff and Retry-After waits shrink tenfold against the fakes. Delivery order, coalescing, retries and
#: the write budget's decisions are the same; a job that paced 25 writes at 0.5 s waited 12 s for nothing.
TIME_SCALE = 0.1


def scenario(make_world: WorldFactory, base: Path, rate: float, seed: int = 1, *, kill: bool = False,
             plan: Plan = Plan(), timeout: float = 60) -> tuple[JobResult, Any]:
    """One job against its own fakes and its own daemon state (``base`` must be short: it holds the socket);
    the daemon logs are printed on failure, and every request must have been valid for the vendor."""
    env = scrubbed_env(base)
    started: list[DaemonProcess] = []
    paced_until_killed = kill

    def start_daemon() -> DaemonProcess:
        # a job that gets killed keeps the providers' own pacing in its first daemon, so the kill lands where it
        # always did (between two paced writes), unless its world holds the moment; the restarted daemon, which
        # delivers most of the job, is faster
        scale = 1.0 if paced_until_killed and not started else TIME_SCALE
        started.append(DaemonProcess.start(base / "d.sock", {**env, "CI_SIDECAR_DELIVERY_TIME_SCALE": str(scale)}))
        return started[-1]

    logs: list[str] = []
    with make_world(rate, seed) as world:
        if hasattr(world, "daemon_env"):  # the daemon's own settings the world needs (an object store)
            env = world.daemon_env(env)
        if kill and hasattr(world, "hold_for_kill"):
            world.hold_for_kill()
            paced_until_killed = False
        try:
            out = run_scenario(world, start_daemon, base / "job", plan, kill_halfway=kill, timeout=timeout, logs=logs)
        except BaseException:
            print("\n".join(logs))
            raise
        assert world.violations() == [], world.violations()
    return out, world


#: fault-free jobs already run in this session, by world factory and plan (see :func:`clean_job`)
_CLEAN: dict[tuple[Any, Plan], tuple[JobResult, Any]] = {}


def clean_job(make_world: WorldFactory, dirs: Callable[[], Path], plan: Plan) -> tuple[JobResult, Any]:
    """The fault-free job every faulty or killed job of a provider is compared with, run once per test session.

    Both checks of a provider compare with the same reference, and a fault-free job always ends the same (that is
    what the checks assert), so the second check reuses the first one's. A factory is known by its code: the
    provider's ``lambda rate, seed: World(...)`` gives a new function object in every test, with the same code.
    """
    key = (getattr(make_world, "__code__", make_world), plan)
    if key not in _CLEAN:
        _CLEAN[key] = scenario(make_world, dirs(), 0.0, plan=plan)
    return _CLEAN[key]


def _same(out: JobResult, clean: JobResult) -> None:
    differences = getattr(out.view, "differences", None)
    assert out.view == clean.view, differences(clean.view) if differences else (out.view, clean.view)
    assert out.run["delivery"] == {"pending": 0, "failed": 0}


def assert_faults_change_nothing(make_world: WorldFactory, dirs: Callable[[], Path], *, rate: float = 0.3,
                                 seed: int = 1, plan: Plan = Plan()) -> tuple[JobResult, Any, JobResult, Any]:
    """The job under ``rate`` faults ends with exactly what the fault-free job shows, and no log line holds a
    secret. Returns (clean result, clean world, faulty result, faulty world) for the provider's own checks."""
    clean, clean_world = clean_job(make_world, dirs, plan)
    faulty, world = scenario(make_world, dirs(), rate, seed, plan=plan)
    _same(faulty, clean)
    secrets = [s for s in world.secrets() if s]
    assert not any(s in line for line in faulty.logs for s in secrets)
    return clean, clean_world, faulty, world


def assert_kill_9_changes_nothing(make_world: WorldFactory, dirs: Callable[[], Path], *, rate: float = 0.3,
                                  seed: int = 1, plan: Plan = Plan()) -> tuple[JobResult, JobResult, Any]:
    """A daemon killed -9 mid-delivery (under ``rate`` faults) keeps its writes, sends nothing until the job's
    session brings the tokens back, then ends where the fault-free job ends. Returns (clean, killed, world)."""
    clean, _ = clean_job(make_world, dirs, plan)
    killed, world = scenario(make_world, dirs(), rate, seed, kill=True, plan=plan)
    assert killed.pending_after_restart is not None and killed.pending_after_restart >= 1  # survived kill -9
    assert killed.sent_without_token == 0  # nothing went out before the job's session brought its tokens
    _same(killed, clean)
    return clean, killed, world
