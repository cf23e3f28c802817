"""A pull-request build on GitHub Actions, end to end: a real daemon driven by the Python client, publishing
to the loopback fakes (REST API + Actions artifact service), and what a person then sees on the PR.

Shared by ``tests/providers/test_github_scenario.py`` (faults and kill -9 change nothing a person sees) and
``bench/bench_github.py`` (REST calls per run, calls per artifact, wall time with faults). Both put
``tests/`` on ``sys.path`` (for :mod:`helpers`).

The plan is what a test runner of a 10,000-test suite does: results in batches of 100 with file and line,
two updates of one sticky comment, 20 small artifacts, two build-status contexts each set twice, then
``complete_test_run``; nothing waits for delivery (``wait`` is false) until the end, when the outbox must be
empty. :func:`run_scenario` can kill -9 the daemon halfway and restart it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_sidecar_client import Client
from helpers import DaemonProcess

from .github import FakeGitHub, Recorded
from .github_artifacts import FakeGitHubArtifacts, FakeResults
from .spec import OpenApiSpec

__all__ = ["Plan", "View", "World", "JobResult", "run_scenario", "APP_TOKEN", "HEAD", "PR"]

HEAD = "c3" * 20  # the PR's head commit
MERGE = "d4" * 20  # GITHUB_SHA of a pull_request build
PR = 42
APP_TOKEN = "ghs_scenarioAppT0kenNeverShown"
RUN_BACKEND, JOB_BACKEND = "run-uuid-1", "job-uuid-1"
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


@dataclass(frozen=True)
class View:
    """What a person sees on the PR (and the run's artifact list)."""

    #: (name, head SHA, status, conclusion, title, annotation count) per check run
    check_runs: tuple[tuple[Any, ...], ...]
    #: (path, start line, title) of every annotation, sorted (duplicates would show)
    annotations: tuple[tuple[Any, ...], ...]
    #: bodies of the PR's comments, oldest first
    comments: tuple[str, ...]
    #: context → (state, description) of the newest status per context on the head commit
    statuses: tuple[tuple[str, str, str | None], ...]
    #: (name, size) of the run's artifacts
    artifacts: tuple[tuple[str, int], ...]

    def differences(self, other: View) -> list[str]:
        """Readable differences (for an assertion message)."""
        out = []
        for name in ("check_runs", "comments", "statuses", "artifacts"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append(f"{name}: {mine!r} != {theirs!r}")
        if self.annotations != other.annotations:
            extra = sorted(set(self.annotations) - set(other.annotations))[:5]
            missing = sorted(set(other.annotations) - set(self.annotations))[:5]
            out.append(f"annotations: {len(self.annotations)} vs {len(other.annotations)}; "
                       f"extra {extra}, missing {missing}")
        return out


class World:
    """The fakes one job talks to: the REST API (with the run's artifact list) and the artifact service."""

    def __init__(self, spec: OpenApiSpec, *, fault_rate: float = 0.0, seed: int = 1) -> None:
        # faults rolled per resource, so a seed replays whatever order the daemon's deliveries run in
        self.results = FakeResults(fault_rate=fault_rate, seed=seed + 1000, per_resource_faults=True)
        # lost answers where a retry could duplicate something: creates (a lost PATCH is covered elsewhere)
        self.rest: FakeGitHub = FakeGitHubArtifacts(spec, self.results, tokens={APP_TOKEN: "app"},
                                                    fault_rate=fault_rate, seed=seed, lost_methods=("POST",),
                                                    per_resource_faults=True)
        self.runtime_token = ""

    def __enter__(self) -> World:
        self.results.__enter__()
        self.rest.__enter__()
        self.runtime_token = self.results.token(RUN_BACKEND, JOB_BACKEND)
        if self.rest.fault_rate:
            # on top of the random share, whatever the seed: the first answer of every kind of create is lost
            # after the fake made it (each way a retry could duplicate something is taken), and every kind of
            # failure before the fake commits happens at least once
            for path in ("/check-runs$", "/comments$", "/statuses/"):
                self.rest.inject("lost", "POST", path)
            for kind, method, path in (("502", "GET", "/comments$"), ("503", "POST", "/statuses/"),
                                       ("429", "PATCH", "/comments/"), ("secondary", "PATCH", "/check-runs/"),
                                       ("reset", "GET", "/check-runs$")):
                self.rest.inject(kind, method, path, retry_after=0)
            for kind, method in (("lost", "CreateArtifact"), ("lost", "blob"), ("lost", "FinalizeArtifact"),
                                 ("503", "CreateArtifact"), ("429", "FinalizeArtifact"), ("reset", "blob")):
                self.results.inject(kind, method)
        return self

    def __exit__(self, *exc: object) -> None:
        self.rest.__exit__(*exc)
        self.results.__exit__(*exc)

    def set_faults(self, rate: float) -> None:
        with self.rest.lock:
            self.rest.fault_rate = rate
        with self.results.lock:
            self.results.fault_rate = rate

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """The variables of a ``pull_request`` job (``tokens=False``: the same job without any secret)."""
        root.mkdir(parents=True, exist_ok=True)
        event = root / "event.json"
        event.write_text(json.dumps({"pull_request": {
            "number": PR, "head": {"sha": HEAD, "ref": "feature", "repo": {"full_name": "octo/repo"}},
            "base": {"ref": "main", "repo": {"full_name": "octo/repo"}}}}))
        env = {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "octo/repo",
            "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": MERGE,
            "GITHUB_REF": f"refs/pull/{PR}/merge", "GITHUB_HEAD_REF": "feature", "GITHUB_BASE_REF": "main",
            "GITHUB_RUN_ID": "4242", "GITHUB_JOB": "test", "GITHUB_API_URL": self.rest.url,
            "GITHUB_SERVER_URL": "https://github.example",
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),  # local output never in the checkout
        }
        if tokens:
            env.update(GITHUB_TOKEN=APP_TOKEN, ACTIONS_RUNTIME_TOKEN=self.runtime_token,
                       ACTIONS_RESULTS_URL=self.results.url)
        return env

    def view(self) -> View:
        checks = sorted(self.rest.check_runs(), key=lambda c: c["id"])
        notes = sorted((a["path"], a["start_line"], a.get("title")) for c in checks
                       for a in self.rest.annotations(c["id"]))
        latest: dict[str, dict[str, Any]] = {}
        for status in self.rest.statuses(HEAD):  # newest first
            latest.setdefault(status["context"], status)
        return View(
            check_runs=tuple((c["name"], c["head_sha"], c["status"], c["conclusion"], c["output"]["title"],
                              len(self.rest.annotations(c["id"]))) for c in checks),
            annotations=tuple(notes),
            comments=tuple(c["body"] for c in sorted(self.rest.comments(PR), key=lambda c: c["id"])),
            statuses=tuple(sorted((k, v["state"], v["description"]) for k, v in latest.items())),
            artifacts=tuple(sorted((a.name, a.size) for a in self.results.finalized(RUN_BACKEND))),
        )

    def rest_calls(self) -> list[Recorded]:
        return self.rest.calls()

    def artifact_calls(self) -> list[Recorded]:
        return self.results.calls()

    def violations(self) -> list[str]:
        return self.rest.violations + self.results.violations


@contextmanager
def job_environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment as the job's while a client connects (the client sends it at initialize)."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith(("GITHUB_", "ACTIONS_", "CI_SIDECAR_")) or n == "CI"]:
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
    """One scenario: what the PR shows, how long it took, and what the client saw of the run."""

    view: View
    seconds: float
    run: dict[str, Any]
    logs: list[str] = field(default_factory=list)
    #: outbox depth in a daemon restarted after kill -9, before any session brought a token
    pending_after_restart: int | None = None
    #: requests the fakes saw while the restarted daemon had no token
    sent_without_token: int | None = None


def run_scenario(world: World, start_daemon: Callable[[], DaemonProcess], root: Path, plan: Plan = Plan(), *,
                 kill_halfway: bool = False, timeout: float = 120.0, logs: list[str] | None = None) -> JobResult:
    """Drive one job from the first status to an empty outbox and return what the PR shows.

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
        caps = c.initialize_result["capabilities"]["roles"]["ci"]
        assert caps["test_run"]["via"] == "check run" and caps["artifacts"]["kind"] == "native", caps
        run_id = first_half(c, plan)
        if kill_halfway:
            # kill while the first half is still being delivered (through faults, with requests in flight)
            deadline = time.monotonic() + 10
            while not world.rest.check_runs() and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.proc.kill()
            daemon.proc.wait()
            daemon.stop()
            logs.append(daemon.log())
            seen = len(world.rest_calls()) + len(world.artifact_calls())
            daemon = start_daemon()
            anonymous = connect(daemon, world.job_env(root / "anonymous", tokens=False))
            time.sleep(0.5)
            extra["pending_after_restart"] = anonymous.request("sidecar/status", {})["outbox"]["pending"]
            extra["sent_without_token"] = len(world.rest_calls()) + len(world.artifact_calls()) - seen
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
