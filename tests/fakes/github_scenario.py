"""The GitHub world of the scenario harness (:mod:`fakes.scenario`): a pull-request build on GitHub Actions
against the loopback fakes (REST API + Actions artifact service), and what a person then sees on the PR.

Used by ``tests/providers/test_github_scenario.py`` (faults and kill -9 change nothing a person sees) and
``bench/bench_github.py`` (REST calls per run, calls per artifact, wall time with faults). Both put
``tests/`` on ``sys.path`` (for :mod:`helpers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import Recorded
from .github import FakeGitHub
from .github_artifacts import FakeGitHubArtifacts, FakeResults
from .scenario import JobResult, Plan, run_scenario
from .spec import OpenApiSpec

__all__ = ["Plan", "View", "World", "JobResult", "run_scenario", "APP_TOKEN", "HEAD", "PR"]

HEAD = "c3" * 20  # the PR's head commit
MERGE = "d4" * 20  # GITHUB_SHA of a pull_request build
PR = 42
APP_TOKEN = "ghs_scenarioAppT0kenNeverShown"
RUN_BACKEND, JOB_BACKEND = "run-uuid-1", "job-uuid-1"


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

    def calls(self) -> list[Recorded]:
        return self.rest_calls() + self.artifact_calls()

    def remote_started(self) -> bool:
        return bool(self.rest.check_runs())

    def wait_idle(self) -> None:
        self.rest.wait_idle()
        self.results.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "check run" and caps["artifacts"]["kind"] == "native", caps

    def secrets(self) -> list[str]:
        return [APP_TOKEN, self.runtime_token]

    def rest_calls(self) -> list[Recorded]:
        return self.rest.calls()

    def artifact_calls(self) -> list[Recorded]:
        return self.results.calls()

    def violations(self) -> list[str]:
        return self.rest.violations + self.results.violations


# --- GitHub as the code host of another CI's job (CircleCI, Travis CI) ---------------------------------


def code_host(spec: OpenApiSpec, token: str, *, fault_rate: float, seed: int) -> FakeGitHub:
    """The fake GitHub a CI that hosts no code sends its statuses and PR comments to."""
    return FakeGitHub(spec, tokens={token: "app"}, fault_rate=fault_rate, seed=seed, lost_methods=("POST",),
                      per_resource_faults=True)


def inject_code_host_faults(rest: FakeGitHub) -> None:
    """Whatever the seed: the first create of each kind is made and its answer lost, and each kind of failure
    before the fake commits happens at least once."""
    for path in ("/comments$", "/statuses/"):
        rest.inject("lost", "POST", path)
    for kind, method, path in (("502", "GET", "/comments$"), ("503", "POST", "/statuses/"),
                               ("429", "PATCH", "/comments/"), ("reset", "POST", "/statuses/")):
        rest.inject(kind, method, path, retry_after=0)


def pull_request(rest: FakeGitHub, head: str, pr: int) -> dict[str, tuple[Any, ...]]:
    """What the PR shows: ``statuses`` ((context, state, description) of the newest status per context on ``head``,
    sorted), ``comments`` (bodies, oldest first) and ``check_runs`` ((name, head SHA, status, conclusion,
    annotation count) of each, the run itself when the session routes it to the code host)."""
    latest: dict[str, dict[str, Any]] = {}
    for status in rest.statuses(head):  # newest first
        latest.setdefault(status["context"], status)
    checks = sorted(rest.check_runs(), key=lambda c: c["id"])
    return {"statuses": tuple(sorted((k, v["state"], v["description"]) for k, v in latest.items())),
            "comments": tuple(c["body"] for c in sorted(rest.comments(pr), key=lambda c: c["id"])),
            "check_runs": tuple((c["name"], c["head_sha"], c["status"], c["conclusion"],
                                 len(rest.annotations(c["id"]))) for c in checks)}
