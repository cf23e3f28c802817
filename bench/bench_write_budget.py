"""Live updates against GitHub's budgets: total writes, and how long the final write waits after completion.

    python bench/bench_write_budget.py [--minutes 17,20,30] [--jobs 1,4]

A run streams results (5 every 0.5 s, one failure in 50) for the given number of minutes on trio's
``MockClock`` (virtual time: 30 minutes take a few seconds), then completes. It goes through the real
outbox and the real GitHub provider, whose HTTP client talks to an in-process model of the GitHub REST API
(``httpx.MockTransport``, 250 ms per request) with GitHub's budgets: 1,000 requests an hour per repository
for an Actions token shared by every job (``x-ratelimit-*`` headers, 403 "API rate limit exceeded" at 0),
and the secondary limit on content creation (80 a minute, 500 an hour: 403 with ``retry-after: 60``).
``--jobs 4`` runs four jobs of a matrix at once, each with its own daemon, sharing the repository budget.

Baseline, in the same run: the delivery as it was before write budgets (every write in arrival order, paced
only by the HTTP layer's 80/min and 500/h windows). Prints per case: writes (mutating requests) per run
and per hour per run, all requests, 403s, and the delay of the final write from completion to the
``completed`` check run — goal: within 5 s, at most 120 writes an hour per run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci_sidecar.credentials import CredentialRef  # noqa: E402
from ci_sidecar.delivery.budget import AttemptGate  # noqa: E402
from ci_sidecar.delivery.entries import Entry  # noqa: E402
from ci_sidecar.delivery.outbox import Outbox  # noqa: E402
from ci_sidecar.protocol.records import CIContext, Counts, TestResult  # noqa: E402
import ci_sidecar.providers._http.classify  # noqa: E402
import ci_sidecar.providers._http.pacing  # noqa: E402
import ci_sidecar.providers._http.session  # noqa: E402
from ci_sidecar.providers import _http  # noqa: E402
from ci_sidecar.providers.base import ProviderEnv, PublishRun, RunSnapshot  # noqa: E402
from ci_sidecar.providers.github import GitHubProvider  # noqa: E402

EPOCH = 1_800_000_000.0  # the virtual wall clock starts here
LATENCY_S = 0.25
REPO_BUDGET = 1000
SECONDARY = ((80, 60.0), (500, 3600.0))
TOKEN = "ghs_benchmarktoken"


def wall() -> float:
    return EPOCH + trio.current_time()


@dataclass
class GitHubModel:
    """The REST API as far as a check run's writes and GitHub's budgets go (one repository)."""

    window_start: float | None = None
    used: int = 0
    writes: list[float] = field(default_factory=list)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    completed_at: dict[str, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    next_id: int = 1

    def headers(self, now: float) -> dict[str, str]:
        assert self.window_start is not None
        return {"x-ratelimit-limit": str(REPO_BUDGET), "x-ratelimit-remaining": str(max(0, REPO_BUDGET - self.used)),
                "x-ratelimit-used": str(self.used), "x-ratelimit-reset": str(int(self.window_start + 3600)),
                "x-ratelimit-resource": "core", "content-type": "application/json"}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await trio.sleep(LATENCY_S)
        now = wall()
        if self.window_start is None or now >= self.window_start + 3600:
            self.window_start, self.used = now, 0
        method, path = request.method, request.url.path
        if self.used >= REPO_BUDGET:
            self.calls["403 primary"] += 1
            return httpx.Response(403, headers=self.headers(now), json={
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
        self.used += 1
        if method != "GET":
            for limit, window in SECONDARY:
                if sum(1 for t in self.writes if t > now - window) >= limit:
                    self.calls["403 secondary"] += 1
                    return httpx.Response(403, headers={**self.headers(now), "retry-after": "60"}, json={
                        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
                                   "you try again."})
            self.writes.append(now)
        self.calls[f"{method} {path.rsplit('/', 1)[0] if method == 'PATCH' else path}"] += 1
        if method == "GET":
            return httpx.Response(200, headers=self.headers(now), json={"total_count": 0, "check_runs": []})
        body = json.loads(request.content)
        if method == "POST":
            check_id, self.next_id = self.next_id, self.next_id + 1
            self.names[check_id] = body["external_id"]
        else:
            check_id = int(path.rsplit("/", 1)[1])
        if body.get("status") == "completed":
            self.completed_at.setdefault(self.names[check_id], now)
        return httpx.Response(200 if method == "PATCH" else 201, headers=self.headers(now), json={
            "id": check_id, "html_url": f"https://github.com/o/r/runs/{check_id}", "status": body.get("status"),
            "output": {"annotations_count": 0}})


class TodayOutbox(Outbox):
    """The delivery before write budgets: no live updates, no gate (the HTTP layer's pacer paces)."""

    def _is_live(self, entry: Entry) -> bool:
        return False

    def _gate(self, entry: Entry, env: ProviderEnv, live: bool) -> AttemptGate | None:
        return None


@dataclass
class Case:
    writes_per_run: float
    requests: int
    limited: int
    final_delay_s: list[float]
    calls: collections.Counter[str]


async def one_job(model: GitHubModel, job: int, minutes: float, budgeted: bool) -> float:
    """One job's daemon: stream results, complete, wait for the final write; the delay of the final write."""
    provider = GitHubProvider()
    client = httpx.AsyncClient(transport=httpx.MockTransport(model.handle), headers=provider._http._headers)
    provider._http.client = lambda config: client  # type: ignore[method-assign]
    results: list[TestResult] = []

    async def read_results(run_id: str, start: int, end: int) -> Any:
        for r in results[start:end]:
            yield r

    ci = CIContext(provider="github", sources={}, repository="o/r", head_sha="a" * 40)

    def env_for(entry: Entry, token: str | None) -> ProviderEnv:
        return ProviderEnv(ci=ci, config={}, base_url="https://api.github.com", token=token,
                           read_results=read_results)

    async def commit() -> None:
        pass

    cls = Outbox if budgeted else TodayOutbox
    outbox = cls({"github": provider}, append=lambda r: None, commit=commit, env_for=env_for, clock=wall)
    ref = CredentialRef(fingerprint=f"fp{job}", provider="github", base_url=None, source="env:GITHUB_TOKEN")
    outbox.credentials.add(f"fp{job}", TOKEN)
    run_id = f"run-{job}"
    start = wall()

    def snapshot(final: bool) -> RunSnapshot:
        failed = sum(1 for r in results if r.status == "failed")
        counts = Counts(total=len(results), passed=len(results) - failed, failed=failed)
        end = _http_time(wall()) if final else None
        return RunSnapshot(id=run_id, name=f"tests ({job})", status="finished" if final else "running",
                           conclusion=("failure" if failed else "success") if final else None,
                           start_time=_http_time(start), end_time=end, counts=counts, output_dir="/nonexistent",
                           results_end=len(results), repository="o/r", head_sha="a" * 40)

    def put(final: bool, delay: float) -> str:
        return outbox.put(provider="github", target=f"run:{run_id}", op=PublishRun(run=snapshot(final), final=final),
                          run_id=run_id, ci=ci, credential=ref, delay_s=delay)

    async with trio.open_nursery() as nursery:
        await nursery.start(outbox.run)
        put(False, 0.0)
        n = 0
        while wall() - start < minutes * 60:
            await trio.sleep(0.5)
            for _ in range(5):
                n += 1
                results.append(TestResult(name=f"test_{n}", status="failed" if n % 50 == 0 else "passed",
                                          classname="suite", file="tests/test_x.py", line=n % 400 + 1,
                                          message="assert 1 == 2" if n % 50 == 0 else None))
            put(False, 2.0)  # what report_results does: a debounced live update
        completed = wall()
        final = put(True, 0.0)
        await outbox.wait(final, 7200)
        nursery.cancel_scope.cancel()
    await client.aclose()
    return model.completed_at.get(run_id, float("inf")) - completed


def _http_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def run_case(minutes: float, jobs: int, budgeted: bool) -> Case:
    model = GitHubModel()
    delays: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for job in range(jobs):
                async def one(job: int = job) -> None:
                    delays.append(await one_job(model, job, minutes, budgeted))
                nursery.start_soon(one)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finished = [d for d in delays if d != float("inf")]
    span_h = max(1.0, (minutes * 60 + max(finished, default=0.0)) / 3600)
    return Case(writes_per_run=len(model.writes) / jobs / span_h, requests=sum(
        v for k, v in model.calls.items() if not k.startswith("403")) + model.calls["403 primary"]
        + model.calls["403 secondary"], limited=model.calls["403 primary"] + model.calls["403 secondary"],
        final_delay_s=delays, calls=model.calls)


def _delay(delays: list[float]) -> str:
    failed = sum(1 for d in delays if d == float("inf"))
    done = [d for d in delays if d != float("inf")]
    text = f"{max(done):.1f} s" if done else ""
    if failed:
        text += f"{', ' if text else ''}{failed} of {len(delays)} never completed (failed after retries)"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="17,30,60")
    ap.add_argument("--jobs", default="1,4")
    args = ap.parse_args()
    # the HTTP layer reads the wall clock for rate-limit resets and its pacer: give it the virtual one
    virtual = types.SimpleNamespace(time=wall, monotonic=trio.current_time)
    for module in (_http.classify, _http.pacing, _http.session):
        module.time = virtual  # type: ignore[attr-defined]
    print("writes/h/run: mutating requests per run per hour (goal <= 120); final delay: completion to the "
          "completed check run (goal <= 5 s)")
    for jobs in [int(j) for j in args.jobs.split(",") if j]:
        for minutes in [float(m) for m in args.minutes.split(",") if m]:
            before = run_case(minutes, jobs, budgeted=False)
            after = run_case(minutes, jobs, budgeted=True)
            worst_before, worst_after = max(before.final_delay_s), max(after.final_delay_s)
            ratio = (f"final delay {worst_before / max(worst_after, 0.01):.0f}x shorter"
                     if worst_before != float("inf") else "")
            print(f"{jobs} job(s), {minutes:.0f} min streaming:\n"
                  f"  before: {before.writes_per_run:.0f} writes/h/run, {before.requests} requests, "
                  f"{before.limited} rate limited, final delay {_delay(before.final_delay_s)}\n"
                  f"  budget: {after.writes_per_run:.0f} writes/h/run, {after.requests} requests, "
                  f"{after.limited} rate limited, final delay {_delay(after.final_delay_s)}  {ratio}")


if __name__ == "__main__":
    main()
