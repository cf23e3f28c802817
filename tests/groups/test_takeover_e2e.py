"""The shard publishing a group killed -9 at the worst moment: after the provider made the group's object and
before the shard recorded its id. Real shard daemons on moto's S3 server; the fake provider makes the object,
then holds its answer until the test has killed the publisher.

On GitHub another shard takes the publication over once the dead shard's lease runs out; on Azure DevOps the
restarted shard takes its own lease back at once. Either way the new publisher finds the object instead of
creating a second one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ci_sidecar.service.groups.lease import LEASE_S
from fakes import azure_scenario
from fakes.github_scenario import PR, World
from fakes.shards import CreateThenHang, Job, Shards, group_doc, group_folder, shard_results, wait_doc, wait_final
from fakes.spec import OpenApiSpec
from s3_fixtures import DUMMY_KEY, REGION, FaultProxy, Moto, moto  # noqa: F401

PER_SHARD = 200
FAILURES = 2 * len([i for i in range(PER_SHARD) if i % 20 == 7])


def kill_the_publisher(moto: Moto, bucket: str, jobs: list[Job],  # noqa: F811
                       hang: CreateThenHang) -> tuple[Job, str]:
    """Both shards report; once the provider made the object, kill -9 the shard holding the lease (the one that
    asked for it), then let the provider's answer go (lost: nobody is listening). The victim and the group's
    folder."""
    for job in jobs:
        job.start()
        job.report()
    assert hang.created.wait(30), "the provider's object was never created"
    try:
        folder = group_folder(moto.client(), bucket)
        doc = group_doc(moto.client(), bucket, folder)
        assert doc is not None and doc["publishing"], doc  # the claim went out with the lease, before the create
        victim = next(j for j in jobs if j.run_id == doc["lease_holder"])
        victim.kill()
    finally:
        hang.release.set()
    return victim, folder


def test_a_github_publisher_killed_after_the_create_is_taken_over_within_a_lease(
        gh_spec: OpenApiSpec, moto: Moto, store: tuple[FaultProxy, str], short_tmp: Path) -> None:  # noqa: F811
    """The other shard takes the dead publisher's turn once its lease runs out (seconds, not a minute), finds
    the check run the dead one made, and the restarted shard completes it: one check run, exact counts, one
    annotation per failure, one final conclusion."""
    proxy, bucket = store
    key = "wf-5151:test"
    s3 = moto.client()
    with World(gh_spec) as world:
        hang = CreateThenHang(world.rest, "POST", r"/check-runs$")
        with Shards(short_tmp, proxy.url, bucket, world, region=REGION, key=DUMMY_KEY) as shards:
            jobs = [Job(shards, key, n, 2, shard_results(n, PER_SHARD)) for n in range(2)]
            victim, folder = kill_the_publisher(moto, bucket, jobs, hang)
            killed = time.monotonic()
            survivor = next(j for j in jobs if j is not victim)
            survivor.complete()
            wait_doc(s3, bucket, folder, lambda d: d["lease_holder"] != victim.run_id, LEASE_S + 10)
            takeover = time.monotonic() - killed
            assert takeover < LEASE_S + 2, takeover  # the dead shard's lease ran out, then at most a poll
            print(f"takeover after kill -9: {takeover:.2f} s (lease {LEASE_S:.0f} s)")
            recorded = wait_doc(s3, bucket, folder, lambda d: d["remote"].get("github", {}).get("check_run_id"), 30)
            assert recorded["publishing"] == []
            victim.start()  # the restarted job joins its run (its results were acknowledged before the kill)
            victim.complete()
            doc = wait_final(s3, bucket, folder, 60)
            checks = world.rest.check_runs()
            assert len(checks) == 1, checks
            assert checks[0]["id"] == recorded["remote"]["github"]["check_run_id"]
            assert checks[0]["conclusion"] == "failure"
            assert checks[0]["output"]["title"] == f"{2 * PER_SHARD - FAILURES} passed, {FAILURES} failed, 0 skipped"
            assert len(world.rest.annotations(checks[0]["id"])) == FAILURES
            assert len(world.rest.comments(PR)) == 1
            assert doc["missing"] == [] and world.violations() == []
            completions = [r for r in world.rest_calls() if r.method == "PATCH" and "/check-runs/" in r.path
                           and isinstance(r.body, dict) and r.body.get("conclusion") and 200 <= r.status < 300]
            assert len(completions) == 1, completions


@pytest.mark.parametrize("window", [r"/test/runs$", r"/results$"], ids=["test-run-created", "results-added"])
def test_an_azure_publisher_killed_after_a_write_takes_its_own_lease_back(
        moto: Moto, store: tuple[FaultProxy, str], short_tmp: Path, window: str) -> None:  # noqa: F811
    """Killed right after Azure DevOps made the test run, or added a batch of results, the publishing shard's
    restarted daemon takes its own lease back without waiting for it to run out, finds the test run (by the
    marker in its comment) and counts the results it holds, and the group ends with one test run holding every
    result once."""
    proxy, bucket = store
    key = "build-77:test"
    s3 = moto.client()
    with azure_scenario.World() as world:
        hang = CreateThenHang(world.azure, "POST", window)
        with Shards(short_tmp, proxy.url, bucket, world, region=REGION, key=DUMMY_KEY) as shards:
            jobs = [Job(shards, key, n, 2, shard_results(n, PER_SHARD)) for n in range(2)]
            victim, folder = kill_the_publisher(moto, bucket, jobs, hang)
            killed = time.monotonic()
            victim.start()
            # the claim taken with the lease is cleared when a publication records what the provider learnt
            recorded = wait_doc(s3, bucket, folder, lambda d: not d["publishing"], 30)
            resumed = time.monotonic() - killed
            assert resumed < LEASE_S, resumed  # its own lease: no waiting for it to run out
            print(f"restarted publisher resumed after kill -9: {resumed:.2f} s (lease {LEASE_S:.0f} s)")
            assert "this shard's earlier daemon" in victim.daemon.log()
            for job in jobs:
                job.complete()  # the killed job's results were acknowledged before the kill: nothing to resend
            wait_final(s3, bucket, folder, 60)
            runs = world.azure.runs()
            assert len(runs) == 1, runs
            assert runs[0]["id"] == recorded["remote"]["azure"]["run_id"]
            assert runs[0]["state"] == "Completed" and runs[0]["totalTests"] == 2 * PER_SHARD
            names = [r["testCaseTitle"] for r in world.azure.results(runs[0]["id"])]
            assert sorted(names) == sorted(r["name"] for j in jobs for r in j.results)  # each once
            assert world.violations() == []
