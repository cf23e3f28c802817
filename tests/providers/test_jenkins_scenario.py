"""A multibranch pull-request build on Jenkins of a GitHub repository, through the real daemon and the Python
client: the provider-neutral scenario (10,000 results, 300 failing with file and line, a sticky comment updated
once, 20 artifacts, two status contexts) against the fake Jenkins and the spec-validating fake GitHub.

Jenkins shows the run's line in the build description, and after the pipeline's ``junit``/``archiveArtifacts``
steps its test report and the 20 files; GitHub shows the check run, the statuses and the comment. With 30% of
the requests to both failing, and again with a kill -9 of the daemon halfway, both end exactly as after a
fault-free run.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes.jenkins_scenario import HEAD, JENKINS_TOKEN, JOB, NUMBER, World
from fakes.scenario import COMMENT_KEY, RUN_NAME, JobResult, Plan, assert_faults_change_nothing
from fakes.scenario import assert_kill_9_changes_nothing, connect
from fakes.spec import OpenApiSpec
from helpers import DaemonProcess, scrubbed_env

PLAN = Plan()
SEED_FAULTS = 8
SEED_KILL = 12


@pytest.fixture
def make_world(gh_spec: OpenApiSpec) -> Callable[[float, int], World]:
    return lambda rate, seed: World(gh_spec, fault_rate=rate, seed=seed)


def expected_view_of_the_clean_run(out: JobResult, world: World) -> None:
    """Both sides show the whole job: description line, test report and archive on Jenkins; check run, statuses
    and one comment on the pull request; every target of the run named with its role."""
    view = out.view
    build_url = world.jenkins.build_url(JOB, NUMBER).replace(world.jenkins.origin, "JENKINS")
    assert view.description == (f"ci-sidecar | {RUN_NAME} | failure: 9700 passed, 300 failed, 0 skipped of 10000 | "
                                f"report: {build_url}testReport/ (after the junit step)")
    assert view.tests == (9700, 300, 0)
    assert view.artifacts == tuple((PLAN.artifact(i)[0], len(PLAN.artifact(i)[1])) for i in range(PLAN.artifacts))
    assert view.check_runs == ((f"{RUN_NAME} ({JOB})", HEAD, "completed", "failure", "9700 passed, 300 failed, 0 skipped", 300),)
    assert view.statuses == (("coverage", "failure", "85.5% < 90%"), ("lint", "success", "no findings"))
    assert view.comments == (f"<!-- ci-sidecar:key={COMMENT_KEY} -->\n{PLAN.comments[-1]}",)
    roles = sorted((t["role"], t["provider"], t["kind"]) for t in out.run["targets"])
    assert roles == [("ci", "jenkins", "native"), ("ci", "local", "local"), ("scm", "github", "native")]
    jenkins_calls = world.jenkins.calls()
    assert len(jenkins_calls) <= 40, [(r.method, r.path) for r in jenkins_calls]
    assert len(world.github.calls()) <= 25, [(r.method, r.path) for r in world.github.calls()]


def test_thirty_percent_faults_change_nothing_on_jenkins_or_the_pull_request(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of requests to Jenkins and GitHub failing, both show what a fault-free run shows."""
    clean, clean_world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=0.3,
                                                                      seed=SEED_FAULTS, plan=PLAN)
    expected_view_of_the_clean_run(clean, clean_world)
    bad = [r for r in world.jenkins.calls() if r.status in (-1, 500, 502, 503)]
    assert any(r.status == -1 and r.method == "POST" for r in bad), "no lost description write"


def test_a_kill_9_halfway_changes_nothing_on_jenkins_or_the_pull_request(
        make_world: Callable[[float, int], World], scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-delivery: nothing goes out until the job's next step brings the tokens back, then
    Jenkins and the pull request end as after the fault-free run."""
    assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=0.3, seed=SEED_KILL, plan=PLAN)


def test_without_the_code_host_token_statuses_land_in_the_description_and_urls_follow_archiving(
        gh_spec: OpenApiSpec, short_tmp: Path, tmp_path: Path) -> None:
    """Through the daemon, a PR build with only the Jenkins credential: statuses become description lines (the
    code host cannot take them), the run has only the Jenkins target, and an artifact's URL is the local copy
    until ``archiveArtifacts`` ran, then the build's artifact URL."""
    with World(gh_spec) as world:
        env = {k: v for k, v in world.job_env(tmp_path).items() if k != "GITHUB_TOKEN"}
        daemon = DaemonProcess.start(short_tmp / "d.sock", scrubbed_env(short_tmp))
        try:
            c = connect(daemon, env)
            assert c.initialize_result is not None
            roles = c.initialize_result["capabilities"]["roles"]
            assert roles["scm"]["build_status"]["kind"] == "none" and roles["ci"]["build_status"]["kind"] == "native"
            c.request("set_build_status", {"state": "success", "context": "lint", "description": "clean",
                                           "wait": True})
            run_id = c.request("create_test_run", {"name": "unit tests"})["id"]
            c.request("report_results", {"test_run_id": run_id, "results": Plan(results=5, failures=1).batches()[0]})
            c.request("upload_artifact", {"test_run_id": run_id, "name": "logs/a.log", "wait": True,
                                          "content_base64": base64.b64encode(b"hello\n").decode()})
            before = c.request("get_artifact_url", {"test_run_id": run_id, "name": "logs/a.log"})["url"]
            run = c.request("complete_test_run", {"test_run_id": run_id, "wait": True})
            build = world.jenkins.build(JOB, NUMBER)
            world.jenkins.archive(build, world.workspace, "ci-sidecar-out/artifacts/**")
            deadline = time.monotonic() + 10  # a lookup's miss is remembered for 2 s
            while True:
                after = c.request("get_artifact_url", {"test_run_id": run_id, "name": "logs/a.log"})["url"]
                if not after.startswith("file://") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            daemon.stop()
        assert before.startswith("file://")
        assert after == f"{world.jenkins.build_url(JOB, NUMBER)}artifact/ci-sidecar-out/artifacts/{run_id}/logs/a.log"
        assert build.description.splitlines()[0] == "ci-sidecar | status lint | success: clean"
        assert build.description.splitlines()[1].startswith("ci-sidecar | unit tests | failure: 4 passed, 1 failed")
        assert sorted(t["provider"] for t in run["targets"]) == ["jenkins", "local"]
        assert world.github.calls() == []
        assert JENKINS_TOKEN not in daemon.log()
