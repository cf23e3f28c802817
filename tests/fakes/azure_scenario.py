"""One Azure Pipelines pull request build against the fake Azure DevOps, as a world of the provider-neutral
scenario harness (:mod:`fakes.scenario`): its job variables, and what a person then sees in the build's Tests
tab (the test run, its results and attachments), on the commit and the pull request (statuses, threads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import Fault, Recorded
from .azure import PROJECT, FakeAzure
from .scenario import Plan
from .spec import OpenApiSpec, load_spec, spec_path

__all__ = ["World", "View", "RerunPlan", "REPO", "SOURCE", "MERGE", "PR", "TOKEN", "TEST_SPEC", "GIT_SPEC"]

TEST_SPEC = "azure-devops/test_7.1_test.json"
GIT_SPEC = "azure-devops/git_7.1_git.json"
REPO = "a5c6f0de-0000-4000-8000-00000000ad0e"
SOURCE = "d7" * 20  # SYSTEM_PULLREQUEST_SOURCECOMMITID
MERGE = "e8" * 20  # BUILD_SOURCEVERSION of a PR build (the merge commit)
PR = 42
TOKEN = "azure-scenario-access-token-never-shown"


@dataclass(frozen=True)
class RerunPlan(Plan):
    """The scenario's job with ``flaky`` of its failing tests passing on a second attempt: those failing in the
    first half are rerun in the second half (their failure was sent long before), the others right away (in the
    same batch)."""

    flaky: int = 30

    def flaky_tests(self) -> list[int]:
        """Indexes of the failing tests that pass on attempt 2, spread over the run."""
        failing = sorted(self.failing())
        return failing[:: max(1, len(failing) // self.flaky)][: self.flaky]

    def batches(self) -> list[list[dict[str, Any]]]:
        batches = super().batches()
        half = len(batches) // 2
        for n, i in enumerate(self.flaky_tests()):
            first = batches[i // self.batch][i % self.batch]
            rerun = {**{k: v for k, v in first.items() if k not in ("message", "details")}, "status": "passed",
                     "attempt": 2}
            batches[half + n % half if i // self.batch < half else i // self.batch].append(rerun)
        return batches


class View(dict):  # type: ignore[type-arg]
    """The fake's snapshot; ``differences`` names what differs from another view."""

    def differences(self, other: dict[str, Any]) -> list[str]:
        out = []
        for key in sorted(set(self) | set(other)):
            mine, theirs = self.get(key), other.get(key)
            if mine == theirs:
                continue
            if key == "runs" and isinstance(mine, dict) and isinstance(theirs, dict):
                for name in sorted(set(mine) | set(theirs)):
                    a, b = mine.get(name) or {}, theirs.get(name) or {}
                    out += [f"run {name!r} {k}: {str(a.get(k))[:200]} != {str(b.get(k))[:200]}"
                            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            else:
                out.append(f"{key}: {str(mine)[:300]} != {str(theirs)[:300]}")
        return out


class World:
    """One Azure Repos pull request build against a fake Azure DevOps (a ``fakes.scenario.ScenarioWorld``)."""

    def __init__(self, spec: OpenApiSpec | None = None, *, fault_rate: float = 0.0, seed: int = 1,
                 git_spec: OpenApiSpec | None = None) -> None:
        self.fault_rate = fault_rate
        test_spec = spec or _load(TEST_SPEC)
        self.azure = FakeAzure(test_spec, git_spec or _load(GIT_SPEC), tokens=(TOKEN,), repository=REPO,
                               pull_requests=(PR,), fault_rate=fault_rate, seed=seed, per_resource_faults=True)
        self._kill_on_hold = False

    def __enter__(self) -> World:
        self.azure.__enter__()
        if self.azure.fault_rate:
            # whatever the seed: the first answer of every kind of write is lost after the fake made it, and every
            # kind of failure before the fake commits happens at least once
            for method, path in (("POST", "/test/runs$"), ("POST", "/results$"), ("POST", "/attachments$"),
                                 ("POST", "/threads$"), ("PATCH", "/comments/1$"), ("POST", "/statuses$"),
                                 ("PATCH", "/test/runs/")):
                self.azure.inject("lost", method, path)
            for kind, method, path in (("502", "GET", "/threads$"), ("429", "POST", "/results$"),
                                       ("reset", "POST", "/attachments$"), ("503", "POST", "/statuses$")):
                self.azure.inject(kind, method, path, retry_after=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.azure.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        root.mkdir(parents=True, exist_ok=True)
        env = {
            "TF_BUILD": "True", "SYSTEM_COLLECTIONURI": self.azure.collection_url, "SYSTEM_TEAMPROJECT": PROJECT,
            "BUILD_BUILDID": "77", "BUILD_BUILDNUMBER": "20260101.3", "BUILD_BUILDURI": "vstfs:///Build/Build/77",
            "BUILD_REPOSITORY_ID": REPO, "BUILD_REPOSITORY_NAME": "widgets", "BUILD_REPOSITORY_PROVIDER": "TfsGit",
            "BUILD_REPOSITORY_URI": "https://dev.azure.com/fabrikam/Fabrikam%20Fiber/_git/widgets",
            "BUILD_SOURCEVERSION": MERGE, "BUILD_SOURCEBRANCH": f"refs/pull/{PR}/merge", "BUILD_REASON": "PullRequest",
            "SYSTEM_PULLREQUEST_PULLREQUESTID": str(PR), "SYSTEM_PULLREQUEST_SOURCECOMMITID": SOURCE,
            "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature", "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main",
            "SYSTEM_JOBID": "12f1170f-54f2-53f3-20dd-22fc7dff55f9", "SYSTEM_JOBDISPLAYNAME": "test",
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env["SYSTEM_ACCESSTOKEN"] = TOKEN
        return env

    def view(self) -> View:
        return View(self.azure.snapshot())

    def calls(self) -> list[Recorded]:
        return self.azure.calls()

    def rest_calls(self) -> list[Recorded]:
        return [r for r in self.azure.calls() if not r.path.endswith("/attachments")]

    def artifact_calls(self) -> list[Recorded]:
        return [r for r in self.azure.calls() if r.path.endswith("/attachments")]

    def violations(self) -> list[str]:
        return self.azure.violations

    def hold_for_kill(self) -> None:
        """The job will be killed when Azure has added its first results and holds their answer back: the
        window between Azure making the change and the daemon journaling it (and the test run it created in the
        same attempt), where a daemon that does not look first adds them again."""
        self._kill_on_hold = True
        with self.azure.lock:
            self.azure.faults.insert(0, Fault("held", "POST", "/results$"))

    def remote_started(self) -> bool:
        if self._kill_on_hold:
            return bool(self.azure.held)
        return bool(self.azure.runs() or self.azure.commit_statuses(SOURCE))

    def wait_idle(self) -> None:
        self.azure.release_held()
        self.azure.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "test run" and caps["artifacts"]["via"] == "test run attachment", caps

    def secrets(self) -> list[str]:
        return [TOKEN]


def _load(relative: str) -> OpenApiSpec:
    path = spec_path(relative)
    if path is None:
        raise FileNotFoundError(f"{relative} is missing (set CI_SIDECAR_SPECS to the shared specs)")
    return load_spec(str(path))
