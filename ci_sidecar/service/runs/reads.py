"""Reading runs back: a run as its providers show it, and a run's stored per-test records."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio

from ci_sidecar.protocol.records import TestRun
from ci_sidecar.providers.base import ProviderEnv, ReadsRuns

from ..result_versions import iter_merged
from ..session_context import SessionContext
from .core import RunCore, RunState

__all__ = ["RunReads"]

READ_BACK_TTL_S = 15.0
READ_BACK_DEADLINE_S = 5.0
_READ_CHUNK = 2000


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
