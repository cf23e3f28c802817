"""A whole pull-request build on TeamCity through the real daemon and the Python client, with its REST token (no
``exec``): the provider-neutral scenario (10,000 results, 300 failing, a sticky comment updated once, 20
artifacts, two status contexts) against the spec-validating fake TeamCity and GitHub as the code host.

With 30% of the requests failing (502/503/429/resets, and lost answers after the fakes made the change) and a
kill -9 of the daemon halfway, the pull request ends exactly as after a fault-free run, and the build's log holds
every test exactly once, in a valid order on the run's flow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fakes.scenario import COMMENT_KEY, RUN_NAME, Plan, assert_kill_9_changes_nothing
from fakes.spec import OpenApiSpec
from fakes.teamcity_scenario import World

PLAN = Plan()
SEED_KILL = 12


@pytest.fixture
def make_world(gh_spec: OpenApiSpec) -> Callable[[float, int], World]:
    return lambda rate, seed: World(gh_spec, fault_rate=rate, seed=seed)


def test_kill_9_and_faults_leave_the_pull_request_and_the_log_as_a_clean_run(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """Under 30% faults with a kill -9 halfway, the PR, the status text, the tags and the build log (every test once,
    in order, on one flow) are exactly those of a fault-free run."""
    clean, killed, world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_KILL,
                                                         plan=PLAN)
    view = clean.view
    ((suites, tests, failures),) = view["log"]
    assert [RUN_NAME] == suites
    assert PLAN.results == len(tests) == len({name for name, _, _ in tests})
    assert PLAN.failures == len(failures) == sum(1 for _, outcome, _ in tests if outcome == "failed")
    assert view["status_text"] == f"{RUN_NAME}: {PLAN.results - PLAN.failures} passed, {PLAN.failures} failed, 0 skipped"
    assert ["ci-sidecar-failure", "receipt:done"] == view["tags"]
    assert 1 == len(view["problems"])
    assert [f"[//]: # (ci-sidecar:{COMMENT_KEY})\n\n{PLAN.comments[-1]}"] == view["comments"] or \
        view["comments"][0].endswith(PLAN.comments[-1])
    assert ("coverage", "failure", "85.5% < 90%") in view["statuses"]
    assert PLAN.artifacts == len(view["staged"])
    lost = [r for r in world.teamcity.calls() if r.status == -1 and r.path.endswith("/log")]
    assert lost, "a log request's answer was lost at least once"
    assert not any(secret in line for line in killed.logs for secret in world.secrets())
