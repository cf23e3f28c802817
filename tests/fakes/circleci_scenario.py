"""The CircleCI world of the scenario harness (:mod:`fakes.scenario`): a CircleCI job building a GitHub pull request,
against the fake CircleCI API and the fake GitHub as the code host, and what a person then sees — the PR's statuses
and comments on GitHub, and what the job's ``store_test_results``/``store_artifacts`` steps would upload from the
staging folder.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import Recorded
from .circleci import FakeCircleCI
from .github_scenario import code_host, inject_code_host_faults, pull_request
from .spec import OpenApiSpec

__all__ = ["World", "View", "HEAD", "PR", "SLUG", "JOB"]

HEAD = "c1" * 20  # CIRCLE_SHA1: CircleCI builds the PR's head commit
PR = 42
SLUG = "gh/octo/repo"
JOB = 731
GITHUB_TOKEN = "ghs_circleScenarioAppT0kenNeverShown"
CIRCLE_TOKEN = "circle-scenario-T0ken-never-shown"


@dataclass(frozen=True)
class View:
    """What the PR shows and what the job's collect steps would upload."""

    #: context → (state, description) of the newest status per context on the head commit
    statuses: tuple[tuple[str, str, str | None], ...]
    #: the run on the PR when the session routes it to the code host: (name, head, status, conclusion, annotations)
    check_runs: tuple[tuple[Any, ...], ...]
    #: bodies of the PR's comments, oldest first
    comments: tuple[str, ...]
    #: per staged JUnit file: (tests, failures, distinct test names)
    junit: tuple[tuple[int, int, int], ...]
    #: (name under the run's folder, size, sha256) of every staged artifact
    artifacts: tuple[tuple[str, int, str], ...]

    def differences(self, other: View) -> list[str]:
        return [f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
                for name in ("statuses", "check_runs", "comments", "junit", "artifacts")
                if getattr(self, name) != getattr(other, name)]


class World:
    """One CircleCI job: the fake CircleCI API (artifact lookups) and the fake GitHub (statuses, comments)."""

    def __init__(self, github_spec: OpenApiSpec, circle_spec: OpenApiSpec, *, fault_rate: float = 0.0,
                 seed: int = 1) -> None:
        self.fault_rate = fault_rate
        self.github = code_host(github_spec, GITHUB_TOKEN, fault_rate=fault_rate, seed=seed)
        self.circle = FakeCircleCI(circle_spec, tokens={CIRCLE_TOKEN}, projects={SLUG}, fault_rate=fault_rate,
                                   seed=seed + 7, per_resource_faults=True)
        self.workdir: Path | None = None

    def __enter__(self) -> World:
        self.github.__enter__()
        self.circle.__enter__()
        if self.fault_rate:
            inject_code_host_faults(self.github)
        return self

    def __exit__(self, *exc: object) -> None:
        self.circle.__exit__(*exc)
        self.github.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """A CircleCI job of PR 42 on GitHub; the job's working directory is ``root/project``."""
        work = root / "project"
        work.mkdir(parents=True, exist_ok=True)
        if tokens and self.workdir is None:
            self.workdir = work
        env = {
            "CI": "true", "CIRCLECI": "true", "CIRCLE_PROJECT_USERNAME": "octo", "CIRCLE_PROJECT_REPONAME": "repo",
            "CIRCLE_REPOSITORY_URL": "git@github.com:octo/repo.git", "CIRCLE_SHA1": HEAD, "CIRCLE_BRANCH": "feature",
            "CIRCLE_PULL_REQUEST": f"https://github.com/octo/repo/pull/{PR}", "CIRCLE_BUILD_NUM": str(JOB),
            "CIRCLE_JOB": "test", "CIRCLE_WORKFLOW_ID": "5b1a-wf", "CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "1",
            "CIRCLE_BUILD_URL": f"https://circleci.com/gh/octo/repo/{JOB}", "CIRCLE_WORKING_DIRECTORY": str(work),
            "GITHUB_API_URL": self.github.url, "CI_SIDECAR_CIRCLECI_BASE_URL": self.circle.url,
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env.update(GITHUB_TOKEN=GITHUB_TOKEN, CIRCLE_TOKEN=CIRCLE_TOKEN)
        return env

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        ci, scm = roles["ci"], roles["scm"]
        assert (ci["test_run"]["via"], ci["artifacts"]["via"]) == ("store_test_results", "store_artifacts"), ci
        assert scm["provider"] == "github" and scm["build_status"]["kind"] == "native", scm

    def remote_started(self) -> bool:
        return bool(self.github.statuses(HEAD))

    def wait_idle(self) -> None:
        self.github.wait_idle()
        self.circle.wait_idle()

    def secrets(self) -> list[str]:
        return [GITHUB_TOKEN, CIRCLE_TOKEN]

    def calls(self) -> list[Recorded]:
        return self.github.calls() + self.circle.calls()

    def violations(self) -> list[str]:
        return self.github.violations + self.circle.violations

    def staged(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "ci-sidecar-staged"

    def view(self) -> View:
        junit = []
        for path in sorted((self.staged() / "junit").glob("*.xml")):
            cases = list(ET.parse(path).getroot().iter("testcase"))
            failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
            junit.append((len(cases), failed, len({(c.get("classname"), c.get("name")) for c in cases})))
        artifacts = []
        for run_folder in sorted((self.staged() / "artifacts").glob("*")):
            for path in sorted(p for p in run_folder.rglob("*") if p.is_file()):
                data = path.read_bytes()
                artifacts.append((path.relative_to(run_folder).as_posix(), len(data),
                                  hashlib.sha256(data).hexdigest()))
        return View(**pull_request(self.github, HEAD, PR),
                    junit=tuple(junit), artifacts=tuple(artifacts))
