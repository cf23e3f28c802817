"""The delivery outbox: every provider write is journaled before it is sent and removed when acknowledged.

* ``put`` records a write (the caller commits the journal before answering its client);
* a dispatcher task attempts due writes — never two at once for the same target, in arrival order
  per target — through the provider's single-attempt ``deliver``;
* outcomes go through :class:`~ci_sidecar.delivery.policy.RetryPolicy` (the only retry logic);
* writes of the same coalescible target (a run's state, a status context, a sticky comment) are merged:
  only the latest state is sent, under the first write's idempotency key (a write merged into one that is
  being sent makes it go once more with the newer state when the attempt ends);
* the write budget (:mod:`.budget`) decides when: final writes (a completion, a comment, an artifact)
  go first and are never held back by live updates; a live update (a running run's summary, a
  pending status) goes when its run's spacing and its token's budget allow, else stays one coalesced
  pending write; a rate-limited token holds everything back, a primary limit up to its reset;
* a write that needs a credential waits, after a restart, until a session or the daemon's own
  config supplies a token with the same fingerprint (the journal holds only the reference).

Nothing is reported delivered that was not: an entry leaves the outbox only on a delivered outcome.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from ci_sidecar.protocol.records import CIContext, DeliveryState, DeliverySummary, ErrorInfo, Undelivered
from ci_sidecar.providers.base import (
    CredentialRef,
    DeclaresWriteBudget,
    Operation,
    Outcome,
    PostComment,
    Provider,
    ProviderEnv,
    PublishRun,
    SetStatus,
)
from ci_sidecar.providers.writes import WriteBudget

from .budget import AttemptGate, LiveSchedule, TokenLane
from .entries import (
    CredentialPool,
    Entry,
    OutboxDone,
    OutboxFailed,
    OutboxImage,
    OutboxPut,
    OutboxRemote,
    undelivered,
)
from .handover import Handover
from .policy import RetryPolicy

__all__ = ["Entry", "OutboxPut", "OutboxDone", "OutboxFailed", "OutboxRemote", "OutboxImage", "Outbox", "CredentialPool"]

log = logging.getLogger("ci_sidecar.delivery")

_FINISHED_KEPT = 10_000
_PER_PROVIDER_CONCURRENCY = 4  # one of them is kept free of live updates for final writes
_TELL_WAIT_S = 30.0  # a final write held back longer than this is announced to the session
_UNDELIVERED_LISTED = 100


def _coalescible(op: Operation) -> bool:
    return isinstance(op, (PublishRun, SetStatus)) or (isinstance(op, PostComment) and op.key is not None)


def _merge(old: Operation, new: Operation) -> Operation:
    if isinstance(old, PublishRun) and isinstance(new, PublishRun):
        return msgspec.structs.replace(new, final=old.final or new.final)
    return new


def _live(op: Operation) -> bool:
    """A live update: best effort, spaced, replaced by the next state (a final write is none of these)."""
    return (isinstance(op, PublishRun) and not op.final) or (isinstance(op, SetStatus)
                                                             and op.state in ("pending", "running"))


class Outbox(Handover):
    """Pending provider writes, their dispatcher, and what is known about delivered targets."""

    def __init__(
        self,
        providers: dict[str, Provider],
        *,
        append: Callable[[Any], None],
        commit: Callable[[], Awaitable[None]],
        env_for: Callable[[Entry, str | None], ProviderEnv],
        policy: RetryPolicy | None = None,
        on_outcome: Callable[[Entry, Outcome | None, ErrorInfo | None], None] | None = None,
        on_log: Callable[[Entry, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        time_scale: float = 1.0,
    ) -> None:
        self.providers = providers
        self._clock = clock  # wall seconds (persisted times); a benchmark passes a virtual one
        #: config ``delivery_time_scale``: every wait of the delivery multiplied (tests against fakes only)
        self.time_scale = time_scale
        self.policy = policy or RetryPolicy(time_scale=time_scale)
        self.credentials = CredentialPool()
        self.credentials.listeners.append(self.wake)
        self._append = append
        self._commit = commit
        self._env_for = env_for
        self._on_outcome = on_outcome or (lambda e, o, err: None)
        self._on_log = on_log or (lambda e, m: None)
        self._pending: OrderedDict[str, Entry] = OrderedDict()
        #: why each pending write is still pending (its last attempt's failure), for summaries
        self._retrying: dict[str, str] = {}
        self._failed: OrderedDict[str, Entry] = OrderedDict()
        self._remote: dict[tuple[str, str], dict[str, Any]] = {}
        self._finished: OrderedDict[str, DeliveryState] = OrderedDict()
        self._events: dict[str, trio.Event] = {}
        self._inflight: set[str] = set()
        #: writes put by this process that no attempt has started on, known never sent (ProviderEnv.never_sent)
        self._unsent: set[str] = set()
        self._busy_targets: set[tuple[str, str]] = set()
        self._per_provider: dict[str, int] = {}
        self._wake = trio.Event()
        self.attempts_total = 0
        #: the write budget: per (provider, token fingerprint), per (provider, target) of live updates
        self.lanes: dict[tuple[str, str], TokenLane] = {}
        self._live: dict[tuple[str, str], LiveSchedule] = {}
        self._gates: dict[str, tuple[AttemptGate, Operation]] = {}  # in-flight attempts, by entry id
        self._urgent_sessions: set[str] = set()  # saying goodbye: their live updates go like final ones
        self._told: set[str] = set()  # final writes whose long wait the session was told about
        #: where pending writes are kept (the state directory), named in summaries
        self.location: str | None = None

    # --- recording writes --------------------------------------------------------------------

    def put(self, *, provider: str, target: str, op: Operation, run_id: str | None = None,
            session_id: str | None = None, ci: CIContext | None = None,
            credential: CredentialRef | None = None, config: dict[str, Any] | None = None,
            delay_s: float = 0.0) -> str:
        """Record a write (journal append; the caller commits). Returns the id that will carry it."""
        now = self._clock()
        if _coalescible(op):
            for existing in reversed(self._pending.values()):
                if existing.provider == provider and existing.target == target:
                    if type(existing.op) is not type(op):
                        break
                    existing.op = _merge(existing.op, op)
                    inflight = self._gates.get(existing.id)
                    if inflight is not None and not _live(existing.op):
                        inflight[0].preempt()  # a live attempt in flight sends nothing more: the final goes next
                    existing.not_before = min(existing.not_before, now + delay_s)
                    existing.session_id = session_id or existing.session_id
                    existing.credential = credential or existing.credential
                    existing.ci = ci or existing.ci
                    self._append(OutboxPut(existing))
                    self.wake()
                    return existing.id
        entry = Entry(id=uuid.uuid4().hex, provider=provider, target=target, op=op, run_id=run_id,
                      session_id=session_id, ci=ci, credential=credential, config=config or {},
                      created=now, not_before=now + delay_s)
        self._pending[entry.id] = entry
        self._unsent.add(entry.id)
        self._append(OutboxPut(entry))
        self.wake()
        return entry.id

    def wake(self) -> None:
        self._wake.set()

    # --- observing ----------------------------------------------------------------------------

    def state(self, entry_id: str) -> DeliveryState:
        if entry_id in self._pending:
            return DeliveryState(state="pending")
        if entry_id in self._failed:
            return DeliveryState(state="failed", error=self._failed[entry_id].error)
        return self._finished.get(entry_id, DeliveryState(state="delivered"))

    async def wait(self, entry_id: str, timeout_s: float) -> DeliveryState:
        """Wait until the write is delivered or failed, or the deadline passes (then: pending)."""
        if entry_id in self._pending:
            event = self._events.setdefault(entry_id, trio.Event())
            with trio.move_on_after(timeout_s):
                await event.wait()
        return self.state(entry_id)

    def summary(self, *, run_id: str | None = None, session_id: str | None = None) -> DeliverySummary:
        def match(e: Entry) -> bool:
            return (run_id is None or e.run_id == run_id) and (session_id is None or e.session_id == session_id)

        waiting = [e for e in self._pending.values() if match(e)]
        failed = [e for e in self._failed.values() if match(e)]
        last = failed[-1].error.message if failed and failed[-1].error else None
        retrying = [f"{e.provider}: {self._retrying[e.id]}" for e in waiting if e.id in self._retrying]
        if last is None and retrying:
            last = f"still retrying: {retrying[-1]}"
        summary = DeliverySummary(pending=len(waiting), failed=len(failed), last_error=last)
        if waiting or failed:
            now = self._clock()
            summary.undelivered = [self._describe(e, "pending", now) for e in waiting[:_UNDELIVERED_LISTED]]
            summary.undelivered += [self._describe(e, "failed", now)
                                    for e in failed[:_UNDELIVERED_LISTED - len(summary.undelivered)]]
            summary.kept_in = self.location if waiting else None
        return summary

    def _describe(self, e: Entry, state: str, now: float) -> Undelivered:
        blocked = e.credential is not None and self.credentials.get(e.credential) is None
        return undelivered(e, state, now, blocked=blocked, last_error=self._retrying.get(e.id) or None)

    def only_waiting_for_credentials(self) -> bool:
        """Something is pending, and every pending write waits for a credential nobody brought."""
        return bool(self._pending) and all(
            e.credential is not None and self.credentials.get(e.credential) is None for e in self._pending.values())

    def depth(self) -> dict[str, int]:
        return {"pending": len(self._pending), "failed": len(self._failed)}

    def remote(self, provider: str, target: str) -> dict[str, Any]:
        return self._remote.get((provider, target), {})

    async def flush_session(self, session_id: str, timeout_s: float) -> DeliverySummary:
        """Wait (bounded) until the session's writes are delivered or failed; debounced ones go now."""
        now = self._clock()
        for e in self._pending.values():
            if e.session_id == session_id and e.attempts == 0 and e.not_before > now:
                e.not_before = now  # a debounce delay is for live updates, not for a client saying goodbye
        self._urgent_sessions.add(session_id)  # its last live state is its final word
        self.wake()
        try:
            with trio.move_on_after(timeout_s):
                while any(e.session_id == session_id for e in self._pending.values()):
                    ids = [e.id for e in self._pending.values() if e.session_id == session_id]
                    for entry_id in ids:
                        await self.wait(entry_id, timeout_s)
        finally:
            self._urgent_sessions.discard(session_id)
        return self.summary(session_id=session_id)

    def budget_status(self) -> list[dict[str, Any]]:
        """For ``sidecar/status``: each token's writes, deferred live requests and budget used."""
        now = self._clock()
        return [{"provider": p, "token": fp, "writes": lane.writes, "live_deferred": lane.deferred,
                 "budget_used": round(lane.used_fraction(now), 3),
                 "blocked_s": round(max(lane.final_wait(now), 0.0), 1)}
                for (p, fp), lane in self.lanes.items()]

    # --- persistence ----------------------------------------------------------------------------

    def apply(self, record: Any) -> None:
        """Replay one journaled record (at start-up)."""
        if isinstance(record, OutboxPut):
            self._pending[record.entry.id] = record.entry  # a merged write's newer state replaces the older
        elif isinstance(record, OutboxDone):
            self._pending.pop(record.id, None)
            self._drop_failed_for(record.provider, record.target)
            if record.remote is not None:
                self._remote[(record.provider, record.target)] = record.remote
        elif isinstance(record, OutboxRemote):
            self._remote[(record.provider, record.target)] = record.remote
        elif isinstance(record, OutboxFailed):
            e = self._pending.pop(record.id, None)
            if e is not None:
                e.error = record.error
                self._failed[e.id] = e

    def image(self) -> OutboxImage:
        return OutboxImage(pending=list(self._pending.values()), failed=list(self._failed.values()),
                           remote=[(p, t, r) for (p, t), r in self._remote.items()])

    def load(self, image: OutboxImage) -> None:
        self._pending = OrderedDict((e.id, e) for e in image.pending)
        self._failed = OrderedDict((e.id, e) for e in image.failed)
        self._remote = {(p, t): r for p, t, r in image.remote}

    def _drop_failed_for(self, provider: str, target: str) -> None:
        for fid in [i for i, e in self._failed.items() if e.provider == provider and e.target == target]:
            del self._failed[fid]

    # --- dispatching ------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The dispatcher: attempts due writes until cancelled (pending ones resume after restart)."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = trio.Event()
                next_due = self._dispatch_due(nursery)
                timeout = max(0.0, next_due - self._clock()) if next_due is not None else math.inf
                with trio.move_on_after(timeout):
                    await self._wake.wait()

    def _is_live(self, entry: Entry) -> bool:
        return _live(entry.op) and entry.session_id not in self._urgent_sessions

    def _lane_key(self, entry: Entry) -> tuple[str, str]:
        return entry.provider, entry.credential.fingerprint if entry.credential is not None else "anonymous"

    def _lane(self, entry: Entry, env: ProviderEnv) -> TokenLane:
        key = self._lane_key(entry)
        lane = self.lanes.get(key)
        if lane is None:
            provider = self.providers.get(entry.provider)
            budget = provider.write_budget(env) if isinstance(provider, DeclaresWriteBudget) else WriteBudget()
            lane = self.lanes[key] = TokenLane(budget.scaled(self.time_scale), self._clock)
        return lane

    def _gate(self, entry: Entry, env: ProviderEnv, live: bool) -> AttemptGate | None:
        """The write gate of one attempt: the token's lane, as a final or a live write."""
        return AttemptGate(self._lane(entry, env), final=not live)

    def _live_due(self, entry: Entry, now: float) -> float:
        """When a live update may go: its run's spacing and its token's budget (never later than needed)."""
        lane = self.lanes.get(self._lane_key(entry))
        if lane is None:  # the token's first write: nothing known yet
            return now
        schedule = self._live.setdefault((entry.provider, entry.target), LiveSchedule(entry.created))
        return max(schedule.due(lane.budget, now, lane.used_fraction(now)), now + lane.live_wait(now))

    def _dispatch_due(self, nursery: trio.Nursery) -> float | None:
        now = self._clock()
        next_due: float | None = None
        heads: dict[tuple[str, str], Entry] = {}
        for entry in self._pending.values():
            heads.setdefault((entry.provider, entry.target), entry)  # later writes to a target wait for this one
        # final writes first: a live update never takes the place of one
        finals = [e for e in heads.values() if not self._is_live(e)]
        for entry in finals + [e for e in heads.values() if self._is_live(e)]:
            key = (entry.provider, entry.target)
            if entry.id in self._inflight or key in self._busy_targets:
                continue
            live = self._is_live(entry)
            due = max(entry.not_before, self._live_due(entry, now)) if live else entry.not_before
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            token = None
            if entry.credential is not None:
                token = self.credentials.get(entry.credential)
                if token is None:
                    continue  # waits for a session or config with a matching credential
            if self._per_provider.get(entry.provider, 0) >= _PER_PROVIDER_CONCURRENCY - live:
                continue
            if live:
                self._live.setdefault(key, LiveSchedule(entry.created)).sent(now)
            self._inflight.add(entry.id)
            self._busy_targets.add(key)
            self._per_provider[entry.provider] = self._per_provider.get(entry.provider, 0) + 1
            nursery.start_soon(self._attempt, entry, token, live)
        return next_due

    async def _attempt(self, entry: Entry, token: str | None, live: bool) -> None:
        key = (entry.provider, entry.target)
        provider = self.providers.get(entry.provider)
        op = entry.op
        outcome: Outcome
        try:
            if provider is None:
                outcome = Outcome.unsupported(f"provider {entry.provider} is not available in this build")
            else:
                entry.attempts += 1
                self.attempts_total += 1
                env = self._env_for(entry, token)
                gate = env.writes = self._gate(entry, env, live)
                env.never_sent = entry.id in self._unsent
                self._unsent.discard(entry.id)
                if gate is not None:
                    self._gates[entry.id] = (gate, op)
                outcome = await provider.deliver(op, env, dict(self._remote.get(key, {})))
        except Exception:  # a provider bug must not lose the write: retry it like an outage
            incident = uuid.uuid4().hex[:12]
            log.error("incident %s delivering %s to %s", incident, type(entry.op).__name__, entry.provider,
                      exc_info=True)
            outcome = Outcome.retry(f"internal error (incident {incident})")
        finally:
            self._gates.pop(entry.id, None)
            self._inflight.discard(entry.id)
            self._busy_targets.discard(key)
            self._per_provider[entry.provider] -= 1
        with trio.CancelScope(shield=True):
            await self._settle(entry, outcome, replaced=entry.op is not op)
        self.wake()

    def _hold(self, entry: Entry, outcome: Outcome, now: float) -> float | None:
        """Seconds the write budget holds this write back after ``outcome`` (None: the retry policy decides)."""
        if outcome.kind == "deferred":
            return max(0.0, outcome.retry_after or 0.0)
        lane = self.lanes.get(self._lane_key(entry))
        if lane is not None and outcome.kind == "retry" and outcome.status in (403, 429):
            exhausted = lane.exhausted_until(now)
            if exhausted is not None:  # a primary limit that resets within the hour: wait for it, don't fail
                return exhausted - now + 1.0
        return None

    def _tell_held(self, entry: Entry, outcome: Outcome, wait: float, now: float) -> None:
        """A final write held back for long: say what, why and until when, once per write."""
        if wait < _TELL_WAIT_S or self._is_live(entry) or entry.id in self._told:
            return
        self._told.add(entry.id)
        when = time.strftime("%H:%M:%S UTC", time.gmtime(now + wait))
        self._on_log(entry, f"{entry.provider}: the token's rate limit holds this write back until {when} "
                            f"(in {wait / 60:.0f} min); it is recorded and stays pending until then "
                            f"({outcome.message})")

    async def _settle(self, entry: Entry, outcome: Outcome, *, replaced: bool = False) -> None:
        """Record the outcome (journal, then the service's view), and only then tell waiters."""
        key = (entry.provider, entry.target)
        if entry.id not in self._pending:
            return
        now = self._clock()
        progressed = outcome.remote is not None and outcome.remote != self._remote.get(key, {})
        if outcome.remote is not None and outcome.kind in ("delivered", "retry", "deferred"):
            self._remote[key] = outcome.remote
        hold = self._hold(entry, outcome, now)
        if hold is not None or (replaced and outcome.kind in ("delivered", "retry", "refused")):
            # held back by the budget (not a failed attempt), or a newer state arrived during the attempt:
            # the entry stays pending and goes again with what it holds now
            if hold is not None:
                entry.attempts = max(0, entry.attempts - 1)
                entry.held_s += hold
                entry.not_before = now + hold
                self._tell_held(entry, outcome, hold, now)
            else:
                entry.attempts = 0
                entry.not_before = now
            if outcome.remote is not None:
                self._append(OutboxRemote(provider=entry.provider, target=entry.target, remote=outcome.remote))
                await self._commit_quietly()
            return
        error: ErrorInfo | None = None
        if outcome.kind == "retry":
            if progressed:
                # the attempt got further than the last one (a batch of annotations, an uploaded blob): the
                # provider works, so backoff and the attempt limit count from here (budget_s still bounds it)
                entry.attempts = 1
            if outcome.remote is not None:
                self._append(OutboxRemote(provider=entry.provider, target=entry.target, remote=outcome.remote))
            delay = self.policy.next_delay(entry.attempts, outcome.retry_after, now - entry.created - entry.held_s)
            if delay is not None:
                lane = self.lanes.get(self._lane_key(entry))
                if lane is not None:  # a rate-limited token: nothing goes before the pause ends
                    delay = max(delay, lane.final_wait(now))
                entry.not_before = now + delay
                first = entry.id not in self._retrying
                self._retrying[entry.id] = outcome.message
                if first or delay >= 5:  # the client hears why it may have to wait, once and for long waits
                    self._on_log(entry, f"{entry.provider}: {outcome.message}; retrying in {delay:.1f} s")
                log.warning("%s %s: %s; retry %d in %.1f s", entry.provider, entry.target, outcome.message,
                            entry.attempts, delay)
                if outcome.remote is not None:
                    await self._commit_quietly()
                return
            error = ErrorInfo(code=-31004, message=f"{entry.provider} unreachable after {entry.attempts} attempts: "
                              f"{outcome.message}", data={"provider": entry.provider, "attempts": entry.attempts,
                                                          "last_error": outcome.message})
        elif outcome.kind == "refused":
            error = ErrorInfo(code=-31003, message=f"{entry.provider} refused: {outcome.message}",
                              data={"provider": entry.provider, "status": outcome.status, "message": outcome.message})
        elif outcome.kind == "unsupported":
            error = ErrorInfo(code=-31007, message=outcome.message or f"{entry.provider} cannot do this",
                              data={"provider": entry.provider, "operation": type(entry.op).__name__,
                                    "tier": outcome.tier or "none"})
        del self._pending[entry.id]
        self._told.discard(entry.id)
        self._retrying.pop(entry.id, None)
        if not _live(entry.op):
            self._live.pop(key, None)  # the target's final state is settled: its live schedule is done
        if error is None:
            self._drop_failed_for(*key)
            self._append(OutboxDone(id=entry.id, provider=entry.provider, target=entry.target,
                                    remote=outcome.remote))
            final = DeliveryState(state="delivered")
        else:
            entry.error = error
            self._failed[entry.id] = entry
            self._append(OutboxFailed(id=entry.id, error=error))
            final = DeliveryState(state="failed", error=error)
            self._on_log(entry, error.message)
            log.warning("%s %s failed: %s", entry.provider, entry.target, error.message)
        self._on_outcome(entry, outcome, error)
        await self._commit_quietly()
        self._finish(entry.id, final)

    async def _commit_quietly(self) -> None:
        try:
            await self._commit()
        except Exception:
            log.exception("could not journal a delivery outcome; it will be retried after restart")

    def _finish(self, entry_id: str, state: DeliveryState) -> None:
        self._finished[entry_id] = state
        while len(self._finished) > _FINISHED_KEPT:
            self._finished.popitem(last=False)
        event = self._events.pop(entry_id, None)
        if event is not None:
            event.set()
