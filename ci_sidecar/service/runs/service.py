"""The run lifecycle methods: create, update, report results, complete, get, list; and the maintenance of
runs (abandoned runs, retention)."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import (
    CompleteTestRunParams,
    CreateTestRunParams,
    ListTestRunsParams,
    ListTestRunsResult,
    ReportResultsParams,
    ReportResultsResult,
    UpdateTestRunParams,
)
from ci_sidecar.protocol.history import RunDelta
from ci_sidecar.protocol.records import TestResult, TestRun
from ci_sidecar.state.history import HistoryRun, to_signed

from ..groups.balance import concluded
from ..groups.spec import fan_in_shards, merged_group_run, shard_group
from ..history import decode_brief
from ..model import ResultsAdded, RunDeleted, RunMeta
from ..session_context import SessionContext
from ..summary import SummaryError, counts_from_summary
from ..tally import test_key
from .core import RunState, _parse_iso, now_iso
from .reads import RunReads
from .writes import RunWrites

__all__ = ["RunService"]

log = logging.getLogger("ci_sidecar.runs")

RESULTS_DEBOUNCE_S = 2.0
_encode_result = msgspec.msgpack.Encoder().encode


class RunService(RunWrites, RunReads):
    """Runs, results, statuses and comments; journaled, then delivered through the outbox."""

    # --- methods --------------------------------------------------------------------------------

    async def create(self, ctx: SessionContext, p: CreateTestRunParams,
                     warn: Callable[[str], None] | None = None) -> TestRun:
        provider = p.provider or ctx.ci_provider
        group = shard_group(ctx, p) if p.group is not None else None
        shards = fan_in_shards(p)
        external_id = p.external_id or (f"group:{group.key}:{group.shard}" if group else None)
        note = None
        if group is not None and external_id not in self.by_external:
            # a key reused after its group concluded (a later pipeline run): no publication would ever merge this
            # shard, so it is published as a run of its own, and the client is told why
            note = await self.group_concluded(ctx, group)
            if note is not None:
                group = None
                if warn is not None:
                    warn(note)
        if external_id and external_id in self.by_external:
            state = self.runs.get(self.by_external[external_id])
            if state is not None:
                if state.meta.group is not None and state.meta.group.role == "shard":
                    self.group_attach(ctx, state, provider)  # a restarted daemon: the shard's task again
                return self.view(state)
        run_id = uuid.uuid4().hex
        now = time.time()
        ci = ctx.ci
        meta = RunMeta(
            id=run_id, seq=self._take_seq(), name=p.name, start_time=now_iso(now), start_wall=now, last_write=now,
            external_id=external_id, group=group,
            commit_sha=p.commit_sha or ci.commit_sha, head_sha=p.head_sha or ci.head_sha,
            branch=p.branch or ci.branch, pr_number=p.pr_number or ci.pr_number,
            build_id=p.build_id or ci.build_id, details_url=p.details_url or ci.build_url,
            repository=ci.repository, ci_provider=provider, scm_provider=ctx.scm_provider,
            output_dir=str(Path(ctx.output_root) / run_id), ci=ci, shards=shards, note=note,
        )
        # a shard is published as part of its group's merged run, not on its own: its own output stays local
        meta.targets = ctx.targets_for("local" if group else provider)
        state = RunState(meta)
        if group is not None:
            self.group_attach(ctx, state, provider)  # before anything is recorded: a missing store is an error
        self.runs[run_id] = state
        if external_id:
            self.by_external[external_id] = run_id
        self.store.writer(run_id)  # create the record file now, so recovery finds it
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
        if p.coverage is not None:
            meta.coverage = p.coverage
        meta.last_write = time.time()
        if p.status in ("completed", "failed", "cancelled"):
            conclusion = {"completed": "success", "failed": "failure", "cancelled": "cancelled"}[p.status]
            return await self._finish(state, ctx, conclusion, p.wait, p.wait_s)
        self._save(state)
        ids = self._publish(state, ctx, final=False)
        await self.store.commit()
        await self._wait(ids, p.wait, p.wait_s)
        return self.view(state)

    async def report(self, ctx: SessionContext, p: ReportResultsParams,
                     applied: Callable[[], None] | None = None) -> ReportResultsResult:
        state = self._require_open(p.test_run_id)
        total = state.tally.total
        if p.coverage is not None and p.coverage != state.meta.coverage:
            state.meta.coverage = p.coverage
            self._save(state)  # journaled with the results below (or committed alone)
            if not p.results:
                self._publish(state, ctx, final=False, delay_s=RESULTS_DEBOUNCE_S)
                await self.store.commit()
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
        records = self.store.writer(state.meta.id)
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
        if state.meta.group is not None:
            self.group_changed(state)
        # hand the records to the OS now (no fsync: the journal has them until a checkpoint), so
        # memory stays flat however many results a run gets
        await records.commit(fsync=False)
        return len(items)

    async def complete(self, ctx: SessionContext, p: CompleteTestRunParams) -> TestRun:
        state = self._require_open(p.test_run_id)
        if p.coverage is not None:
            state.meta.coverage = p.coverage
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
        if meta.shards is not None:
            await self.conclude_shards(state)
        # a shard's own run is part of its group's merged run: the merged run is recorded, not each shard
        if self.history is not None and not (meta.group is not None and meta.group.role == "shard"):
            meta.delta = await self._record_history(state, conclusion, now)
        meta.status = "finished"
        meta.conclusion = conclusion
        meta.end_time = now_iso(now)
        meta.last_write = now
        if note:
            meta.note = note
        self._save(state)
        ids = self._publish(state, ctx, final=True)
        if self.on_finished is not None:
            try:
                self.on_finished(state, ctx)  # in the same commit as the completion: sent once, even after a crash
            except Exception:
                log.exception("run %s: the notification rules failed", meta.id)
        await self.store.commit()
        self.store.park_records(meta.id)  # a finished run is not written to: it holds no descriptor
        state.tally.compact()
        if meta.group is not None:
            self.group_changed(state)
        await self._wait(ids, wait, wait_s)
        return self.view(state)

    async def conclude_shards(self, state: RunState) -> None:
        """A merged run's shards section at its completion: the slowest shard, the missing ones, and the balance
        hint over its tests' durations (the history's recent ones where it has them, else this run's)."""
        meta = state.meta
        assert meta.shards is not None
        past: tuple[dict[int, float], int] = ({}, 0)
        if self.history is not None:
            past = await self.history.durations(meta.name, meta.repository, exclude=meta.id)
        await self.store.records(meta.id).commit(fsync=False)

        def measured() -> dict[int, float | None]:
            return {to_signed(test_key(b)): b.duration for b in map(decode_brief, self.iter_stored_raw(state))}

        meta.shards = concluded(meta.shards, await trio.to_thread.run_sync(measured), *past)

    async def record_merged(self, state: RunState, conclusion: str) -> None:
        """The final publication of a group's merged run: its shards section concluded and the run recorded in
        the history (again: the same run id replaces its earlier record), with its delta."""
        await self.conclude_shards(state)
        if self.history is not None:
            state.meta.delta = await self._record_history(state, conclusion, time.time())

    async def _record_history(self, state: RunState, conclusion: str, now: float) -> RunDelta | None:
        """Record the finishing run in the history (before it is published, so every report of it carries
        its delta); recording it again after a crash replaces the first record."""
        assert self.history is not None
        meta = state.meta
        await self.store.records(meta.id).commit(fsync=False)  # every answered write is in the file
        counts = self.counts(state)
        run = HistoryRun(
            run_id=meta.id, name=meta.name, repository=meta.repository, branch=meta.branch,
            target_branch=meta.ci.target_branch if meta.ci else None, pr_number=meta.pr_number,
            commit_sha=meta.head_sha or meta.commit_sha, build_id=meta.build_id, conclusion=conclusion,
            finished=now, end_time=now_iso(now), total=counts.total, failed=counts.failed + counts.errors)
        return await self.history.record(run, lambda: map(decode_brief, self.iter_stored_raw(state)))

    def get(self, run_id: str) -> TestRun:
        return self.view(self._require(run_id))


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


    # --- maintenance ----------------------------------------------------------------------------

    async def cancel_abandoned(self) -> int:
        """Complete runs nobody wrote to for the abandon timeout as ``cancelled``, with a note."""
        now = time.time()
        n = 0
        for state in list(self.runs.values()):
            if state.meta.status == "running" and now - state.meta.last_write > self.abandon_timeout_s \
                    and not merged_group_run(state):
                hours = self.abandon_timeout_s / 3600
                await self._finish(state, None, "cancelled", False, 0,
                                   note=f"abandoned: nobody wrote to this run for {hours:g} h")
                n += 1
        return n

    async def cancel_running(self, note: str) -> int:
        """Complete every running run as ``cancelled`` with ``note`` (their daemon is gone: nobody can
        write to them any more)."""
        n = 0
        for state in list(self.runs.values()):
            if state.meta.status == "running" and not merged_group_run(state):
                await self._finish(state, None, "cancelled", False, 0, note=note)
                n += 1
        return n

    def running(self) -> int:
        return sum(1 for s in self.runs.values() if s.meta.status == "running")

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
