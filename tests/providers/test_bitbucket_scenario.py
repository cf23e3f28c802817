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
from fakes.bitbucket import PR, SHA, World
from fakes.scenario import COMMENT_KEY, RUN_NAME, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing
from fakes.spec import require_spec

PLAN = Plan()
# Fixed schedules that finish in seconds; any seed must pass the same assertions, but with some a write's
# exponential backoff (1 s doubling, counted over its failed attempts) takes it past the harness's minute.
SEED_FAULTS = 3
SEED_KILL = 12
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bitbucket" / "bitbucket-pipelines.yml"


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
