"""The Jenkins world of the scenario harness (:mod:`fakes.scenario`): a multibranch pull-request build of a GitHub
repository (GitHub Branch Source: ``CHANGE_ID``, ``CHANGE_URL``, ``GIT_URL``) against a fake Jenkins and the fake
GitHub, and what a person then sees on both.

Jenkins gets the build description and, after the pipeline's ``junit`` and ``archiveArtifacts`` steps (run by
:meth:`World.view`, as the build's ``post`` section would), the test report and the archived files; GitHub gets the
check run, the commit statuses and the sticky comment on the pull request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import Recorded
from .github import FakeGitHub
from .jenkins import FakeJenkins
from .spec import OpenApiSpec

__all__ = ["World", "View", "HEAD", "PR", "JOB", "NUMBER", "APP_TOKEN", "JENKINS_TOKEN"]

HEAD = "e5" * 20  # the PR's head commit (GIT_COMMIT of a build that checks out the head)
PR = 42
JOB, NUMBER = "octo/repo/PR-42", 7  # a multibranch project in an organisation folder
APP_TOKEN = "ghs_jenkinsScenarioAppT0kenNeverShown"
USER, JENKINS_TOKEN = "ci-bot", "11e2a0c0ffee0000jenkins0000token99"
JUNIT, ARCHIVE = "ci-sidecar-out/junit/*.xml", "ci-sidecar-out/artifacts/**"


@dataclass(frozen=True)
class View:
    """What a person sees on the pull request and on the Jenkins build."""

    #: (name, head SHA, status, conclusion, title, annotation count) per check run
    check_runs: tuple[tuple[Any, ...], ...]
    comments: tuple[str, ...]
    #: context → (state, description) of the newest status per context on the head commit
    statuses: tuple[tuple[str, str, str | None], ...]
    #: the build description, the fake's origin written ``JENKINS`` (each run has its own port)
    description: str | None
    #: (passCount, failCount, skipCount) of the build's test report after the junit step
    tests: tuple[int, int, int] | None
    #: (artifact name, size) archived, the run's id taken out of the path
    artifacts: tuple[tuple[str, int], ...]

    def differences(self, other: View) -> list[str]:
        return [f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
                for name in self.__dataclass_fields__ if getattr(self, name) != getattr(other, name)]


class World:
    """The fakes one Jenkins job talks to; ``workspace`` is set by :meth:`job_env`."""

    def __init__(self, spec: OpenApiSpec, *, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fault_rate = fault_rate
        self.jenkins = FakeJenkins(users={USER: JENKINS_TOKEN}, fault_rate=fault_rate, seed=seed + 500,
                                   per_resource_faults=True)
        self.github = FakeGitHub(spec, tokens={APP_TOKEN: "app"}, fault_rate=fault_rate, seed=seed,
                                 lost_methods=("POST",), per_resource_faults=True, commits={HEAD})
        self.workspace: Path | None = None

    def __enter__(self) -> World:
        self.jenkins.__enter__()
        self.github.__enter__()
        self.jenkins.add_build(JOB, NUMBER)
        if self.fault_rate:
            # whatever the seed: the first answer of each kind of write is lost after the fake made it, and every
            # kind of failure before the fakes commit happens at least once
            self.jenkins.inject("lost", "POST", "submitDescription")
            for kind, method, path in (("503", "GET", "/api/json"), ("reset", "POST", "submitDescription"),
                                       ("502", "GET", "crumbIssuer")):
                self.jenkins.inject(kind, method, path, retry_after=0)
            for path in ("/check-runs$", "/comments$", "/statuses/"):
                self.github.inject("lost", "POST", path)
            for kind, method, path in (("502", "GET", "/comments$"), ("503", "POST", "/statuses/"),
                                       ("429", "PATCH", "/comments/"), ("secondary", "PATCH", "/check-runs/")):
                self.github.inject(kind, method, path, retry_after=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.github.__exit__(*exc)
        self.jenkins.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """The variables of the multibranch PR build (``tokens=False``: the same build without any secret)."""
        workspace = root / "ws"
        workspace.mkdir(parents=True, exist_ok=True)
        if self.workspace is None:
            self.workspace = workspace
        repo_url = f"{self.github.origin}/octo/repo"
        env = {
            "JENKINS_URL": self.jenkins.url + "/", "BUILD_ID": str(NUMBER), "BUILD_NUMBER": str(NUMBER),
            "JOB_NAME": JOB, "JOB_BASE_NAME": "PR-42", "BUILD_URL": self.jenkins.build_url(JOB, NUMBER),
            "BUILD_TAG": f"jenkins-octo-repo-PR-42-{NUMBER}", "WORKSPACE": str(workspace),
            "BRANCH_NAME": f"PR-{PR}", "CHANGE_ID": str(PR), "CHANGE_URL": f"{repo_url}/pull/{PR}",
            "CHANGE_TARGET": "main", "CHANGE_BRANCH": "feature", "CHANGE_AUTHOR": "octocat",
            "GIT_URL": f"{repo_url}.git", "GIT_COMMIT": HEAD,
            # the code host's API: the fake GitHub (its host is recognised as GitHub through this setting)
            "CI_SIDECAR_GITHUB_BASE_URL": self.github.url,
            "CI_SIDECAR_OUTPUT_DIR": str(root / "local-out"),  # the local output stays out of the staging folder
        }
        if tokens:
            env.update(JENKINS_USER=USER, JENKINS_TOKEN=JENKINS_TOKEN, GITHUB_TOKEN=APP_TOKEN)
        return env

    def view(self) -> View:
        """The build's post steps (``junit``, ``archiveArtifacts``) collect the workspace; then what shows."""
        build = self.jenkins.build(JOB, NUMBER)
        assert self.workspace is not None
        report = self.jenkins.record_junit(build, self.workspace, JUNIT)
        self.jenkins.archive(build, self.workspace, ARCHIVE)
        checks = sorted(self.github.check_runs(), key=lambda c: c["id"])
        latest: dict[str, dict[str, Any]] = {}
        for status in self.github.statuses(HEAD):  # newest first
            latest.setdefault(status["context"], status)
        return View(
            check_runs=tuple((c["name"], c["head_sha"], c["status"], c["conclusion"], c["output"]["title"],
                              len(self.github.annotations(c["id"]))) for c in checks),
            comments=tuple(c["body"] for c in sorted(self.github.comments(PR), key=lambda c: c["id"])),
            statuses=tuple(sorted((k, v["state"], v["description"]) for k, v in latest.items())),
            description=(build.description or "").replace(self.jenkins.origin, "JENKINS") or None,
            tests=(report["passCount"], report["failCount"], report["skipCount"]) if report else None,
            artifacts=tuple(sorted((path.split("/", 3)[3], len(data)) for path, data in build.artifacts.items())),
        )

    def calls(self) -> list[Recorded]:
        return self.jenkins.calls() + self.github.calls()

    def rest_calls(self) -> list[Recorded]:
        """Every API call (``bench/bench_jenkins.py``): Jenkins' and GitHub's."""
        return self.calls()

    def artifact_calls(self) -> list[Recorded]:
        """None: artifacts are staged in the workspace, the pipeline's archiveArtifacts uploads them."""
        return []

    def violations(self) -> list[str]:
        return self.jenkins.violations + self.github.violations

    def remote_started(self) -> bool:
        return bool(self.github.check_runs() or self.jenkins.build(JOB, NUMBER).description)

    def wait_idle(self) -> None:
        self.jenkins.wait_idle()
        self.github.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        ci, scm = roles["ci"], roles["scm"]
        assert (ci["provider"], ci["test_run"]["via"], ci["artifacts"]["kind"]) == \
            ("jenkins", "build description", "staged"), ci
        assert (scm["provider"], scm["test_run"]["via"], scm["pr_comment"]["kind"]) == \
            ("github", "check run", "native"), scm

    def secrets(self) -> list[str]:
        return [APP_TOKEN, JENKINS_TOKEN]
