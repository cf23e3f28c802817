"""Test runs: the provider-neutral heart of the daemon.

Every change is journaled and committed before the client hears about it, then handed to the outbox
for each of the run's targets. The run's local output (``run.json``, ``results.json``, reports) is
always written; the CI provider and the code host get what their tier allows.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from ci_sidecar.delivery.outbox import Entry, Outbox
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import (
    AddPrCommentParams,
    AddPrCommentResult,
    CompleteTestRunParams,
    CreateTestRunParams,
    ListTestRunsParams,
    ListTestRunsResult,
    ReportResultsParams,
    ReportResultsResult,
    SetBuildStatusParams,
    SetBuildStatusResult,
    UpdateTestRunParams,
)
from ci_sidecar.protocol.records import CommentRef, Counts, DeliveryState, ErrorInfo, TestResult, TestRun
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.state import RecordStore

from .model import ResultsAdded, RunDeleted, RunImage, RunMeta, RunSaved, StateImage
from .session_context import SessionContext
from .store import StateStore
from .summary import SummaryError, counts_from_summary
from .tally import Tally, test_key

__all__ = ["RunService", "DeliveryFailed", "now_iso"]

log = logging.getLogger("ci_sidecar.runs")

RESULTS_DEBOUNCE_S = 2.0
READ_BACK_TTL_S = 15.0
READ_BACK_DEADLINE_S = 5.0
_encode_result = msgspec.msgpack.Encoder().encode
_decode_result = msgspec.msgpack.Decoder(TestResult).decode
_READ_CHUNK = 2000


def now_iso(ts: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_iso(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise E.InvalidParams("$.since", f"not an ISO 8601 time: {value!r}") from None


class DeliveryFailed(E.SidecarError):
    """A write with ``wait: true`` failed: carries the delivery error's own code (-31003/-31004/-31007)."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message, error.data)
        self.code = error.code  # after the base class, which sets the class default


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


class RunService:
    """Runs, results, statuses and comments; journaled, then delivered through the outbox."""

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
        return TestRun(
            id=m.id, name=m.name, status=m.status, start_time=m.start_time, counts=self.counts(state),  # type: ignore[arg-type]
            delivery=self.outbox.summary(run_id=m.id), targets=targets, comments=list(m.comments),
            conclusion=m.conclusion, end_time=m.end_time, duration=duration,  # type: ignore[arg-type]
            external_id=m.external_id, note=m.note, output_dir=m.output_dir,
        )

    def snapshot(self, state: RunState) -> RunSnapshot:
        m = state.meta
        return RunSnapshot(
            id=m.id, name=m.name, status=m.status, conclusion=m.conclusion, start_time=m.start_time,  # type: ignore[arg-type]
            end_time=m.end_time, counts=self.counts(state), external_id=m.external_id,
            commit_sha=m.commit_sha, head_sha=m.head_sha, branch=m.branch, pr_number=m.pr_number,
            build_id=m.build_id, details_url=m.details_url, repository=m.repository,
            output_dir=m.output_dir, results_end=m.results_count,
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
                raise DeliveryFailed(failed.error)
            return failed
        if any(s.state == "pending" for s in states):
            return DeliveryState(state="pending")
        return DeliveryState(state="delivered")

    # --- methods --------------------------------------------------------------------------------

    async def create(self, ctx: SessionContext, p: CreateTestRunParams) -> TestRun:
        if p.external_id and p.external_id in self.by_external:
            state = self.runs.get(self.by_external[p.external_id])
            if state is not None:
                return self.view(state)
        run_id = uuid.uuid4().hex
        now = time.time()
        ci = ctx.ci
        provider = p.provider or ctx.ci_provider
        meta = RunMeta(
            id=run_id, seq=self._take_seq(), name=p.name, start_time=now_iso(now), start_wall=now, last_write=now,
            external_id=p.external_id,
            commit_sha=p.commit_sha or ci.commit_sha, head_sha=p.head_sha or ci.head_sha,
            branch=p.branch or ci.branch, pr_number=p.pr_number or ci.pr_number,
            build_id=p.build_id or ci.build_id, details_url=p.details_url or ci.build_url,
            repository=ci.repository, ci_provider=provider, scm_provider=ctx.scm_provider,
            output_dir=str(Path(ctx.output_root) / run_id), ci=ci,
        )
        meta.targets = ctx.targets_for(provider)
        state = RunState(meta)
        self.runs[run_id] = state
        if p.external_id:
            self.by_external[p.external_id] = run_id
        self.store.records(run_id)  # create the record file now, so recovery finds it
        self._save(state)
        ids = self._publish(state, ctx, final=False)
        await self.store.commit()
        await self._wait(ids, p.wait, p.wait_s)
        return self.view(state)

    async def update(self, ctx: SessionContext, p: UpdateTestRunParams) -> TestRun:
        state = self._require_open(p.test_run_id)
        meta = state.meta
        if p.summary is not None:
            try:
                counts, duration = counts_from_summary(p.summary)
            except SummaryError as exc:
                raise E.InvalidParams(f"$.summary{exc.path}", exc.reason) from None
            meta.summary = counts
            meta.summary_duration = duration
        if p.name is not None:
            meta.name = p.name
        meta.last_write = time.time()
        if p.status in ("completed", "failed", "cancelled"):
            conclusion = {"completed": "success", "failed": "failure", "cancelled": "cancelled"}[p.status]
            return await self._finish(state, ctx, conclusion, p.wait, p.wait_s)
        self._save(state)
        ids = self._publish(state, ctx, final=False)
        await self.store.commit()
        await self._wait(ids, p.wait, p.wait_s)
        return self.view(state)

    def _apply_results(self, state: RunState, items: list[bytes]) -> None:
        """Replay of journaled results (blocking, at start-up)."""
        store = self.store.records(state.meta.id)
        tally = state.tally
        for raw in items:
            tally.add(_decode_result(raw))
        store.append_many(items)
        store.commit_sync(fsync=False)  # to the OS as we go: recovery memory stays flat
        state.meta.results_count += len(items)

    async def report(self, ctx: SessionContext, p: ReportResultsParams,
                     applied: Callable[[], None] | None = None) -> ReportResultsResult:
        state = self._require_open(p.test_run_id)
        total = state.tally.total
        if p.results:
            await self.add_results(ctx, state, p.results, applied)
            total = state.tally.total
        return ReportResultsResult(accepted=len(p.results), total=total)

    async def add_results(self, ctx: SessionContext | None, state: RunState, results: list[TestResult],
                          applied: Callable[[], None] | None = None) -> int:
        """Count, store and journal results, schedule a (debounced) live update; durable on return.

        ``applied`` is called once the results are in memory and in the journal buffer, before the
        commit: the next request for the run may go ahead while this one waits for its fsync, so a
        stream of batches shares fsyncs (group commit) instead of paying one each in turn.
        """
        """Count, store and journal results, schedule a (debounced) live update; durable on return."""
        tally = state.tally
        items = []
        for r in results:
            tally.add(r, test_key(r))
            items.append(_encode_result(r))
        records = self.store.records(state.meta.id)
        records.append_many(items)
        state.meta.results_count += len(items)
        state.meta.last_write = time.time()
        self.store.append(ResultsAdded(state.meta.id, items))
        # a live summary, debounced: a stream of batches becomes one update every couple of seconds
        self._publish(state, ctx, final=False, delay_s=RESULTS_DEBOUNCE_S)
        if applied is not None:
            applied()
        await self.store.commit()
        if self.store.wants_checkpoint():
            self.checkpoint_wanted.set()
        # hand the records to the OS now (no fsync: the journal has them until a checkpoint), so
        # memory stays flat however many results a run gets
        await records.commit(fsync=False)
        return len(items)

    async def complete(self, ctx: SessionContext, p: CompleteTestRunParams) -> TestRun:
        state = self._require_open(p.test_run_id)
        conclusion = p.conclusion
        if conclusion is None:
            counts = self.counts(state)
            if counts.failed or counts.errors:
                conclusion = "failure"
            elif counts.total == 0:
                conclusion = "neutral"
            else:
                conclusion = "success"
        return await self._finish(state, ctx, conclusion, p.wait, p.wait_s)

    async def _finish(self, state: RunState, ctx: SessionContext | None, conclusion: str, wait: bool,
                      wait_s: float, note: str | None = None) -> TestRun:
        meta = state.meta
        now = time.time()
        meta.status = "finished"
        meta.conclusion = conclusion
        meta.end_time = now_iso(now)
        meta.last_write = now
        if note:
            meta.note = note
        self._save(state)
        ids = self._publish(state, ctx, final=True)
        await self.store.commit()
        await self._wait(ids, wait, wait_s)
        return self.view(state)

    def get(self, run_id: str) -> TestRun:
        return self.view(self._require(run_id))

    async def read_back(self, ctx: SessionContext | None, run_id: str) -> TestRun:
        """The run, with each remote target as its provider shows it (e.g. GitHub's check run), read
        with the session's own credential, at most every READ_BACK_TTL_S per run and provider (a job
        polling its run must not spend the token's rate limit), within a short deadline: a provider
        that does not answer leaves the local view."""
        state = self._require(run_id)
        view = self.view(state)
        if ctx is None:
            return view
        targets = []
        for target in view.targets:
            got = await self._read_target(ctx, state, target.provider) if target.provider != "local" else None
            if got:
                target = msgspec.structs.replace(target, remote_status=got.get("status"),
                                                 remote_conclusion=got.get("conclusion"),
                                                 url=got.get("url") or target.url)
            targets.append(target)
        view.targets = targets
        return view

    async def _read_target(self, ctx: SessionContext, state: RunState, provider: str) -> dict[str, Any] | None:
        cred = ctx.credentials.get(provider)
        remote = self.outbox.remote(provider, f"run:{state.meta.id}")
        if cred is None or not cred.base_url or not remote or provider not in self.outbox.providers:
            return None
        reader = getattr(self.outbox.providers[provider], "read_run", None)
        if reader is None:
            return None
        key = (state.meta.id, provider)
        cached = self._read_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        env = ProviderEnv(ci=state.meta.ci or ctx.ci, config=ctx.provider_config(provider),
                          base_url=cred.base_url, token=cred.secret.reveal())  # the token's own URL only
        got = None
        with trio.move_on_after(READ_BACK_DEADLINE_S):
            got = await reader(self.snapshot(state), env, dict(remote))
        self._read_cache[key] = (time.monotonic() + READ_BACK_TTL_S, got)
        return got

    def list(self, p: ListTestRunsParams) -> ListTestRunsResult:
        since = _parse_iso(p.since) if p.since else None
        start_seq: int | None = None
        if p.cursor:
            try:
                start_seq = int(base64.urlsafe_b64decode(p.cursor.encode() + b"==").decode())
            except (ValueError, UnicodeDecodeError):
                raise E.InvalidParams("$.cursor", "not a cursor returned by list_test_runs") from None
        states = sorted(self.runs.values(), key=lambda s: s.meta.seq, reverse=True)
        out: list[TestRun] = []
        next_cursor = None
        last_seq = 0
        for s in states:
            if start_seq is not None and s.meta.seq >= start_seq:
                continue
            if p.status and s.meta.status != p.status:
                continue
            if since is not None and s.meta.start_wall < since:
                continue
            if len(out) == p.limit:
                next_cursor = base64.urlsafe_b64encode(str(last_seq).encode()).decode().rstrip("=")
                break
            out.append(self.view(s))
            last_seq = s.meta.seq
        return ListTestRunsResult(runs=out, next_cursor=next_cursor)

    async def set_build_status(self, ctx: SessionContext, p: SetBuildStatusParams) -> SetBuildStatusResult:
        state = self._require(p.test_run_id) if p.test_run_id else None
        provider = ctx.status_provider(state.meta.ci_provider if state else None)
        sha = p.sha or (state.meta.head_sha or state.meta.commit_sha if state else None) or ctx.ci.head_sha \
            or ctx.ci.commit_sha
        output_dir = state.meta.output_dir if state else ctx.output_root
        op = SetStatus(state=p.state, context=p.context, sha=sha, description=p.description,
                       target_url=p.target_url, run_id=p.test_run_id, output_dir=output_dir)
        entry_id = self.outbox.put(provider=provider, target=f"status:{sha}:{p.context}", op=op,
                                   run_id=p.test_run_id, session_id=ctx.session_id, ci=ctx.ci,
                                   credential=ctx.credential_ref(provider), config=ctx.provider_config(provider))
        await self.store.commit()
        delivery = await self._wait([entry_id], p.wait, p.wait_s)
        return SetBuildStatusResult(delivery=delivery, ref=entry_id)

    async def add_comment(self, ctx: SessionContext, p: AddPrCommentParams) -> AddPrCommentResult:
        state = self._require(p.test_run_id) if p.test_run_id else None
        provider = ctx.comment_provider(state.meta.ci_provider if state else None)
        mode = p.mode or ("upsert" if p.key else "create")
        if ctx.config.comment_mode == "off":
            return AddPrCommentResult(action="skipped", truncated=False, delivery=DeliveryState(state="delivered"))
        pr_number = p.pr_number or (state.meta.pr_number if state else None) or ctx.ci.pr_number
        output_dir = state.meta.output_dir if state else ctx.output_root
        op = PostComment(body=p.body, mode=mode, key=p.key, pr_number=pr_number, run_id=p.test_run_id,
                         output_dir=output_dir)
        target = f"comment:{p.key}" if p.key else f"comment:{uuid.uuid4().hex}"
        entry_id = self.outbox.put(provider=provider, target=target, op=op, run_id=p.test_run_id,
                                   session_id=ctx.session_id, ci=ctx.ci, credential=ctx.credential_ref(provider),
                                   config=ctx.provider_config(provider))
        if state is not None:
            self._record_comment(state, CommentRef(action="pending", key=p.key, delivery=DeliveryState(state="pending")),
                                 entry_id)
            self._save(state)
        await self.store.commit()
        delivery = await self._wait([entry_id], p.wait, p.wait_s)
        previous = self.outbox.remote(provider, target)
        result = AddPrCommentResult(action="pending", truncated=False, delivery=delivery,
                                    id=_str_or_none(previous.get("id")), url=previous.get("url"))
        if delivery.state == "delivered":
            ref = self._comment_outcomes.pop(entry_id, None)
            if ref is not None:
                result.action = ref.action  # type: ignore[assignment]
                result.id, result.url = ref.id, ref.url
                result.truncated = bool(ref_truncated(previous))
        return result

    # --- outcomes -------------------------------------------------------------------------------

    def _record_comment(self, state: RunState, ref: CommentRef, entry_id: str) -> None:
        comments = state.meta.comments
        if ref.key is not None:
            comments[:] = [c for c in comments if c.key != ref.key]
        comments.append(ref)

    def on_outcome(self, entry: Entry, outcome: Outcome | None, error: ErrorInfo | None) -> None:
        """The outbox settled an entry: reflect it in the run (targets, comments) and journal that."""
        if isinstance(entry.op, PostComment):
            delivered = outcome is not None and outcome.kind == "delivered"
            remote = outcome.remote or {} if outcome else {}
            ref = CommentRef(
                action=(outcome.action or "created") if delivered and outcome else "failed",
                key=entry.op.key, id=_str_or_none(remote.get("id")), url=outcome.url if outcome else None,
                delivery=DeliveryState(state="delivered") if delivered else DeliveryState(state="failed", error=error),
            )
            self._comment_outcomes[entry.id] = ref
            while len(self._comment_outcomes) > 10_000:
                self._comment_outcomes.pop(next(iter(self._comment_outcomes)))
            state = self.runs.get(entry.run_id or "")
            if state is not None:
                self._record_comment(state, ref, entry.id)
                self._save(state)
        elif isinstance(entry.op, PublishRun) and outcome is not None:
            state = self.runs.get(entry.run_id or "")
            if state is None:
                return
            changed = False
            for i, t in enumerate(state.meta.targets):
                if t.provider != entry.provider or t.provider == "local":
                    continue
                # Outcome.tier names the tier that carried the write ("check run", "commit status"); the
                # target's note starts with the tier expected at creation ("via check run; ..."). A
                # different one means the provider fell down its ladder: the target is a fallback now.
                downgraded = bool(outcome.kind == "delivered" and outcome.tier
                                  and _target_via(t) not in (None, outcome.tier))
                if (outcome.url and t.url != outcome.url) or downgraded:
                    state.meta.targets[i] = msgspec.structs.replace(
                        t, url=outcome.url or t.url,
                        kind="fallback" if downgraded else t.kind,
                        note=f"via {outcome.tier}" if downgraded else t.note)
                    changed = True
            if changed:
                self._save(state)

    # --- maintenance ----------------------------------------------------------------------------

    async def cancel_abandoned(self) -> int:
        """Complete runs nobody wrote to for the abandon timeout as ``cancelled``, with a note."""
        now = time.time()
        n = 0
        for state in list(self.runs.values()):
            if state.meta.status == "running" and now - state.meta.last_write > self.abandon_timeout_s:
                hours = self.abandon_timeout_s / 3600
                await self._finish(state, None, "cancelled", False, 0,
                                   note=f"abandoned: nobody wrote to this run for {hours:g} h")
                n += 1
        return n

    async def apply_retention(self) -> int:
        """Delete finished runs beyond the retention count or age (their records and output stay)."""
        finished = sorted((s for s in self.runs.values() if s.meta.status == "finished"),
                          key=lambda s: s.meta.seq, reverse=True)
        now = time.time()
        doomed = [s for i, s in enumerate(finished)
                  if i >= self.retention_max_runs or now - s.meta.last_write > self.retention_max_age_s]
        doomed = [s for s in doomed if self.outbox.summary(run_id=s.meta.id).pending == 0]
        for s in doomed:
            self.runs.pop(s.meta.id, None)
            if s.meta.external_id:
                self.by_external.pop(s.meta.external_id, None)
            self.store.append(RunDeleted(s.meta.id))
            self.store.drop_records(s.meta.id)
            for hook in self.hooks:
                hook.run_deleted(s.meta.id)
        if doomed:
            await self.store.commit()
        return len(doomed)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Per-test records [start, end) of a run, read from disk in chunks (memory stays flat)."""
        store = self.store.records(run_id)
        await store.commit(fsync=False)
        iterator = iter(store.iter_records())

        def chunk() -> list[bytes]:
            return list(itertools.islice(iterator, _READ_CHUNK))

        index = 0
        while index < end:
            batch = await trio.to_thread.run_sync(chunk)
            if not batch:
                return
            for raw in batch:
                if start <= index < end:
                    yield raw
                index += 1


def _target_via(target: Any) -> str | None:
    """The tier a target was expected to use, from its note (``"via commit status; why"``)."""
    note = target.note or ""
    if not note.startswith("via "):
        return None
    return note[4:].split(";", 1)[0].strip() or None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def ref_truncated(remote: dict[str, Any]) -> bool:
    return bool(remote.get("truncated"))

