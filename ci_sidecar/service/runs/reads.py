"""Reading runs back: a run as its providers show it, and a run's stored per-test records."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import TestResult, TestRun
from ci_sidecar.providers.base import ProviderEnv, ReadsRuns

from ..result_versions import iter_merged
from ..session_context import SessionContext
from .core import RunCore, RunState

__all__ = ["RunReads"]

READ_BACK_TTL_S = 15.0
READ_BACK_DEADLINE_S = 5.0
_READ_CHUNK = 2000
_decode_result = msgspec.msgpack.Decoder(TestResult).decode


class RunReads(RunCore):
    """``get_test_run_status`` with the providers' view, and the records behind reports."""

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
        if cred is None or not cred.base_url or not remote:
            return None
        reader = self.outbox.providers.capable(provider, ReadsRuns)
        if reader is None:
            return None
        key = (state.meta.id, provider)
        cached = self._read_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        env = ProviderEnv.build(state.meta.ci or ctx.ci, ctx.provider_config(provider), cred.ref(),
                                cred.secret.reveal())  # the token's own URL only
        got = None
        with trio.move_on_after(READ_BACK_DEADLINE_S):
            got = await reader.read_run(self.snapshot(state), env, dict(remote))
        self._read_cache[key] = (time.monotonic() + READ_BACK_TTL_S, got)
        return got

    async def read_page(self, run_id: str, cursor: int, limit: int) -> dict[str, Any]:
        """``read_test_results``: the run's records from position *cursor* on (at most *limit* positions), the
        cursor to continue from, and whether the run is finished with nothing left after it.

        Positions are those of the run's append-only record store, so a cursor stays valid across restarts
        of the daemon; a later version of a test already read (a resend) is merged into its first place and
        never comes out again at a later position."""
        state = self._require(run_id)
        total = state.meta.results_count
        if cursor > total:  # positions only grow: this cursor came from another run (or was made up)
            raise E.InvalidParams("$.cursor", f"cursor {cursor} is past the {total} position(s) of run {run_id}: "
                                              "a cursor comes from an earlier read of the same run")
        start = min(max(cursor, 0), total)
        end = min(total, start + limit)
        results = [_decode_result(raw) async for raw in self.read_results(run_id, start, end)] if end > start else []
        return {"results": results, "cursor": end, "total": total,
                "finished": state.meta.status == "finished" and end >= total}

    def iter_stored(self, state: RunState) -> Iterator[TestResult]:
        """Every stored result in order, each (test, attempt) once (see ``result_versions``).

        Blocking: call from a worker thread, after flushing the run's record store.
        """
        # Callers flush the store first (``await store.commit(fsync=False)``, which waits for a
        # write in progress): a results write answered before this read may still be on its way to
        # the file, and an unlocked write here would read the file before that write lands.
        for raw in self.iter_stored_raw(state):
            yield _decode_result(raw)

    def iter_stored_raw(self, state: RunState) -> Iterator[bytes]:
        """As :meth:`iter_stored`, each record still msgpack-encoded (for a reader that decodes less)."""
        store = self.store.records(state.meta.id)
        count = state.meta.results_count
        return iter_merged(store.iter_records, count, unique=count <= state.tally.total)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Per-test records [start, end) of a run, each (test, attempt) once (see ``result_versions``),
        read from disk in chunks."""
        state = self._require(run_id)
        store = self.store.records(run_id)
        await store.commit(fsync=False)
        unique = state.meta.results_count <= state.tally.total
        iterator = iter_merged(store.iter_records, end, start=start, unique=unique)

        def chunk() -> list[bytes]:
            return list(itertools.islice(iterator, _READ_CHUNK))

        while True:
            batch = await trio.to_thread.run_sync(chunk)
            if not batch:
                return
            for raw in batch:
                yield raw
