"""The Travis CI world of the scenario harness (:mod:`fakes.scenario`): a Travis CI pull-request build of a GitHub
repository — statuses and the sticky comment on the fake GitHub (the code host), artifacts in an S3-compatible
object store (moto, the daemon's ``[artifact_store]``), the fake Travis API v3 beside them — and what a person
then sees on the PR and in the bucket."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import Recorded
from .github_scenario import code_host, inject_code_host_faults, pull_request
from .spec import OpenApiSpec
from .travis import Build, FakeTravis

__all__ = ["World", "View", "HEAD", "MERGE", "PR", "BUILD", "JOB"]

HEAD = "7a" * 20  # TRAVIS_PULL_REQUEST_SHA: the PR's head, where statuses belong
MERGE = "8b" * 20  # TRAVIS_COMMIT: the merge commit Travis built
PR = 42
BUILD, JOB = 9001, 9002
GITHUB_TOKEN = "ghs_travisScenarioAppT0kenNeverShown"
TRAVIS_TOKEN = "travis-scenario-T0ken-never-shown"


@dataclass(frozen=True)
class View:
    """What the PR shows and what the bucket holds."""

    statuses: tuple[tuple[str, str, str | None], ...]
    #: the run on the PR when the session routes it to the code host: (name, head, status, conclusion, annotations)
    check_runs: tuple[tuple[Any, ...], ...]
    comments: tuple[str, ...]
    #: (artifact name, size) of every object under the run's key prefix
    objects: tuple[tuple[str, int], ...]

    def differences(self, other: View) -> list[str]:
        return [f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
                for name in ("statuses", "check_runs", "comments", "objects")
                if getattr(self, name) != getattr(other, name)]


class World:
    """One Travis CI job: fake GitHub, fake Travis API v3, and a bucket of the moto S3 server."""

    def __init__(self, github_spec: OpenApiSpec, moto: Any, *, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fault_rate = fault_rate
        self.moto = moto
        self.bucket = moto.bucket()
        self.github = code_host(github_spec, GITHUB_TOKEN, fault_rate=fault_rate, seed=seed)
        self.travis = FakeTravis(tokens={TRAVIS_TOKEN})

    def __enter__(self) -> World:
        self.github.__enter__()
        self.travis.__enter__()
        self.travis.add_build(Build(id=BUILD, number="77", state="started", slug="octo/repo", sha=MERGE,
                                    pull_request_number=PR, jobs=(JOB,)))
        if self.fault_rate:
            inject_code_host_faults(self.github)
        return self

    def __exit__(self, *exc: object) -> None:
        self.travis.__exit__(*exc)
        self.github.__exit__(*exc)

    def daemon_env(self, env: dict[str, str]) -> dict[str, str]:
        """The daemon's ``[artifact_store]``: the bucket on the moto server (its keys are the daemon's)."""
        return {**env, "CI_SIDECAR_ARTIFACT_STORE_BUCKET": self.bucket,
                "CI_SIDECAR_ARTIFACT_STORE_ENDPOINT_URL": self.moto.url, "CI_SIDECAR_ARTIFACT_STORE_PREFIX": "ci",
                "AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
                "NO_PROXY": "127.0.0.1,localhost"}

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """A Travis CI pull-request build (travis-ci.com names GitHub in its web URLs)."""
        root.mkdir(parents=True, exist_ok=True)
        web = "https://app.travis-ci.com/github/octo/repo"
        env = {
            "CI": "true", "TRAVIS": "true", "TRAVIS_REPO_SLUG": "octo/repo", "TRAVIS_COMMIT": MERGE,
            "TRAVIS_EVENT_TYPE": "pull_request", "TRAVIS_PULL_REQUEST": str(PR), "TRAVIS_PULL_REQUEST_SHA": HEAD,
            "TRAVIS_PULL_REQUEST_BRANCH": "feature", "TRAVIS_PULL_REQUEST_SLUG": "octo/repo", "TRAVIS_BRANCH": "main",
            "TRAVIS_BUILD_ID": str(BUILD), "TRAVIS_BUILD_NUMBER": "77", "TRAVIS_JOB_ID": str(JOB),
            "TRAVIS_JOB_NUMBER": "77.1", "TRAVIS_BUILD_WEB_URL": f"{web}/builds/{BUILD}",
            "TRAVIS_JOB_WEB_URL": f"{web}/jobs/{JOB}", "GITHUB_API_URL": self.github.url,
            "CI_SIDECAR_TRAVIS_BASE_URL": self.travis.url, "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env.update(GITHUB_TOKEN=GITHUB_TOKEN, TRAVIS_TOKEN=TRAVIS_TOKEN)
        return env

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        ci, scm = roles["ci"], roles["scm"]
        assert ci["provider"] == "travis" and ci["artifacts"]["via"] != "artifact_store", ci  # the store's tier
        assert scm["provider"] == "github" and scm["pr_comment"]["kind"] == "native", scm

    def remote_started(self) -> bool:
        return bool(self.github.statuses(HEAD))

    def wait_idle(self) -> None:
        self.github.wait_idle()
        self.travis.wait_idle()

    def secrets(self) -> list[str]:
        return [GITHUB_TOKEN, TRAVIS_TOKEN, "testing-secret-key"]

    def calls(self) -> list[Recorded]:
        return self.github.calls() + self.travis.calls()

    def violations(self) -> list[str]:
        return self.github.violations + self.travis.violations

    def view(self) -> View:
        objects = sorted((key.split("/", 2)[2], len(data)) for key, data in self.moto.objects(self.bucket).items())
        return View(**pull_request(self.github, HEAD, PR),
                    objects=tuple(objects))
