"""A run's in-memory state, its persistence (journal, snapshot, recovery), its views, and publishing it to
its targets through the outbox."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import trio

from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import CommentRef, Counts, DeliveryState, Target, TestResult, TestRun
from ci_sidecar.providers.base import PublishRun, RunSnapshot
from ci_sidecar.state import RecordStore

from ..model import GroupMeta, ResultsAdded, RunDeleted, RunImage, RunMeta, RunSaved, StateImage
from ..history import RunHistory
from ..session_context import SessionContext
from ..store import StateStore
from ..tally import Tally

__all__ = ["RunCore", "RunState", "StateHook", "now_iso"]

log = logging.getLogger("ci_sidecar.runs")

_decode_result = msgspec.msgpack.Decoder(TestResult).decode


def now_iso(ts: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_iso(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise E.InvalidParams("$.since", f"not an ISO 8601 time: {value!r}") from None


async def _never_concluded(ctx: SessionContext, group: GroupMeta) -> str | None:
    """Without a group service, no group is known to have concluded."""
    return None


class StateHook(Protocol):
    """A service that keeps its own records in the run journal and snapshot (artifacts)."""

    def load_image(self, image: StateImage) -> None: ...
    def replay(self, record: Any) -> bool: ...  # True when the record was the hook's
    def recovered(self) -> None: ...
    def fill_image(self, image: StateImage) -> None: ...
    def run_deleted(self, run_id: str) -> None: ...


@dataclass
class RunState:
    meta: RunMeta
    tally: Tally = field(default_factory=Tally)
    #: outbox entry of the latest publication per target provider
    publications: dict[str, str] = field(default_factory=dict)
    #: (label, style, status) of the run's latest explicit render_badge: the badge written when the run's
    #: reports are (re)written keeps them, so it never replaces the caller's badge with a different one
    badge: tuple[str, str, str | None] | None = None


class RunCore:
    """The runs the daemon knows, and what every run method shares: persistence, views, publishing."""

    def __init__(self, store: StateStore, outbox: Outbox, *, abandon_timeout_s: float = 21600.0,
                 retention_max_runs: int = 1000, retention_max_age_s: float = 30 * 86400.0) -> None:
        self.store = store
        self.outbox = outbox
        self.runs: dict[str, RunState] = {}
        self.by_external: dict[str, str] = {}
        self.abandon_timeout_s = abandon_timeout_s
        self.retention_max_runs = retention_max_runs
        self.retention_max_age_s = retention_max_age_s
        self._next_seq = 1
        #: set when the journal has grown enough for a checkpoint (the maintenance task waits on it)
        self.checkpoint_wanted = trio.Event()
        #: get_test_run_status read-backs per (run, provider): (valid until, what the provider said)
        self._read_cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        #: outcomes of comment writes, for answering a caller that waited (bounded by _remember)
        self._comment_outcomes: dict[str, CommentRef] = {}
        #: other services' persisted state (artifacts): see :class:`StateHook`
        self.hooks: list[StateHook] = []
        #: where finished runs are recorded and compared with their base (None: no history)
        self.history: RunHistory | None = None
        #: called when a run has finished, before its completion is committed (the notification rules)
        self.on_finished: Callable[[RunState, SessionContext | None], None] | None = None
        #: a grouped shard run got results or finished (the group service syncs it to the store)
        self.group_changed: Callable[[RunState], None] = lambda state: None
        #: a grouped shard run was created or joined again (the group service starts its task)
        self.group_attach: Callable[[SessionContext, RunState, str], None] = lambda ctx, state, provider: None
        #: why a new shard cannot join its group (the group concluded already), or None: it may
        self.group_concluded: Callable[[SessionContext, GroupMeta], Awaitable[str | None]] = _never_concluded

    # --- persistence ------------------------------------------------------------------------

    def recover(self) -> None:
        """Rebuild the in-memory view from the newest snapshot and the journal after it."""
        image, records = self.store.recover()
        next_seq = 1
        if image is not None:
            next_seq = image.next_seq
            for ri in image.runs:
                self.runs[ri.meta.id] = RunState(ri.meta, ri.tally)
                self.store.open_records(ri.meta.id, ri.results_size)
            self.outbox.load(image.outbox)
            for hook in self.hooks:
                hook.load_image(image)
        fresh: set[str] = set()
        for record in records:
            if isinstance(record, RunSaved):
                meta = record.meta
                state = self.runs.get(meta.id)
                if state is None:
                    state = self.runs[meta.id] = RunState(msgspec.structs.replace(meta, results_count=0))
                    # the record file may hold unacknowledged appends: start it empty, the journal refills it
                    self.store.open_records(meta.id, self._empty_size())
                    fresh.add(meta.id)
                else:
                    state.meta = msgspec.structs.replace(meta, results_count=state.meta.results_count)
                next_seq = max(next_seq, meta.seq + 1)
            elif isinstance(record, ResultsAdded):
                state = self.runs.get(record.run_id)
                if state is not None:
                    self._apply_results(state, record.items)
            elif isinstance(record, RunDeleted):
                self.runs.pop(record.run_id, None)
                self.store.drop_records(record.run_id)
            elif not any(hook.replay(record) for hook in self.hooks):
                self.outbox.apply(record)
        self._next_seq = next_seq
        for rid, state in self.runs.items():
            if state.meta.status == "finished":
                self.store.park_records(rid)  # retained runs hold no descriptors
                state.tally.compact()
        self.by_external = {s.meta.external_id: rid for rid, s in self.runs.items() if s.meta.external_id}
        if self.runs:
            log.info("recovered %d run(s), %d pending delivery(ies)", len(self.runs), self.outbox.depth()["pending"])
        for hook in self.hooks:
            hook.recovered()

    @staticmethod
    def _empty_size() -> int:
        return RecordStore.EMPTY

    def image(self) -> StateImage:
        runs = []
        for rid, state in self.runs.items():
            runs.append(RunImage(meta=state.meta, tally=state.tally, results_size=self.store.records(rid).size))
        image = StateImage(runs=runs, outbox=self.outbox.image(), next_seq=self._next_seq)
        for hook in self.hooks:
            hook.fill_image(image)
        return image

    def _take_seq(self) -> int:
        """Creation order of runs (for listing); never part of a run's id."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _save(self, state: RunState) -> None:
        self.store.append(RunSaved(state.meta))

    # --- views --------------------------------------------------------------------------------

    def _require(self, run_id: str) -> RunState:
        state = self.runs.get(run_id)
        if state is None:
            raise E.UnknownTestRun(run_id)
        return state

    def _require_open(self, run_id: str) -> RunState:
        state = self._require(run_id)
        if state.meta.status == "finished":
            raise E.RunFinalized(run_id)
        return state

    def counts(self, state: RunState) -> Counts:
        if state.tally.total or state.meta.summary is None:
            return state.tally.counts()
        return state.meta.summary

    def view(self, state: RunState) -> TestRun:
        m = state.meta
        duration = None
        if m.end_time is not None:
            duration = round(_parse_iso(m.end_time) - m.start_wall, 3)
        targets = []
        for t in m.targets:
            entry = state.publications.get(t.provider)
            targets.append(msgspec.structs.replace(t, delivery=self.outbox.state(entry)) if entry else t)
        for name, sent in m.notified.items():  # notification channels: the worst state of their writes
            states = [self.outbox.state(e) for e in sent.entries]
            worst = next((s for s in states if s.state == "failed"), None) \
                or next((s for s in states if s.state == "pending"), None) or DeliveryState(state="delivered")
            targets.append(Target(role="notify", provider=name, kind=sent.kind, delivery=worst))
        return TestRun(
            id=m.id, name=m.name, status=m.status, start_time=m.start_time, counts=self.counts(state),  # type: ignore[arg-type]
            delivery=self.outbox.summary(run_id=m.id), targets=targets, comments=list(m.comments),
            conclusion=m.conclusion, end_time=m.end_time, duration=duration,  # type: ignore[arg-type]
            external_id=m.external_id, note=m.note, output_dir=m.output_dir, coverage=m.coverage,
            delta=m.delta, shards=m.shards,
        )

    def snapshot(self, state: RunState) -> RunSnapshot:
        m = state.meta
        return RunSnapshot(
            id=m.id, name=m.name, status=m.status, conclusion=m.conclusion, start_time=m.start_time,  # type: ignore[arg-type]
            end_time=m.end_time, counts=self.counts(state), external_id=m.external_id,
            commit_sha=m.commit_sha, head_sha=m.head_sha, branch=m.branch, pr_number=m.pr_number,
            build_id=m.build_id, details_url=m.details_url, repository=m.repository,
            output_dir=m.output_dir, results_end=m.results_count, coverage=m.coverage,
            delta=m.delta, shards=m.shards,
        )

    # --- publishing -----------------------------------------------------------------------------

    def _publish(self, state: RunState, ctx: SessionContext | None, *, final: bool, delay_s: float = 0.0) -> list[str]:
        snap = self.snapshot(state)
        ids = []
        for target in state.meta.targets:
            if target.kind == "none":
                continue
            cred = ctx.credential_ref(target.provider) if ctx else None
            entry_id = self.outbox.put(
                provider=target.provider, target=f"run:{state.meta.id}", op=PublishRun(run=snap, final=final),
                run_id=state.meta.id, session_id=ctx.session_id if ctx else None, ci=state.meta.ci,
                credential=cred, config=ctx.provider_config(target.provider) if ctx else {}, delay_s=delay_s,
            )
            state.publications[target.provider] = entry_id
            ids.append(entry_id)
        return ids

    async def _wait(self, entry_ids: list[str], wait: bool, wait_s: float) -> DeliveryState:
        """The combined delivery state of a write's entries; with ``wait``, after delivery or the deadline."""
        states = []
        with trio.move_on_after(wait_s if wait else 0):
            for eid in entry_ids:
                states.append(await self.outbox.wait(eid, wait_s) if wait else self.outbox.state(eid))
        states += [self.outbox.state(eid) for eid in entry_ids[len(states):]]
        failed = next((s for s in states if s.state == "failed"), None)
        if failed is not None:
            if wait and failed.error is not None:
                raise E.DeliveryFailed(failed.error)
            return failed
        if any(s.state == "pending" for s in states):
            return DeliveryState(state="pending")
        return DeliveryState(state="delivered")

    def _apply_results(self, state: RunState, items: list[bytes]) -> None:
        """Replay of journaled results (blocking, at start-up)."""
        store = self.store.writer(state.meta.id)
        tally = state.tally
        for raw in items:
            tally.add(_decode_result(raw))
        store.append_many(items)
        store.commit_sync(fsync=False)  # to the OS as we go: recovery memory stays flat
        state.meta.results_count += len(items)

