"""One TeamCity build of a GitHub pull request with its REST token (no ``exec``), as a world of the
provider-neutral scenario harness (:mod:`fakes.scenario`): the build's properties files, and what a person then
sees in the build's log (service messages over REST, every test on its flow), its status text and tags, and on
the pull request (comments, statuses); the artifacts staged in the checkout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._server import Recorded
from .github import FakeGitHub
from .spec import OpenApiSpec
from .teamcity import FakeTeamCity
from .teamcity_messages import check_flows

__all__ = ["World", "View", "HEAD", "PR", "GH_TOKEN", "TC_TOKEN", "BUILD"]

HEAD = "e5" * 20
PR = 31
GH_TOKEN = "ghs_teamcityScenarioT0kenNeverShown"
TC_TOKEN = "tc-scenario-token-never-shown"
BUILD = 4711


class View(dict):
    """What a person sees; compared whole, shown by its differing keys."""

    def differences(self, other: View) -> list[str]:
        out = []
        for key in self:
            if self[key] != other.get(key):
                mine, theirs = self[key], other.get(key)
                if key == "log":
                    mine = [(s, len(t), t[:3], t[-3:], len(f)) for s, t, f in mine]
                    theirs = [(s, len(t), t[:3], t[-3:], len(f)) for s, t, f in theirs or []]
                out.append(f"{key}: {str(mine)[:600]} != {str(theirs)[:600]}")
        return out


class World:
    """The fake TeamCity (the build's log, status text, tags) and the fake GitHub (the pull request)."""

    def __init__(self, spec: OpenApiSpec, *, fault_rate: float = 0.0, seed: int = 1) -> None:
        rate = fault_rate
        self.teamcity = FakeTeamCity(BUILD, TC_TOKEN, fault_rate=rate, seed=seed, per_resource_faults=True)
        self.github = FakeGitHub(spec, tokens={GH_TOKEN: "app"}, fault_rate=rate, seed=seed + 1,
                                 lost_methods=("POST",), per_resource_faults=True)
        self.fault_rate = rate
        self.root: Path | None = None
        self._cwd = os.getcwd()

    def __enter__(self) -> World:
        self.teamcity.__enter__()
        self.github.__enter__()
        if self.fault_rate:
            # whatever the seed: the first answer of each kind of write is lost after the fake made the change
            for method, path in (("POST", "/log$"), ("PUT", "/statusText$"), ("POST", "/tags$")):
                self.teamcity.inject("lost", method, path)
            for kind, path in (("502", "/log$"), ("503", "/log$"), ("reset", "/log$")):
                self.teamcity.inject(kind, "POST", path, retry_after=0)
            self.github.inject("lost", "POST", "/comments$")
            self.github.inject("lost", "POST", "/statuses/")
        return self

    def __exit__(self, *exc: object) -> None:
        os.chdir(self._cwd)
        self.github.__exit__(*exc)
        self.teamcity.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        """A TeamCity build of pull request #31 (Pull Requests feature), its checkout being ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        if tokens:
            self.root = root
            os.chdir(root)  # the job's steps run in its checkout: staged artifacts land there
        config = root / "config.properties"
        config.write_text(f"teamcity.build.branch=pull/{PR}\nteamcity.pullRequest.number={PR}\n"
                          "teamcity.pullRequest.source.branch=feature\nteamcity.pullRequest.target.branch=main\n"
                          "vcsroot.url=https\\://github.com/octo/repo.git\n"
                          f"teamcity.serverUrl={self.teamcity.url.replace(':', chr(92) + ':')}\n", encoding="latin-1")
        build = root / "build.properties"
        build.write_text(f"teamcity.configuration.properties.file={str(config).replace(':', chr(92) + ':')}\n"
                         f"teamcity.build.id={BUILD}\nteamcity.buildConfName=Unit tests\n", encoding="latin-1")
        env = {"TEAMCITY_VERSION": "2024.03 (build 156364)", "TEAMCITY_BUILD_PROPERTIES_FILE": str(build),
               "BUILD_NUMBER": "99", "BUILD_VCS_NUMBER": HEAD, "GITHUB_API_URL": self.github.url,
               "CI_SIDECAR_TEAMCITY_BASE_URL": self.teamcity.url,
               "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out")}
        if tokens:
            env.update(TEAMCITY_TOKEN=TC_TOKEN, GITHUB_TOKEN=GH_TOKEN)
        return env

    def view(self) -> View:
        flows = check_flows(self.teamcity.messages)  # a valid order on every flow, or it raises
        staged = sorted(f"{name}:{path.stat().st_size}" for path, name in self._staged())
        latest: dict[str, dict[str, Any]] = {}
        for status in self.github.statuses(HEAD):  # newest first
            latest.setdefault(status["context"], status)
        return View({
            "log": [(r.suites, r.tests, sorted(r.failures.items())) for r in flows.values()],
            "problems": [p["description"] for p in self.teamcity.problems],
            "status_text": self.teamcity.status_text,
            "tags": sorted(t if not t.startswith("ci-sidecar-") or t.count("-") < 3 else "receipt:" + t.rsplit("-", 1)[1]
                           for t in self.teamcity.tags),
            "comments": [c["body"] for c in sorted(self.github.comments(PR), key=lambda c: c["id"])],
            "statuses": sorted((k, v["state"], v["description"]) for k, v in latest.items()),
            "staged": staged,
        })

    def _staged(self) -> list[tuple[Path, str]]:
        assert self.root is not None
        base = self.root / "ci-sidecar-staged" / "artifacts"
        return [(p, str(p.relative_to(base)).split("/", 1)[1]) for p in base.rglob("*") if p.is_file()]

    def calls(self) -> list[Recorded]:
        return self.teamcity.calls() + self.github.calls()

    def rest_calls(self) -> list[Recorded]:
        """Every API call (``bench/bench_teamcity.py``): TeamCity's and GitHub's."""
        return self.calls()

    def artifact_calls(self) -> list[Recorded]:
        """None: artifacts are staged in the checkout and published by a service message."""
        return []

    def violations(self) -> list[str]:
        return self.teamcity.violations + self.github.violations

    def remote_started(self) -> bool:
        return bool(self.teamcity.messages)

    def wait_idle(self) -> None:
        self.teamcity.wait_idle()
        self.github.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        assert roles["ci"]["test_run"]["via"] == "service messages (REST)", roles
        assert roles["ci"]["artifacts"]["kind"] == "staged" and roles["scm"]["provider"] == "github", roles

    def secrets(self) -> list[str]:
        return [GH_TOKEN, TC_TOKEN]
