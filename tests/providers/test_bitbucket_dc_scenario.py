"""A pull-request build of a Bitbucket Data Center repository through the real daemon and the Python client: the
provider-neutral scenario on a smaller plan (the Cloud scenario runs the 10,000-result one) against the fake Data
Center, with 30% of the requests failing (502/503/429 before the fake commits, lost answers after it commits a
write). The pull request must end up exactly as after a fault-free run, also when the daemon is killed -9
halfway: nothing missing, nothing duplicated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ci_sidecar.providers.bitbucket._api import ident
from fakes.bitbucket_dc import PR, SHA, DCWorld
from fakes.scenario import COMMENT_KEY, RUN_NAME, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing

PLAN = Plan(results=2_000, failures=150, artifacts=4)
SEED_FAULTS = 3
SEED_KILL = 12


def make_world(rate: float, seed: int) -> DCWorld:
    return DCWorld(rate, seed)


def test_thirty_percent_faults_change_nothing_on_data_center(scenario_dirs: Callable[[], Path]) -> None:
    """Report, 150 annotations, one sticky comment and the build statuses look the same with 30% faults."""
    clean, _world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_FAULTS,
                                                                 plan=PLAN)
    view, rid = clean.view, ident(RUN_NAME, limit=64)
    ((key, report),) = view["reports"].items()
    assert key == (SHA, rid) and report["result"] == "FAIL"
    assert {d["title"]: d["value"] for d in report["data"]}["Failed"] == PLAN.failures
    assert len(view["annotations"][(SHA, rid)]) == PLAN.failures
    assert view["comments"] == {PR: [f"[//]: # (ci-sidecar:{COMMENT_KEY})\n\n{PLAN.comments[-1]}"]}
    assert view["statuses"][(SHA, "ci-sidecar-lint")] == ("SUCCESSFUL", "no findings")
    assert view["statuses"][(SHA, "ci-sidecar-coverage")] == ("FAILED", "85.5% < 90%")
    assert view["statuses"][(SHA, ident(RUN_NAME))][0] == "FAILED"
    bad = [r for r in world.calls() if r.status in (-1, 429, 502, 503)]
    assert len(bad) >= 0.15 * len(world.calls()) and any(r.status == -1 and r.method == "POST" for r in bad)


def test_kill_9_halfway_resumes_and_duplicates_nothing_on_data_center(scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-delivery finishes the job's writes once its session is back, and only once (annotation
    batches are replaced by external id, comments found by their marker)."""
    _clean, killed, _world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_KILL,
                                                           plan=PLAN)
    assert len(killed.view["annotations"][(SHA, ident(RUN_NAME, limit=64))]) == PLAN.failures
