"""A whole pull-request build on Azure Pipelines, through the real daemon and the Python client: the
provider-neutral scenario (10,000 results, 300 failing of which 30 pass on a rerun, a sticky comment updated once,
20 artifacts, two status contexts) against the spec-validating fake Azure DevOps.

With 30% of the requests failing (502/503/429 TF400733/resets before the fake commits, lost answers after it
commits a write), and again with a kill -9 of the daemon halfway, the build's test run, its attachments, the
pull request's thread and the statuses must end up exactly as after a fault-free run: every test once, a flaky
one as a rerun with both attempts, whether its rerun came in the same request as its failure or long after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes.azure_scenario import GIT_SPEC, PR, SOURCE, TEST_SPEC, RerunPlan, World
from fakes.scenario import COMMENT_KEY, RUN_NAME, assert_faults_change_nothing, assert_kill_9_changes_nothing
from fakes.spec import require_spec

PLAN = RerunPlan()
SEED_FAULTS = 4
SEED_KILL = 12


@pytest.fixture
def make_world() -> Callable[[float, int], World]:
    test_spec, git_spec = require_spec(TEST_SPEC), require_spec(GIT_SPEC)
    return lambda rate, seed: World(test_spec, fault_rate=rate, seed=seed, git_spec=git_spec)


def expected_view(view: dict[str, Any]) -> None:
    """The fault-free build shows one completed test run with every test once (a flaky one Passed, its two attempts
    as sub-results), 20 attachments, one thread and the statuses."""
    run = view["runs"][RUN_NAME]
    assert (run["state"], run["totalTests"], run["unanalyzedTests"]) == ("Completed", PLAN.results,
                                                                         PLAN.failures - PLAN.flaky)
    assert len(run["results"]) == PLAN.results and len(set(run["results"])) == PLAN.results
    reruns = [r for r in run["results"] if r[4] == "rerun"]
    assert len(reruns) == PLAN.flaky and {r[1] for r in reruns} == {"Passed"}
    assert {tuple(a[2] for a in r[5]) for r in reruns} == {("Failed", "Passed")}
    assert len(run["attachments"]) == PLAN.artifacts
    ((key, status, content),) = view["threads"][PR]
    assert (key, status, content) == (COMMENT_KEY, "active", PLAN.comments[-1])
    statuses = view["commit_statuses"][SOURCE]
    assert statuses["ci-sidecar/lint"] == ("succeeded", "no findings")
    assert statuses["ci-sidecar/coverage"] == ("failed", "85.5% < 90%")
    assert statuses[f"ci-sidecar/{RUN_NAME}"][0] == "failed"
    assert view["pr_statuses"][PR] == statuses


def test_thirty_percent_faults_change_nothing_a_person_sees(make_world: Callable[[float, int], World],
                                                            scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of requests failing the build and the pull request show what a fault-free run shows."""
    clean, clean_world, faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=0.3,
                                                                     seed=SEED_FAULTS, plan=PLAN)
    expected_view(clean.view)
    bad = [r for r in world.calls() if r.status in (-1, 429, 502, 503)]
    assert len(bad) >= 0.15 * len(world.calls()) and any(r.status == -1 and r.method == "POST" for r in bad)
    counts = faulty.run["counts"]
    assert (counts["failed"], counts["flaky"]) == (PLAN.failures - PLAN.flaky, PLAN.flaky)
    # get_test_run_status reads the test run back as Azure shows it (in the fault-free run: a faulted read leaves
    # the local view)
    (target,) = [t for t in clean.run["targets"] if t["provider"] == "azure" and t["role"] == "ci"]
    assert (target["kind"], target["remote_status"], target["remote_conclusion"]) == ("native", "completed",
                                                                                      "failure")
    assert target["url"] == clean_world.azure.runs()[0]["webAccessUrl"]
    print(f"azure scenario: {len(clean_world.calls())} requests fault-free ({clean.seconds:.1f} s), "
          f"{len(world.calls())} with faults ({faulty.seconds:.1f} s)")


def test_kill_9_halfway_resumes_and_duplicates_nothing(make_world: Callable[[float, int], World],
                                                       scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed after Azure added its first results (and the test run) but before it recorded them finishes
    the build's writes once its session is back, and only once."""
    _clean, killed, _world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_KILL,
                                                           plan=PLAN)
    expected_view(killed.view)
