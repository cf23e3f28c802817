"""A whole pull-request build on Bitbucket Pipelines, through the real daemon and the Python client: the
provider-neutral scenario (10,000 results, 300 failing with file and line, a sticky comment updated once, 20
artifacts, two status contexts) against the spec-validating fake Bitbucket.

With 30% of the requests failing (502/503/429/resets before the fake commits, lost answers after it commits a
write), and again with a kill -9 of the daemon halfway, the pull request must end up looking exactly like it
does after a fault-free run: nothing missing, nothing duplicated. The example pipeline is checked here too.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.cli import build_parser
from ci_sidecar.providers.bitbucket._api import ident
from fakes._server import Recorded
from fakes.bitbucket import FakeBitbucket
from fakes.scenario import COMMENT_KEY, RUN_NAME, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing
from fakes.spec import OpenApiSpec, require_spec

SHA = "b7" * 20
PR = 14
TOKEN = "bb-scenario-token-never-shown"
PLAN = Plan()
# Fixed schedules that finish in seconds; any seed must pass the same assertions, but with some a write's
# exponential backoff (1 s doubling, counted over its failed attempts) takes it past the harness's minute.
SEED_FAULTS = 3
SEED_KILL = 12
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bitbucket" / "bitbucket-pipelines.yml"


class World:
    """The fake Bitbucket one job talks to, and what a person then sees on the commit and the pull request."""

    def __init__(self, spec: OpenApiSpec, rate: float, seed: int) -> None:
        self.fake = FakeBitbucket(spec, tokens={TOKEN: "write"}, pull_requests=(PR,), fault_rate=rate, seed=seed,
                                  per_resource_faults=True)

    def __enter__(self) -> World:
        self.fake.__enter__()
        if self.fake.fault_rate:
            # whatever the seed: the first answer of every kind of write is lost after the fake made it
            for method, path in (("PUT", "/reports/[^/]+$"), ("POST", "/annotations$"), ("POST", "/statuses/build$"),
                                 ("POST", "/comments$"), ("PUT", "/comments/"), ("POST", "/downloads$")):
                self.fake.inject("lost", method, path)
            for kind, method, path in (("502", "GET", "/comments$"), ("429", "POST", "/annotations$"),
                                       ("reset", "GET", "/downloads$"), ("503", "PUT", "/reports/")):
                self.fake.inject(kind, method, path, retry_after=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.__exit__(*exc)

    def job_env(self, root: Path, *, tokens: bool = True) -> dict[str, str]:
        root.mkdir(parents=True, exist_ok=True)
        env = {
            "CI": "true", "BITBUCKET_BUILD_NUMBER": "77", "BITBUCKET_COMMIT": SHA, "BITBUCKET_WORKSPACE": "team",
            "BITBUCKET_REPO_SLUG": "widgets", "BITBUCKET_REPO_FULL_NAME": "team/widgets",
            "BITBUCKET_BRANCH": "feature", "BITBUCKET_PR_ID": str(PR), "BITBUCKET_PR_DESTINATION_BRANCH": "main",
            "BITBUCKET_PIPELINE_UUID": "{aaaa-bbbb}", "BITBUCKET_STEP_UUID": "{c0ffee00-1111-4222-8333-444455556666}",
            "BITBUCKET_GIT_HTTP_ORIGIN": "http://bitbucket.org/team/widgets",
            "CI_SIDECAR_BITBUCKET_BASE_URL": self.fake.api_url,
            "CI_SIDECAR_OUTPUT_DIR": str(root / "ci-sidecar-out"),
        }
        if tokens:
            env["BITBUCKET_TOKEN"] = TOKEN
        return env

    def view(self) -> dict[str, Any]:
        return self.fake.snapshot()

    def calls(self) -> list[Recorded]:
        return self.fake.calls()

    def violations(self) -> list[str]:
        return self.fake.violations

    def remote_started(self) -> bool:
        return bool(self.fake.repo.statuses or self.fake.repo.reports)

    def wait_idle(self) -> None:
        self.fake.wait_idle()

    def check_capabilities(self, roles: dict[str, Any]) -> None:
        caps = roles["ci"]
        assert caps["test_run"]["via"] == "code insights report" and caps["artifacts"]["via"] == "downloads", caps

    def secrets(self) -> list[str]:
        return [TOKEN]


@pytest.fixture
def make_world() -> Callable[[float, int], World]:
    spec = require_spec("bitbucket/bitbucket-cloud-openapi3.ci-subset.json")
    return lambda rate, seed: World(spec, rate, seed)


def expected_view(view: dict[str, Any]) -> None:
    """The fault-free run shows the report, 300 annotations, one comment, two statuses, 20 downloads."""
    rid = ident(RUN_NAME, limit=64)
    ((key, report),) = view["reports"].items()
    assert key == (SHA, rid) and report["result"] == "FAILED" and report["report_type"] == "TEST"
    assert {d["title"]: d["value"] for d in report["data"]}["Failed"] == PLAN.failures
    assert len(view["annotations"][(SHA, rid)]) == PLAN.failures
    assert view["comments"] == {PR: [f"[//]: # (ci-sidecar:{COMMENT_KEY})\n\n{PLAN.comments[-1]}"]}
    assert view["statuses"][(SHA, "ci-sidecar-lint")] == ("SUCCESSFUL", "no findings")
    assert view["statuses"][(SHA, "ci-sidecar-coverage")] == ("FAILED", "85.5% < 90%")
    assert view["statuses"][(SHA, ident(RUN_NAME))][0] == "FAILED"
    assert len(view["downloads"]) == PLAN.artifacts and all(n.startswith("77-c0ffee00-") for n in view["downloads"])


def test_thirty_percent_faults_change_nothing_a_person_sees(make_world: Callable[[float, int], World],
                                                            scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of requests failing the pull request shows what a fault-free run shows: no loss, no duplicates."""
    clean, clean_world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=0.3,
                                                                      seed=SEED_FAULTS,
                                                                      plan=PLAN)
    expected_view(clean.view)
    bad = [r for r in world.calls() if r.status in (-1, 429, 502, 503)]
    assert len(bad) >= 0.15 * len(world.calls()) and any(r.status == -1 and r.method == "POST" for r in bad)
    print(f"bitbucket scenario: {len(clean_world.calls())} requests fault-free, {len(world.calls())} with faults")


def test_kill_9_halfway_resumes_and_duplicates_nothing(make_world: Callable[[float, int], World],
                                                       scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-delivery finishes the job's writes once its session is back, and only once."""
    _clean, killed, _world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_KILL,
                                                           plan=PLAN)
    expected_view(killed.view)


def test_the_example_pipeline_runs_commands_that_exist() -> None:
    """examples/bitbucket/bitbucket-pipelines.yml is YAML whose ci-sidecar commands parse with the real CLI."""
    text = EXAMPLE.read_text()
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(text)
    assert set(doc["pipelines"]) == {"default", "pull-requests"}
    lines = [line.strip().removeprefix("- ") for line in text.splitlines()
             if line.strip().removeprefix("- ").startswith("ci-sidecar ")]
    assert any(" exec " in line for line in lines)
    for line in lines:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert args is not None
