"""The outbox against a provider double that fails on purpose: retries, Retry-After, coalescing,
per-target ordering, credentials after restart, delivery states that never lie."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.delivery.policy import RetryPolicy
from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.service.model import decode_record, encode_record
from ci_sidecar.state import Journal

FAST = RetryPolicy(max_attempts=4, base_s=0.01, cap_s=0.05, budget_s=30)


class ScriptedProvider:
    """Answers each attempt from a script of outcomes; records what it was asked."""

    name = "double"

    def __init__(self, script: list[Outcome] | None = None, delay: float = 0.0) -> None:
        self.script = list(script or [])
        self.calls: list[tuple[Any, str | None]] = []
        self.never_sent: list[bool] = []  # what each attempt was told
        self.delay = delay
        self.concurrent = 0
        self.max_concurrent_per_target: dict[str, int] = {}

    def capabilities(self, env: ProviderEnv) -> Any:
        raise NotImplementedError

    async def deliver(self, op: Any, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        self.calls.append((op, env.token))
        self.never_sent.append(env.never_sent)
        await trio.sleep(self.delay)
        return self.script.pop(0) if self.script else Outcome.delivered(remote={"n": len(self.calls)})

    async def aclose(self) -> None:
        pass


class Harness:
    def __init__(self, directory: Path, provider: ScriptedProvider, policy: RetryPolicy = FAST) -> None:
        self.journal = Journal.open(directory, "j")
        self.provider = provider
        self.outbox = Outbox({"double": provider}, append=lambda r: self.journal.append(encode_record(r)),
                             commit=self.journal.commit, env_for=self.env_for, policy=policy)

    def env_for(self, entry: Any, token: str | None) -> ProviderEnv:
        return ProviderEnv(ci=CIContext(provider="local", sources={}), token=token)


def snap(run_id: str = "r1", passed: int = 0) -> RunSnapshot:
    return RunSnapshot(id=run_id, name="n", status="running", start_time="t", output_dir="/tmp/x",
                       counts=Counts(total=passed, passed=passed))


async def test_retries_then_delivers(tmp_path: Path) -> None:
    p = ScriptedProvider([Outcome.retry("503"), Outcome.retry("reset"), Outcome.delivered()])
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="status:a", op=SetStatus(state="success", context="c"))
        state = await h.outbox.wait(eid, 5)
        assert state.state == "delivered" and len(p.calls) == 3
        n.cancel_scope.cancel()


async def test_refused_is_final_and_never_reported_delivered(tmp_path: Path) -> None:
    p = ScriptedProvider([Outcome.refused("Bad credentials", status=401)])
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="success", context="c"), run_id="r")
        state = await h.outbox.wait(eid, 5)
        assert state.state == "failed" and state.error.code == -31003 and state.error.data["status"] == 401
        assert h.outbox.summary(run_id="r").failed == 1 and len(p.calls) == 1
        n.cancel_scope.cancel()


async def test_gives_up_after_the_policy_with_31004(tmp_path: Path) -> None:
    p = ScriptedProvider([Outcome.retry("503")] * 10)
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="success", context="c"))
        state = await h.outbox.wait(eid, 5)
        assert state.error.code == -31004 and state.error.data["attempts"] == FAST.max_attempts
        n.cancel_scope.cancel()


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    p = ScriptedProvider([Outcome.retry("429", retry_after=0.4), Outcome.delivered()])
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        t0 = time.monotonic()
        eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="success", context="c"))
        await h.outbox.wait(eid, 5)
        assert time.monotonic() - t0 >= 0.39
        n.cancel_scope.cancel()


async def test_waiting_writes_to_one_target_are_coalesced(tmp_path: Path) -> None:
    p = ScriptedProvider()
    h = Harness(tmp_path, p)
    ids = {h.outbox.put(provider="double", target="run:r1", op=PublishRun(run=snap(passed=i)), delay_s=0.2)
           for i in range(50)}
    assert len(ids) == 1  # one logical write, one idempotency key
    final = h.outbox.put(provider="double", target="run:r1", op=PublishRun(run=snap(passed=50), final=True))
    assert final in ids
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        await h.outbox.wait(final, 5)
        n.cancel_scope.cancel()
    assert len(p.calls) == 1 and p.calls[0][0].run.counts.passed == 50 and p.calls[0][0].final


async def test_one_target_is_never_written_concurrently_and_keeps_order(tmp_path: Path) -> None:
    p = ScriptedProvider(delay=0.02)
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        ids = [h.outbox.put(provider="double", target="comment", op=PostComment(body=str(i), mode="create"))
               for i in range(5)]
        for eid in ids:
            await h.outbox.wait(eid, 5)
        n.cancel_scope.cancel()
    assert [c[0].body for c in p.calls] == ["0", "1", "2", "3", "4"]


async def test_credential_reference_waits_for_a_matching_token(tmp_path: Path) -> None:
    p = ScriptedProvider()
    h = Harness(tmp_path, p)
    ref = CredentialRef(provider="double", base_url="http://127.0.0.1", source="env:TOKEN", fingerprint="abc123")
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="success", context="c"), credential=ref)
        assert (await h.outbox.wait(eid, 0.3)).state == "pending" and not p.calls
        h.outbox.credentials.add("other", "not-this-one")
        assert (await h.outbox.wait(eid, 0.2)).state == "pending"
        h.outbox.credentials.add("abc123", "s3cret-token")
        assert (await h.outbox.wait(eid, 5)).state == "delivered"
        n.cancel_scope.cancel()
    assert p.calls[0][1] == "s3cret-token"
    raw = b"".join(h.journal.replay())
    assert b"s3cret-token" not in raw  # the journal holds the reference, never the secret


async def test_pending_writes_resume_after_a_restart(tmp_path: Path) -> None:
    p = ScriptedProvider()
    h = Harness(tmp_path, p)
    eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="failure", context="ci"))
    await h.journal.commit()
    h.journal.close()  # "crash": the dispatcher never ran

    h2 = Harness(tmp_path, p)
    for raw in h2.journal.replay():
        h2.outbox.apply(decode_record(raw))
    assert h2.outbox.state(eid).state == "pending"
    async with trio.open_nursery() as n:
        await n.start(h2.outbox.run)
        assert (await h2.outbox.wait(eid, 5)).state == "delivered"
        n.cancel_scope.cancel()
    assert p.calls[0][0].state == "failure"


async def test_only_a_writes_first_attempt_is_known_never_sent(tmp_path: Path) -> None:
    """A provider hears that a write cannot have reached it only on the write's first attempt in the daemon that
    took it: not on a retry, not after a restart (where a kill -9 mid-attempt leaves no trace in the journal)."""
    p = ScriptedProvider([Outcome.retry("answer lost"), Outcome.delivered()])
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="a", op=SetStatus(state="success", context="a"))
        assert (await h.outbox.wait(eid, 5)).state == "delivered"
        n.cancel_scope.cancel()
    resumed = h.outbox.put(provider="double", target="b", op=SetStatus(state="success", context="b"))
    await h.journal.commit()
    h.journal.close()

    h2 = Harness(tmp_path, p)
    for raw in h2.journal.replay():
        h2.outbox.apply(decode_record(raw))
    async with trio.open_nursery() as n:
        await n.start(h2.outbox.run)
        assert (await h2.outbox.wait(resumed, 5)).state == "delivered"
        n.cancel_scope.cancel()
    assert p.never_sent == [True, False, False]


async def test_provider_exception_is_retried_not_lost(tmp_path: Path) -> None:
    class Broken(ScriptedProvider):
        async def deliver(self, op: Any, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
            self.calls.append((op, None))
            if len(self.calls) == 1:
                raise RuntimeError("bug")
            return Outcome.delivered()

    p = Broken()
    h = Harness(tmp_path, p)
    async with trio.open_nursery() as n:
        await n.start(h.outbox.run)
        eid = h.outbox.put(provider="double", target="t", op=SetStatus(state="success", context="c"))
        assert (await h.outbox.wait(eid, 5)).state == "delivered" and len(p.calls) == 2
        n.cancel_scope.cancel()


def test_policy_backoff_is_bounded_and_respects_budget() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=1, cap_s=10, budget_s=100)
    delays = [policy.next_delay(n, None, 0) for n in range(1, 5)]
    assert all(d is not None and d <= 10 for d in delays)
    assert policy.next_delay(5, None, 0) is None
    assert policy.next_delay(1, 30, 0) == 30
    assert policy.next_delay(1, 30, 90) is None  # would overrun the budget
