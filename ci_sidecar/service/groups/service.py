"""Sharded runs: each shard's daemon writes its results to the object store, and the shards together publish
one merged run (one check run, status or report) through conditional writes on the group object.

Per grouped run, one task in this daemon:

* **sync**: the shard's new per-test records go out as immutable segments (``If-None-Match: *``: a resend after a
  crash loses harmlessly), then the shard's compact state;
* **publish**: take the group's lease (a conditional write of ``group.json`` naming this shard, valid for
  ``LEASE_S`` and renewed by a heartbeat: :mod:`.lease`), append the segments no publication merged yet to the
  group's log, read them into the merged run here, and deliver that run through the outbox; then write what the
  provider learnt (check run id, annotations sent) back into ``group.json`` and release the lease. A daemon that
  finds the lease held waits (and looks again when it runs out); one that loses a conditional write reads again;
  one that loses the lease drops its pending publication, so a stale shard never overwrites a newer view. The
  lease names the shard run, so a restarted daemon takes its own lease back at once.
* **claims**: the lease's write lists the providers it is about to write to (``publishing``), cleared with the
  record of what they learnt; a new holder that finds it set has them find their object again (by the merged
  run's deterministic id) before creating one or appending to it.
* **final**: the publication that sees every shard finished, or the group's deadline passed, is the final one
  (missing shards are named and make the conclusion ``failure``); it is marked in ``group.json`` and no
  shard publishes after it.

The merged run's id is derived from the key, so every daemon publishes the same provider object (a GitHub check
run's ``external_id``, an Azure test run's marker comment, a Bitbucket report's id).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import TestResult
from ci_sidecar.providers.base import Outcome
from ci_sidecar.providers.s3 import S3Failed
from ci_sidecar.providers.s3objects import ConditionFailed, ObjectStore

from ..model import ResultsAdded, RunMeta
from ..runs import RunService
from ..runs.core import RunState, now_iso
from ..session_context import SessionContext
from ..tally import test_key
from .lease import LEASE_S, Lease
from .model import (
    GROUP_FILE,
    SEGMENT_SUFFIX,
    STATE_FILE,
    GroupDoc,
    LogEntry,
    ShardDoc,
    decode_group,
    decode_shard,
    encode,
    group_run_id,
    holds_log,
    slug,
)
from .balance import group_report
from .report import comment_body
from .reuse import concluded, session_store

__all__ = ["GroupService", "LEASE_S", "SEGMENT_RECORDS"]

log = logging.getLogger("ci_sidecar.groups")

SEGMENT_RECORDS = 2000
#: how long a publication may keep retrying under a renewed lease before it gives the turn away
MAX_PUBLISH_S = 600.0
#: a shard that is done waits for the others' final publication; it looks at the group this often
POLL_S = 5.0
_decode_result = msgspec.msgpack.Decoder(TestResult).decode
_decode_segment = msgspec.msgpack.Decoder(list[bytes]).decode


def _decoded(decode: Any, raw: bytes, key: str) -> Any:
    """``decode(raw)``, or None (logged) when the object is not what a shard writes there: another version's,
    damaged, or hostile, it must not stop this daemon."""
    try:
        return decode(raw)
    except msgspec.DecodeError as exc:
        if key not in _unreadable:  # once per object: groups read each other's objects every turn
            if len(_unreadable) < 10_000:
                _unreadable.add(key)
            log.warning("object %s in the store is not readable (%s): left out", key, exc)
        return None


_unreadable: set[str] = set()


@dataclass
class _Group:
    """One shard run of this daemon and what its task knows."""

    run: RunState
    ctx: SessionContext
    provider: str
    store: ObjectStore
    folder: str
    #: names this shard's daemon in the group's lease: the shard run's id, so a restarted daemon (which dropped the
    #: publication it had pending) takes its own lease back instead of waiting for it to expire
    holder: str = ""
    wake: trio.Event = field(default_factory=trio.Event)
    segments: list[tuple[int, int]] | None = None  # None: not read back from the store yet
    final: bool = False
    published_state: bytes = b""
    #: until when another shard's lease holds, as last read (a waiting shard looks again when it runs out)
    lease_until: float = 0.0


class GroupService:
    """The grouped runs of this daemon and their tasks."""

    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self._groups: dict[str, _Group] = {}
        self._nursery: trio.Nursery | None = None
        runs.group_changed = self.changed
        runs.group_attach = self.attach
        runs.group_concluded = concluded
        #: per shard run, the group's deadline (wall seconds) once read: a shard that is done wakes for it
        self._deadline: dict[str, float] = {}
        self.requests = 0  # store requests made (benchmarks read it through sidecar/status)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drops publications of merged runs left pending by an earlier life of this daemon (only the lease
        holder may publish; the next publication reads the group again), then serves the groups attached."""
        for state in list(self.runs.runs.values()):
            group = state.meta.group
            if group is not None and group.role == "group":
                self.runs.outbox.drop_pending(state.meta.id, "superseded: the group publishes under a lease")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def attach(self, ctx: SessionContext, state: RunState, provider: str) -> None:
        """Start (or take over, after a restart) the task of a grouped shard run."""
        if state.meta.id in self._groups or self._nursery is None or state.meta.group is None:
            return
        store = session_store(ctx)
        if store is None:
            raise E.InvalidParams("$.group", "a sharded group merges through the object store: configure "
                                  "[artifact_store] (bucket, endpoint_url) and the store's credentials "
                                  "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) for the session")
        folder = store.key("groups", slug(state.meta.group.key))
        group = self._groups[state.meta.id] = _Group(run=state, ctx=ctx, provider=provider, store=store,
                                                     folder=folder, holder=state.meta.id)
        self._nursery.start_soon(self._serve, group)

    def changed(self, state: RunState) -> None:
        group = self._groups.get(state.meta.id)
        if group is not None:
            group.wake.set()

    async def settle(self, session_id: str, timeout_s: float) -> None:
        """Wait (bounded) until the shards this session attached have their latest state published, or their
        group is final: a daemon about to stop (``exec``'s) hands its shard's part over first."""
        with trio.move_on_after(timeout_s):
            while any(not g.final and self._unpublished(g) for g in self._groups.values()
                      if g.ctx.session_id == session_id):
                await trio.sleep(0.05)

    def status(self) -> dict[str, Any]:
        return {"groups": len(self._groups),
                "store_requests": sum(g.store.requests for g in self._groups.values())}

    # --- the task ---------------------------------------------------------------------------------

    async def _serve(self, g: _Group) -> None:
        backoff = 0.5
        busy = 0  # turns in a row another shard held the lease: look again less and less often, up to 1 s
        while not g.final:
            g.wake = trio.Event()
            try:
                await self._sync(g)
                outcome = await self._publish(g)
                backoff = 0.5
            except S3Failed as exc:
                log.warning("group %s: the object store: %s; again in %.1f s", g.run.meta.group.key,  # type: ignore[union-attr]
                            exc.outcome.message, backoff)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:  # noqa: BLE001 - one group's trouble must not stop the daemon's other work
                log.exception("group %s: could not sync or publish; again in %.1f s",
                              g.run.meta.group.key, backoff)  # type: ignore[union-attr]
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if outcome == "final":
                g.final = True
                await self._keep_record_if_final_by_us(g)
                return
            meta = g.run.meta.group
            assert meta is not None
            busy = busy + 1 if outcome == "busy" else 0
            if outcome == "busy":
                # look again soon (the holder may give the lease back), and right when its lease runs out
                wait = min(1.0, 0.1 * 2 ** busy)
                if g.lease_until > time.time():
                    wait = min(wait, g.lease_until - time.time() + 0.05)
            elif outcome == "published" and self._unpublished(g):
                wait = 0.0
            else:
                wait = POLL_S
            deadline = self._deadline.get(g.run.meta.id)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.time()))
            with trio.move_on_after(wait):
                await g.wake.wait()

    def _unpublished(self, g: _Group) -> bool:
        return g.published_state != self._shard_doc_bytes(g)

    # --- sync: this shard's records and state into the store -----------------------------------------

    def _shard_key(self, g: _Group, *parts: str) -> str:
        meta = g.run.meta
        assert meta.group is not None
        return "/".join((g.folder, str(meta.group.shard), *parts))

    async def _sync(self, g: _Group) -> None:
        meta = g.run.meta
        if g.segments is None:
            got = await g.store.get(self._shard_key(g, STATE_FILE))
            doc = _decoded(decode_shard, got[0], self._shard_key(g, STATE_FILE)) if got is not None else None
            g.segments = list(doc.segments) if doc is not None and doc.run_id == meta.id else []
        written = g.segments[-1][1] if g.segments else 0
        end = meta.results_count
        while written < end:
            stop = min(end, written + SEGMENT_RECORDS)
            items = [raw async for raw in self._raw_records(meta.id, written, stop)]
            key = self._shard_key(g, meta.id, f"{written:09d}-{stop:09d}{SEGMENT_SUFFIX}")
            try:
                await g.store.put(key, msgspec.msgpack.encode(items), create_only=True,
                                  content_type="application/msgpack")
            except ConditionFailed:
                pass  # written by an earlier attempt whose answer was lost: segments are immutable
            g.segments.append((written, stop))
            written = stop
        body = self._shard_doc_bytes(g)
        if body != getattr(g, "_stored_state", b""):
            await g.store.put(self._shard_key(g, STATE_FILE), body)
            g._stored_state = body  # type: ignore[attr-defined]

    async def _raw_records(self, run_id: str, start: int, end: int) -> Any:
        records = self.runs.store.records(run_id)
        await records.commit(fsync=False)
        for i, raw in enumerate(records.iter_records()):
            if i >= end:
                break
            if i >= start:
                yield raw

    def _shard_doc_bytes(self, g: _Group) -> bytes:
        meta = g.run.meta
        assert meta.group is not None
        end_wall = None
        if meta.end_time is not None:
            end_wall = meta.last_write
        return encode(ShardDoc(
            shard=meta.group.shard, total=meta.group.total, run_id=meta.id, name=meta.name, status=meta.status,
            conclusion=meta.conclusion, counts=self.runs.counts(g.run), segments=list(g.segments or []),
            machine=g.ctx.env.get("RUNNER_NAME") or socket.gethostname(), start_wall=meta.start_wall,
            end_wall=end_wall, updated_wall=0.0))

    # --- publish: the merged view, under the group's lease --------------------------------------------

    async def _read_group(self, g: _Group) -> tuple[GroupDoc, str] | None:
        meta = g.run.meta.group
        assert meta is not None
        got = await g.store.get(f"{g.folder}/{GROUP_FILE}")
        if got is not None:
            doc = _decoded(decode_group, got[0], f"{g.folder}/{GROUP_FILE}")
            if doc is None:  # nothing to merge into: wait (logged) until someone repairs or removes it
                raise S3Failed(Outcome.retry(f"{g.folder}/{GROUP_FILE} is not a group object"))
            return doc, got[1]
        now = time.time()
        doc = GroupDoc(key=meta.key, created_wall=now, deadline_wall=now + meta.deadline_s, total=meta.total)
        try:
            etag = await g.store.put(f"{g.folder}/{GROUP_FILE}", encode(doc), create_only=True)
        except ConditionFailed:
            return None  # another shard created it first: read theirs next time
        return doc, etag

    async def _read_shards(self, g: _Group) -> dict[int, ShardDoc]:
        shards: dict[int, ShardDoc] = {}
        for key in await g.store.list(g.folder + "/"):
            rest = key[len(g.folder) + 1:]
            number, _, name = rest.partition("/")
            if name != STATE_FILE or not number.isdigit():
                continue
            got = await g.store.get(key)
            doc = _decoded(decode_shard, got[0], key) if got is not None else None
            if doc is not None:  # an unreadable state counts as a shard not heard from
                shards[int(number)] = doc
        return shards

    async def _publish(self, g: _Group) -> str:
        """One turn: ``final`` (the group is concluded), ``published``, ``busy`` (another shard holds the lease)
        or ``idle`` (nothing to publish)."""
        read = await self._read_group(g)
        if read is None:
            return "busy"
        doc, etag = read
        g.lease_until = 0.0
        self._deadline[g.run.meta.id] = doc.deadline_wall
        if doc.final:
            me, logged = (g.run.meta.group.shard, g.run.meta.id), {tuple(e) for e in doc.log}  # type: ignore[union-attr]
            if any((*me, a, b) not in logged for a, b in g.segments or ()):  # it came after the final publication
                log.warning("group %s concluded without results of shard %d's run %s (missing at the deadline, "
                            "or the key was reused): they stay in this run only", doc.key, *me)
            return "final"
        now = time.time()
        if doc.lease_holder not in (None, g.holder) and doc.lease_until > now:
            g.lease_until = doc.lease_until
            return "busy"
        mine = doc.shards.get(str(g.run.meta.group.shard))  # type: ignore[union-attr]
        concluded = bool(doc.total) and all(  # every shard finished, yet no final publication (it failed)
            doc.shards.get(str(n)) is not None and doc.shards[str(n)].status == "finished" for n in range(doc.total or 0))
        # a lease not given back: its holder died (or was restarted) mid-publication
        interrupted, before = doc.lease_holder is not None, (doc.lease_holder, doc.lease_until)
        if (mine is not None and encode(mine) == self._shard_doc_bytes(g) and now < doc.deadline_wall
                and not concluded and not interrupted):
            g.published_state = encode(mine)
            return "idle"  # what this shard knows is published; the rest is the other shards' turn
        shards = await self._read_shards(g)
        total = doc.total or max((s.total or 0 for s in shards.values()), default=0) or None
        merged = {(e[0], e[1], e[2], e[3]) for e in doc.log}
        added: list[LogEntry] = []
        for number in sorted(shards):
            s = shards[number]
            added += [(number, s.run_id, a, b) for a, b in s.segments if (number, s.run_id, a, b) not in merged]
        finished = {n for n, s in shards.items() if s.status == "finished"}
        expected = set(range(total)) if total else set(shards)
        final = (bool(expected) and expected <= finished) or now >= doc.deadline_wall
        # the providers an interrupted publication may have written to without recording what they learnt:
        # this one finds their objects again before creating or appending (the claim is written with the lease)
        unsure = set(doc.publishing)
        doc.publishing = sorted(self._providers(g))
        doc.total = total
        doc.lease_holder = g.holder
        doc.log = [*doc.log, *added]
        lease = Lease(g.store, f"{g.folder}/{GROUP_FILE}", doc, etag)
        try:
            await lease.write()
        except ConditionFailed:
            return "busy"
        if interrupted:
            log.info("group %s: took over the publication %s left unfinished (its lease until %+.1f s)", doc.key,
                     "this shard's earlier daemon" if before[0] == g.holder else before[0], before[1] - now)

        async def publish() -> bool:
            state = await self._merged_run(g, doc, shards, final)
            entries = self._publication(g, state, doc, shards, final, unsure)
            delivered = await self._deliver(doc, entries)
            for provider in self._providers(g):
                doc.remote[provider] = self.runs.outbox.remote(provider, f"run:{state.meta.id}")
            doc.publishing = []
            doc.shards = {str(n): s for n, s in shards.items()}
            doc.published_wall = time.time()
            if final and delivered:
                doc.final, doc.conclusion, doc.final_by = True, state.meta.conclusion, g.holder
                doc.missing = sorted(expected - finished)
            await lease.write(release=True)
            return True

        try:
            done = await lease.hold(publish)
        except ConditionFailed:
            done = None
        if done is None:  # the lease passed to another shard meanwhile: what we had pending is stale
            self.runs.outbox.drop_pending(group_run_id(doc.key), "superseded: the group's lease passed to "
                                                                 "another shard")
            return "busy"
        g.published_state = encode(doc.shards.get(str(g.run.meta.group.shard))) if str(  # type: ignore[union-attr]
            g.run.meta.group.shard) in doc.shards else b""  # type: ignore[union-attr]
        return "final" if doc.final else "published"

    async def _keep_record_if_final_by_us(self, g: _Group) -> None:
        """The merged run stays in this daemon's history only when this daemon made the final publication: one
        whose final publication failed and passed to another shard forgets its record (the other recorded it)."""
        state = self.runs.runs.get(group_run_id(g.run.meta.group.key))  # type: ignore[union-attr]
        if state is None or state.meta.group is None or not state.meta.group.recorded or self.runs.history is None:
            return
        try:
            read = await self._read_group(g)
        except S3Failed:
            return  # kept: a record too many is better than none
        if read is not None and read[0].final_by not in (None, g.holder):
            await self.runs.history.forget(state.meta.id)
            state.meta.group.recorded = False
            state.meta.delta = None
            self.runs._save(state)
            await self.runs.store.commit()

    def _providers(self, g: _Group) -> set[str]:
        """The providers the merged run is published to (its targets but the local folder)."""
        return {t.provider for t in g.ctx.targets_for(g.provider) if t.provider != "local"}

    async def _deliver(self, doc: GroupDoc, entries: list[str]) -> bool:
        """Wait for the publication (the lease's heartbeat keeps it ours meanwhile): whether it was delivered.
        One still pending after :data:`MAX_PUBLISH_S` is given up, and the turn passes on."""
        outbox = self.runs.outbox
        with trio.move_on_after(MAX_PUBLISH_S):
            for entry in entries:
                await outbox.wait(entry, MAX_PUBLISH_S)
        states = [outbox.state(e).state for e in entries]
        if "pending" in states:
            log.warning("group %s: a publication still pending after %.0f s: giving the turn away", doc.key,
                        MAX_PUBLISH_S)
            outbox.drop_pending(group_run_id(doc.key), "superseded: publication given up under the group's lease")
            return False
        return all(s == "delivered" for s in states)

    async def _merged_run(self, g: _Group, doc: GroupDoc, shards: dict[int, ShardDoc], final: bool) -> RunState:
        """This daemon's copy of the merged run, holding exactly the records of the group's log."""
        run_id = group_run_id(doc.key)
        state = self.runs.runs.get(run_id)
        shard_meta = g.run.meta
        if state is not None and not holds_log(state.meta.group, state.meta.results_count, doc.log):
            # ours went further than the group's log, or a kill -9 left its records and its count of log
            # entries apart (journaled in separate records): start again from the group's log
            self.runs.runs.pop(run_id, None)
            self.runs.store.drop_records(run_id)
            state = None
        if state is None:
            now = time.time()
            assert shard_meta.group is not None
            meta = RunMeta(
                id=run_id, seq=self.runs._take_seq(), name=shard_meta.name, start_time=now_iso(doc.created_wall),
                start_wall=doc.created_wall, last_write=now, commit_sha=shard_meta.commit_sha,
                head_sha=shard_meta.head_sha, branch=shard_meta.branch, pr_number=shard_meta.pr_number,
                build_id=shard_meta.build_id, details_url=shard_meta.details_url,
                repository=shard_meta.repository, ci_provider=g.provider, scm_provider=shard_meta.scm_provider,
                output_dir=shard_meta.output_dir.rsplit("/", 1)[0] + "/" + run_id, ci=shard_meta.ci,
                group=msgspec.structs.replace(shard_meta.group, role="group", applied=0),
            )
            meta.targets = g.ctx.targets_for(g.provider)
            state = self.runs.runs[run_id] = RunState(meta)
            self.runs.store.writer(run_id)
            self.runs._save(state)  # journaled before its results: a replay drops results of unknown runs
        meta = state.meta
        assert meta.group is not None
        for entry in doc.log[meta.group.applied:]:
            number, shard_run, start, end = entry
            key = "/".join((g.folder, str(number), shard_run, f"{start:09d}-{end:09d}{SEGMENT_SUFFIX}"))
            got = await g.store.get(key)
            if got is None:
                # a logged segment is never deleted; a store that lost one is asked again later
                raise S3Failed(Outcome.retry(f"segment {key} named in the group's log is not in the store"))
            items = _decoded(_decode_segment, got[0], key)
            results = [_decoded(_decode_result, raw, key) for raw in items or ()]
            if items is None or None in results:
                raise S3Failed(Outcome.retry(f"segment {key} named in the group's log does not decode"))
            for result in results:
                state.tally.add(result, test_key(result))
            self.runs.store.writer(run_id).append_many(items)
            meta.results_count += len(items)
            self.runs.store.append(ResultsAdded(run_id, items))
            meta.group.applied += 1
        meta.last_write = time.time()
        meta.shards = group_report(doc, shards, final)
        expected = set(range(doc.total)) if doc.total else set(shards)
        missing = sorted(n for n in expected if n not in shards or shards[n].status != "finished")
        if final:
            counts = self.runs.counts(state)
            meta.status, meta.end_time = "finished", now_iso()
            failed = counts.failed or counts.errors or missing or any(
                s.conclusion in ("failure", "cancelled", "timed_out") for s in shards.values())
            meta.conclusion = "failure" if failed else ("neutral" if counts.total == 0 else "success")
            if missing:
                meta.note = f"missing shard(s) at the deadline: {', '.join(str(n) for n in missing)}"
            await self.runs.record_merged(state, meta.conclusion)  # before publishing: its reports show the delta
            meta.group.recorded = True
        else:  # a final publication that failed left it concluded here, not on the provider
            meta.status, meta.end_time, meta.conclusion, meta.note = "running", None, None, None
        self.runs._save(state)
        await self.runs.store.commit()
        return state

    def _publication(self, g: _Group, state: RunState, doc: GroupDoc, shards: dict[int, ShardDoc],
                     final: bool, unsure: set[str]) -> list[str]:
        outbox = self.runs.outbox
        for provider in {t.provider for t in state.meta.targets if t.provider != "local"}:
            known = doc.remote.get(provider)
            if provider in unsure:  # what the group recorded may be behind the provider: look before writing
                outbox.adopt_remote(provider, f"run:{state.meta.id}", known or {}, unsure=True)
            elif known:
                outbox.adopt_remote(provider, f"run:{state.meta.id}", known)
        entries = self.runs._publish(state, g.ctx, final=final)
        if final and (state.meta.pr_number or g.ctx.ci.pr_number) and g.ctx.config.comment_mode != "off":
            entries.append(self.runs.group_comment(g.ctx, state, comment_body(state, self.runs.counts(state))))
        return entries
