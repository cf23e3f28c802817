"""The write budget on a virtual clock: final writes never wait for live updates, live updates thin out and
give way, mutating requests are serial and spaced, rate limits pause the token, a primary limit is waited for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.delivery.budget import LiveSchedule, TokenLane
from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.delivery.policy import RetryPolicy
from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers.base import Outcome, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.writes import WriteBudget, WriteDeferred

EPOCH = 1_800_000_000.0
REF = CredentialRef(provider="api", base_url=None, source="env:TOKEN", fingerprint="fp")


def wall() -> float:
    return EPOCH + trio.current_time()


class ApiDouble:
    """A provider whose every delivery is one mutating request through the write gate (250 ms each), answering
    with rate-limit headers from a shared hourly budget; scripted answers replace the next ones."""

    name = "api"

    def __init__(self, budget: WriteBudget | None = None, limit: int = 1000) -> None:
        self.budget = budget or WriteBudget(requests_per_hour=limit)
        self.limit = limit
        self.used = 0
        self.sent: list[tuple[float, str, bool]] = []  # (time, target, final)
        self.script: list[tuple[int, dict[str, str]]] = []
        self.active = 0
        self.max_active = 0

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        return self.budget

    def capabilities(self, env: ProviderEnv) -> Any:
        raise NotImplementedError

    async def deliver(self, op: Any, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        gate = env.writes
        assert gate is not None
        try:
            await gate.acquire()
        except WriteDeferred as deferred:
            return Outcome.deferred(deferred.reason, deferred.retry_after)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await trio.sleep(0.25)
            status, extra = self.script.pop(0) if self.script else (200, {})
            self.used += 1
            headers = {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
                       "x-ratelimit-reset": str(int(EPOCH + 3600)), **extra}
            if status in (403, 429):
                wait = float(extra["retry-after"]) if "retry-after" in extra else None
                if extra.get("x-ratelimit-remaining") == "0":
                    wait = float(extra["x-ratelimit-reset"]) - wall()
                gate.observe(headers, limited=True, retry_after=wait)
                return Outcome.retry("rate limited", status=status, retry_after=wait)
            gate.observe(headers)
            final = isinstance(op, PublishRun) and op.final
            self.sent.append((trio.current_time(), getattr(op, "run", None) and op.run.id or op.context, final))
            return Outcome.delivered()
        finally:
            self.active -= 1
            gate.release()

    async def aclose(self) -> None:
        pass


def make_outbox(provider: ApiDouble, logs: list[str] | None = None) -> Outbox:
    async def commit() -> None:
        pass

    def env_for(entry: Any, token: str | None) -> ProviderEnv:
        return ProviderEnv(ci=CIContext(provider="local", sources={}), token=token)

    outbox = Outbox({"api": provider}, append=lambda r: None, commit=commit, env_for=env_for, clock=wall,
                    policy=RetryPolicy(budget_s=1800), on_log=lambda e, m: (logs if logs is not None else []).append(m))
    outbox.credentials.add("fp", "secret")
    return outbox


def snap(run_id: str, n: int, final: bool = False) -> RunSnapshot:
    return RunSnapshot(id=run_id, name=run_id, status="finished" if final else "running", start_time="t",
                       output_dir="/nonexistent", counts=Counts(total=n, passed=n))


async def stream(outbox: Outbox, run_id: str, seconds: float, every: float = 0.5) -> None:
    """What report_results does while a run streams: a debounced live update per batch."""
    n = 0
    while trio.current_time() < seconds:
        await trio.sleep(every)
        n += 1
        outbox.put(provider="api", target=f"run:{run_id}", op=PublishRun(run=snap(run_id, n)), run_id=run_id,
                   credential=REF, delay_s=2.0)


async def complete(outbox: Outbox, run_id: str) -> tuple[float, str]:
    eid = outbox.put(provider="api", target=f"run:{run_id}", op=PublishRun(run=snap(run_id, 0, True), final=True),
                     run_id=run_id, credential=REF)
    return trio.current_time(), eid


async def test_final_write_is_sent_within_seconds_after_30_minutes_of_live_updates(autojump_clock: Any) -> None:
    """A run streaming for 30 minutes makes at most 120 writes and its completion goes out within 5 s."""
    api = ApiDouble()
    outbox = make_outbox(api)
    async with trio.open_nursery() as n:
        await n.start(outbox.run)
        await stream(outbox, "r1", 1800)
        done_at, eid = await complete(outbox, "r1")
        assert (await outbox.wait(eid, 600)).state == "delivered"
        n.cancel_scope.cancel()
    finals = [t for t, _, final in api.sent if final]
    assert len(finals) == 1 and finals[0] - done_at <= 5.0
    assert len(api.sent) <= 120
    gaps = [b - a for (a, *_), (b, *_) in zip(api.sent, api.sent[1:])]
    assert gaps[-5:-1] > gaps[:4]  # live updates thin out as the run ages


async def test_live_updates_stop_when_the_budget_is_short_but_the_final_goes(autojump_clock: Any) -> None:
    """With 5% of the hour's budget left (other jobs spent it), live updates are held back; the completion is not."""
    api = ApiDouble(limit=1000)
    api.used = 950
    outbox = make_outbox(api)
    async with trio.open_nursery() as n:
        await n.start(outbox.run)
        await stream(outbox, "r1", 120)
        live = len(api.sent)
        done_at, eid = await complete(outbox, "r1")
        assert (await outbox.wait(eid, 60)).state == "delivered"
        n.cancel_scope.cancel()
    assert live == 1  # the first write learns the budget from the headers; nothing live after that
    assert api.sent[-1][2] and api.sent[-1][0] - done_at <= 2.0
    assert outbox.budget_status()[0]["budget_used"] >= 0.95


async def test_final_writes_go_before_waiting_live_ones_and_requests_are_serial_and_spaced(autojump_clock: Any) -> None:
    """Eight runs' updates through one token: one request at a time, ≥ 1 s apart, completions first."""
    api = ApiDouble()
    outbox = make_outbox(api)
    async with trio.open_nursery() as n:
        await n.start(outbox.run)
        for i in range(8):
            outbox.put(provider="api", target=f"status:{i}", op=SetStatus(state="pending", context=f"c{i}"),
                       credential=REF)
        await trio.sleep(0.1)
        _, eid = await complete(outbox, "final")
        assert (await outbox.wait(eid, 60)).state == "delivered"
        await trio.sleep(30)
        n.cancel_scope.cancel()
    assert api.max_active == 1
    starts = [t - 0.25 for t, *_ in api.sent]
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(starts, starts[1:]))
    assert [f for *_, f in api.sent].index(True) <= 1  # at most the request already in flight went first
    assert len(api.sent) == 9  # the live ones went too, later


async def test_a_limit_without_retry_after_pauses_the_token_for_a_minute(autojump_clock: Any) -> None:
    """429 without retry-after: the next request with that token goes no sooner than 60 s later."""
    api = ApiDouble()
    api.script = [(429, {})]
    outbox = make_outbox(api)
    async with trio.open_nursery() as n:
        await n.start(outbox.run)
        eid = outbox.put(provider="api", target="status:x", op=SetStatus(state="success", context="x"),
                         credential=REF)
        assert (await outbox.wait(eid, 300)).state == "delivered"
        n.cancel_scope.cancel()
    assert api.sent[0][0] >= 60.0


async def test_a_primary_limit_resetting_in_40_minutes_is_waited_for_and_said(autojump_clock: Any) -> None:
    """The hour's budget is gone: the completion stays pending (said once, with the time), then goes at the reset."""
    api = ApiDouble()
    reset = wall() + 2400
    api.script = [(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset))})]
    logs: list[str] = []
    outbox = make_outbox(api, logs)
    async with trio.open_nursery() as n:
        await n.start(outbox.run)
        _, eid = await complete(outbox, "r1")
        assert (await outbox.wait(eid, 60)).state == "pending"
        assert len(logs) == 1 and "rate limit" in logs[0] and "stays pending" in logs[0]
        assert (await outbox.wait(eid, 3600)).state == "delivered"
        n.cancel_scope.cancel()
    assert api.sent[0][0] >= 2400 - 1


def test_live_spacing_grows_with_age_and_budget_used() -> None:
    """2 s for a young run, tens of seconds after ten minutes, and slower again when the budget runs low."""
    budget = WriteBudget()
    schedule = LiveSchedule(first=0.0)
    assert schedule.spacing(budget, 10.0, 0.0) == 2.0
    assert 20.0 <= schedule.spacing(budget, 600.0, 0.0) <= 60.0
    assert schedule.spacing(budget, 600.0, 0.8) > 2 * schedule.spacing(budget, 600.0, 0.0)
    assert schedule.spacing(budget, 10 * 3600.0, 0.0) == budget.live_spacing_max_s


async def test_a_live_request_gives_way_to_a_waiting_final_one(autojump_clock: Any) -> None:
    """While a final request waits for the lane, a live one is deferred instead of going first."""
    lane = TokenLane(WriteBudget(), wall)
    await lane.acquire(final=True)
    outcomes: list[str] = []

    async def final() -> None:
        await lane.acquire(final=True)
        outcomes.append("final")
        lane.release()

    async def live() -> None:
        try:
            await lane.acquire(final=False)
            outcomes.append("live")
            lane.release()
        except WriteDeferred:
            outcomes.append("live deferred")

    async with trio.open_nursery() as n:
        n.start_soon(final)
        await trio.sleep(0.1)
        n.start_soon(live)
        await trio.sleep(0.1)
        lane.release()
    assert outcomes == ["live deferred", "final"]
