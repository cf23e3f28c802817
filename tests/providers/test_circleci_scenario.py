"""A CircleCI job building a GitHub pull request, through the real daemon and the Python client: statuses and the
sticky comment go to GitHub (the code host), the JUnit report and the artifacts are staged for the job's
``store_test_results``/``store_artifacts`` steps, and ``get_artifact_url`` says "staged" until the job's step has
stored the file, then answers the URL CircleCI's API v2 lists. The 10,000-result scenario with 30% faults and a
kill -9 ends like the fault-free job, on the PR and in the staging folder."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes.circleci_scenario import CIRCLE_TOKEN, GITHUB_TOKEN, HEAD, JOB, PR, SLUG, World
from fakes.scenario import JobResult, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing, connect
from fakes.scenario import wait_delivered
from fakes.spec import OpenApiSpec, require_spec
from helpers import DaemonProcess, scrubbed_env

FAULTS = 0.3
SEED_FAULTS = 5
SEED_KILL = 6
PLAN = Plan()
MARKER = "<!-- ci-sidecar:key=coverage -->\n"


@pytest.fixture
def make_world() -> Callable[[float, int], World]:
    """The fakes of one CircleCI job: CircleCI's API and GitHub as the code host."""
    gh, cc = require_spec("github/api.github.com.ci-subset.json"), require_spec("circleci/circleci-api-v2-openapi.json")
    return lambda rate, seed: World(gh, cc, fault_rate=rate, seed=seed)


def url_of(c: object, run_id: str, name: str) -> dict[str, object]:
    return c.request("get_artifact_url", {"test_run_id": run_id, "name": name})  # type: ignore[attr-defined]


def test_a_pull_request_job_end_to_end(make_world: Callable[[float, int], World], short_tmp: Path,
                                       tmp_path: Path) -> None:
    """Through the daemon: the PR gets the status, the comment and the run as a check run (named with the job), the run
    is staged as JUnit, an artifact's URL is "staged" (the local copy, with the note) until store_artifacts ran, then
    CircleCI's; no token in the log."""
    plan = Plan(results=300, failures=9, artifacts=2)
    with make_world(0.0, 1) as world:
        daemon = DaemonProcess.start(short_tmp / "d.sock", scrubbed_env(short_tmp))
        try:
            c = connect(daemon, world.job_env(tmp_path))
            assert c.initialize_result is not None
            world.check_capabilities(c.initialize_result["capabilities"]["roles"])
            run_id = c.request("create_test_run", {"name": "unit tests"})["id"]
            for batch in plan.batches():
                c.request("report_results", {"test_run_id": run_id, "results": batch})
            name, data = plan.artifact(1)
            c.request("upload_artifact", {"test_run_id": run_id, "name": name,
                                          "content_base64": base64.b64encode(data).decode(), "wait": True})
            before = url_of(c, run_id, name)
            c.request("add_pr_comment", {"body": "all good", "key": "coverage", "test_run_id": run_id})
            c.request("set_build_status", {"state": "success", "context": "lint", "description": "clean"})
            c.request("complete_test_run", {"test_run_id": run_id})
            wait_delivered(c, 60)
            run = c.request("get_test_run_status", {"test_run_id": run_id})
            artifact = c.request("get_artifact_by_name", {"test_run_id": run_id, "name": name})
            work = tmp_path / "project"
            assert world.circle.store_test_results(SLUG, JOB, work / "ci-sidecar-staged" / "junit") == plan.results
            world.circle.store_artifacts(SLUG, JOB, work / "ci-sidecar-staged" / "artifacts", destination="ci-sidecar")
            deadline = time.monotonic() + 10  # a miss is remembered for 2 s
            after = url_of(c, run_id, name)
            while not str(after["url"]).startswith(world.circle.origin) and time.monotonic() < deadline:
                time.sleep(0.2)
                after = url_of(c, run_id, name)
        finally:
            daemon.stop()
        log = daemon.log()
    assert str(before["url"]).startswith("file://") and "after the job's store_artifacts step" in str(before["note"])
    assert world.circle.content(str(after["url"])) == data and after.get("note") is None
    assert artifact["upload"] == {"state": "staged", "action": "created", "provider": "circleci"}
    circle = next(t for t in run["targets"] if t["provider"] == "circleci")
    assert (circle["kind"], circle["delivery"]["state"]) == ("staged", "delivered")
    assert [c["body"] for c in world.github.comments(PR)] == [MARKER + "all good"]
    assert [(s["context"], s["state"]) for s in world.github.statuses(HEAD)] == [("lint", "success")]
    (check,) = world.github.check_runs()  # the run on the PR too, through the code host
    assert (check["name"], check["head_sha"], check["conclusion"]) == ("unit tests (test)", HEAD, "failure")
    assert len(world.github.annotations(check["id"])) == plan.failures
    failures = sum(1 for t in world.circle.job(SLUG, JOB).tests if t["result"] == "failure")
    assert failures == plan.failures
    assert GITHUB_TOKEN not in log and CIRCLE_TOKEN not in log


def clean_view_is_right(out: JobResult, plan: Plan) -> None:
    """The fault-free job is right in itself: two statuses, one comment, one complete JUnit file, every artifact."""
    assert out.view.statuses == (("coverage", "failure", "85.5% < 90%"), ("lint", "success", "no findings"))
    assert out.view.comments == (MARKER + plan.comments[-1],)
    assert out.view.junit == ((plan.results, plan.failures, plan.results),)
    assert [(n, s) for n, s, _ in out.view.artifacts] == sorted(
        (plan.artifact(i)[0], len(plan.artifact(i)[1])) for i in range(plan.artifacts))


def faults_really_happened(world: World) -> None:
    calls = world.github.calls()
    bad = [r for r in calls if r.status in (-1, 429, 502, 503)]
    assert len(bad) >= 0.2 * len(calls), (len(bad), len(calls))
    assert any(r.status == -1 and r.method == "POST" for r in bad)  # a create made but its answer lost


def test_thirty_percent_faults_change_nothing_on_the_pr_or_in_the_staged_folder(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of GitHub's answers failing the PR and the staged output are exactly the fault-free job's."""
    clean, _clean_world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=FAULTS,
                                                                       seed=SEED_FAULTS, plan=PLAN)
    clean_view_is_right(clean, PLAN)
    faults_really_happened(world)


def test_kill_9_halfway_changes_nothing_on_the_pr_or_in_the_staged_folder(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-job finishes the writes once the job's session is back: nothing lost or doubled."""
    clean, killed, world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=FAULTS, seed=SEED_KILL,
                                                         plan=PLAN)
    clean_view_is_right(killed, PLAN)
    assert [r.status for r in world.github.calls("POST", "/comments$")].count(201) <= 1
