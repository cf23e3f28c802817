"""A whole pull-request build on GitHub Actions, through the real daemon and the Python client: 10,000 results
(300 failing, with file and line) in batches of 100, a sticky comment updated once, 20 artifacts through the
Actions artifact service and two status contexts — against the spec-validating fakes.

With 30% of the requests failing (502/503/429/secondary limits/resets before the fake commits, lost answers
after it commits a create), and again with a kill -9 of the daemon halfway, the PR must end up looking
exactly like it does after a fault-free run in the same test: nothing missing, nothing duplicated.
The fault schedule is seeded per resource (``fakes._server.FaultDice``), so a failure here replays. The job
itself is the provider-neutral harness of :mod:`fakes.scenario`; this file supplies the GitHub world.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.delivery.policy import RetryPolicy
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import Outcome, ProviderEnv, SetStatus
from ci_sidecar.service.model import encode_record
from ci_sidecar.state import Journal
from fakes.github_scenario import HEAD, World
from fakes.scenario import JobResult, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing
from fakes.spec import OpenApiSpec

FAULTS = 0.3
# Fixed schedules that finish in seconds. Any seed must pass the same assertions, but with some the
# product's exponential backoff (1 s doubling to 120 s, counted over a write's failed attempts) makes a run
# take minutes: bench/bench_github.py reports that spread.
SEED_FAULTS = 8
SEED_KILL = 12
PLAN = Plan()


@pytest.fixture
def make_world(gh_spec: OpenApiSpec) -> Callable[[float, int], World]:
    """The GitHub fakes for one job: what the harness needs from this provider."""
    return lambda rate, seed: World(gh_spec, fault_rate=rate, seed=seed)


def expected_view_of_the_clean_run(out: JobResult, world: World) -> None:
    """What the fault-free run shows is right in itself, and cheap in calls."""
    view = out.view
    assert view.check_runs == (("unit tests (test)", HEAD, "completed", "failure", "9700 passed, 300 failed, 0 skipped", 300),)
    assert len(set(view.annotations)) == 300  # one per failure, at the failure's file and line
    assert {a[:2] for a in view.annotations} == {(f"tests/test_mod{i // 500}.py", 10 + i % 500)
                                                 for i in PLAN.failing()}
    assert view.comments == ("<!-- ci-sidecar:key=coverage -->\n" + PLAN.comments[-1],)
    assert view.statuses == (("coverage", "failure", "85.5% < 90%"), ("lint", "success", "no findings"))
    assert [name for name, _size in view.artifacts] == [f"test-logs_shard-{i:02d}.log" for i in range(20)]
    assert all(size > len(PLAN.artifact(i)[1]) for i, (_n, size) in enumerate(view.artifacts))  # zipped
    assert out.run["delivery"] == {"pending": 0, "failed": 0}
    # the whole run, live updates included, in at most 25 REST calls; 3 calls per artifact
    assert len(world.rest_calls()) <= 25, [(r.method, r.path) for r in world.rest_calls()]
    assert len(world.artifact_calls()) == 3 * PLAN.artifacts


def faults_really_happened(world: World) -> None:
    rest, art = world.rest_calls(), world.artifact_calls()
    rest_bad = [r for r in rest if r.status in (-1, 403, 429, 502, 503)]
    art_bad = [r for r in art if r.status in (-1, 429, 503)]
    assert len(rest_bad) >= 0.2 * len(rest) and len(art_bad) >= 0.2 * len(art), (len(rest_bad), len(rest))
    statuses = {r.status for r in rest_bad}
    assert {-1, 403, 429} <= statuses and statuses & {502, 503}, statuses  # reset/lost, secondary, 429, 5xx
    assert any(r.status == -1 and r.method == "POST" for r in rest_bad)  # a create made but its answer lost
    assert {-1, 429, 503} == {r.status for r in art_bad}


def test_thirty_percent_faults_change_nothing_a_person_sees(make_world: Callable[[float, int], World],
                                                            scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of requests failing the PR shows what a fault-free run shows: no loss, no duplicates."""
    clean, clean_world, faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=FAULTS,
                                                                     seed=SEED_FAULTS, plan=PLAN)
    expected_view_of_the_clean_run(clean, clean_world)
    faults_really_happened(world)
    github = next(t for t in faulty.run["targets"] if t["provider"] == "github")
    assert github["delivery"]["state"] == "delivered" and github["kind"] == "native"


def test_kill_9_halfway_resumes_with_the_jobs_token_and_duplicates_nothing(make_world: Callable[[float, int], World],
                                                                          scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed mid-delivery finishes the job's writes once its session is back, and only once."""
    _clean, _killed, world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=FAULTS, seed=SEED_KILL,
                                                           plan=PLAN)
    faults_really_happened(world)
    assert [r.status for r in world.rest.calls("POST", "/check-runs$")].count(201) <= 1


# --- what the scenario showed: a write that gets further on every attempt is not given up -------------


class Stepwise:
    """A provider double whose every attempt fails after doing one more step (like a check run's next
    50 annotations, or an artifact's blob before its finalize failed)."""

    name = "double"

    def __init__(self, steps: int, progress: bool = True) -> None:
        self.steps, self.progress, self.calls = steps, progress, 0

    def capabilities(self, env: ProviderEnv) -> Any:
        raise NotImplementedError

    async def deliver(self, op: Any, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        self.calls += 1
        done = int(remote.get("done", 0)) + (1 if self.progress else 0)
        if done >= self.steps:
            return Outcome.delivered(remote={"done": done})
        return Outcome.retry("HTTP 503 after a step", remote={"done": done})

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("progress", [True, False])
async def test_attempts_that_make_progress_do_not_use_up_the_attempt_limit(tmp_path: Path, progress: bool) -> None:
    """Twelve steps under a limit of four attempts: delivered when each attempt gets further, failed if not."""
    provider = Stepwise(12, progress)
    journal = Journal.open(tmp_path, "j")
    outbox = Outbox({"double": provider}, append=lambda r: journal.append(encode_record(r)), commit=journal.commit,
                    env_for=lambda entry, token: ProviderEnv(ci=CIContext(provider="local", sources={}), token=token),
                    policy=RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.005, budget_s=30))
    async with trio.open_nursery() as nursery:
        await nursery.start(outbox.run)
        entry = outbox.put(provider="double", target="status:x", op=SetStatus(state="success", context="c"))
        state = await outbox.wait(entry, 10)
        nursery.cancel_scope.cancel()
    if progress:
        assert state.state == "delivered" and provider.calls == 12
    else:
        assert state.state == "failed" and provider.calls == 4 and state.error and state.error.code == -31004
