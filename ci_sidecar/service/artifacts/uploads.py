"""Uploads by path, by content and in batches: staged under the limits, committed once, sent to each provider."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.artifact_methods import UploadArtifactParams, UploadArtifactsParams, UploadItemResult
from ci_sidecar.protocol.records import Artifact, ErrorInfo

from ..casstore import NotRegularFile, StagedBlob, TooLarge
from ..mime import detect_mime, detect_type
from ..model import ArtifactMeta, ArtifactSaved, ArtifactUpload
from ..runs import RunState, now_iso
from .batches import FILE_LIMIT_KEY, LIMIT_KEY, BatchPlan, batch_name, job_key, sent_to, write_zip
from .retention import ArtifactRetention
from .settings import normalise_name

if TYPE_CHECKING:
    from ..calls import Call
    from ..session_context import SessionContext

__all__ = ["ArtifactUploads"]


def _error_info(exc: E.WireError) -> ErrorInfo:
    return ErrorInfo(code=exc.code, message=exc.message, data=exc.data)


@dataclass
class _Upload:
    """What a finished upload asks for, whichever way the bytes came."""

    name: str
    type: str | None
    labels: list[str]
    metadata: dict[str, Any]
    #: the zip artifact that carries the file to the run's CI provider instead of an artifact of its own
    inside: str | None = None


class ArtifactUploads(ArtifactRetention):
    """``upload_artifact`` and ``upload_artifacts``, and the staging, limits and sending every upload shares."""

    async def upload(self, ctx: SessionContext, call: Call, p: UploadArtifactParams) -> Artifact:
        state = self.runs._require(p.test_run_id)
        if (p.path is None) == (p.content_base64 is None):
            raise E.InvalidParams("$", "give exactly one of path or content_base64")
        if p.content_base64 is not None and not p.name:
            raise E.InvalidParams("$.name", "a name is required with content_base64")
        await call.progress("begin", title="Uploading artifact", message=p.name or p.path)
        outcome = "failed"
        try:
            if p.content_base64 is not None:
                assert p.name is not None
                name = self._check_name(state, p.name)
                data = p.content_base64
                staged = await self._stage(state, name, len(data), lambda limit: trio.to_thread.run_sync(
                    self.cas.stage_bytes, data, limit))
            else:
                assert p.path is not None
                name, staged = await self._stage_path(ctx, state, p.path, p.name)
            entry_ids, meta = await self._register(ctx, state, staged, _Upload(name, p.type, p.labels, p.metadata))
            await self.store.commit()
            await self._after_upload(meta)
            outcome = f"{name}: {meta.action}"
        finally:
            with trio.CancelScope(shield=True):
                await call.progress("end", message=outcome)
        if entry_ids and p.wait:
            await self._wait(entry_ids, p.wait_s)
        return self.view(meta)

    async def upload_many(self, ctx: SessionContext, call: Call, p: UploadArtifactsParams) -> list[UploadItemResult]:
        state = self.runs._require(p.test_run_id)
        total = len(p.items)
        results: list[UploadItemResult | None] = [None] * total
        uploaded: list[ArtifactMeta] = []
        batch = self._batch_for(ctx, state, total)
        limiter = trio.CapacityLimiter(self.settings.concurrency)
        done = 0
        last_pct = -1
        await call.progress("begin", title=f"Uploading {total} artifact(s)", percentage=0)

        async def one(i: int) -> None:
            nonlocal done, last_pct
            item = p.items[i]
            label = item.name or os.path.basename(item.path) or item.path
            async with limiter:
                try:
                    name, staged = await self._stage_path(ctx, state, item.path, item.name)
                    label = name
                    inside = batch.zip_name if batch is not None and batch.takes(name, staged.size) else None
                    _, meta = await self._register(ctx, state, staged,
                                                   _Upload(name, item.type, item.labels, item.metadata, inside))
                    results[i] = UploadItemResult(name=name, ok=True, artifact=self.view(meta))
                    uploaded.append(meta)
                except E.WireError as exc:
                    results[i] = UploadItemResult(name=label, ok=False, error=_error_info(exc))
            done += 1
            pct = done * 100 // total
            if pct != last_pct:  # at most 101 notifications however many files
                last_pct = pct
                await call.progress("report", message=f"{done}/{total}: {label}", percentage=pct)

        async with trio.open_nursery() as nursery:
            for i in range(total):
                nursery.start_soon(one, i)
        if batch is not None:
            await self._send_batch(ctx, call, state, batch, uploaded, results)
        await self.store.commit()  # one group commit acknowledges every item
        await self._after_upload(*uploaded)
        failed = sum(1 for r in results if r is not None and not r.ok)
        await call.progress("end", message=f"{total - failed} uploaded, {failed} failed")
        return [r for r in results if r is not None]

    def _batch_for(self, ctx: SessionContext, state: RunState, count: int) -> BatchPlan | None:
        """The zip this call's small files go in when ``count`` more artifacts would cross the CI provider's cap
        on a job's artifacts (see :mod:`.batches`); None: each file goes on its own."""
        provider = state.meta.ci_provider
        if provider not in ctx.artifact_routes(provider)[0]:
            return None
        limit = ctx.caps(provider).limits.get(LIMIT_KEY)
        if limit is None:
            return None
        job = job_key(state.meta.ci)
        sent = sum(sent_to(metas.values(), provider) for run_id, metas in self.arts.items()
                   if (run := self.runs.runs.get(run_id)) is not None and job_key(run.meta.ci) == job)
        if sent + count <= limit:
            return None
        return BatchPlan(provider, limit, batch_name(self.arts.get(state.meta.id, {})))

    async def _send_batch(self, ctx: SessionContext, call: Call, state: RunState, plan: BatchPlan,
                          uploaded: list[ArtifactMeta], results: list[UploadItemResult | None]) -> None:
        """Store the zip of the call's batched files as an artifact of the run (sent like any other) and answer
        each batched file with it; when the zip cannot be made, those files answer with why."""
        members = [m for m in uploaded if m.inside == plan.zip_name]
        if not members:
            return
        names = sorted(m.name for m in members)
        entries = [(m.name, self.cas.path(m.sha256)) for m in members]
        try:
            path = await trio.to_thread.run_sync(write_zip, entries, None)
            try:
                size = os.path.getsize(path)
                staged = await self._stage(state, plan.zip_name, size,
                                           lambda limit: self.cas.stage_file_async(path, limit))
            finally:
                os.unlink(path)
            up = _Upload(plan.zip_name, None, [], {"files": names, "why": (
                f"{plan.provider} allows {plan.limit} artifacts per job: these files went in one zip")})
            _, zipped = await self._register(ctx, state, staged, up)
        except E.WireError as exc:
            failure = ErrorInfo(code=exc.code, data=exc.data, message=(
                f"stored, but not sent to {plan.provider}: its zip {plan.zip_name} failed: {exc.message}"))
            for i, r in enumerate(results):
                if r is not None and r.ok and r.name in names:
                    results[i] = UploadItemResult(name=r.name, ok=False, error=failure)
            return
        uploaded.append(zipped)
        for i, r in enumerate(results):
            if r is not None and r.ok and r.name in names:
                results[i] = UploadItemResult(name=r.name, ok=True, artifact=self.view(self.arts[state.meta.id][r.name]))
        message = (f"{len(names)} file(s) went to {plan.provider} inside {plan.zip_name}: it allows {plan.limit} "
                   f"artifacts per job")
        call.session.log_nowait(3, message)

    async def _stage_path(self, ctx: SessionContext, state: RunState, path: str,
                          name: str | None) -> tuple[str, StagedBlob]:
        name = self._check_name(state, name if name else os.path.basename(path.rstrip("/\\")) or path)
        policy = ctx.sources
        if policy is None:
            raise E.PathNotAllowed(path, "this session may not read files")

        def resolve() -> tuple[Path, int]:
            real = policy.resolve(path)
            try:
                return real, real.stat().st_size
            except OSError as exc:
                raise E.PathNotAllowed(path, f"cannot read: {exc.strerror} (the daemon cannot open this file; "
                                             "upload it by content_base64 or an artifact stream)") from None

        real, size = await trio.to_thread.run_sync(resolve)
        return name, await self._stage(state, name, size, lambda limit: self.cas.stage_file_async(real, limit),
                                       path=path)

    async def _stage(self, state: RunState, name: str, size: int,
                     stage: Callable[[int], Awaitable[StagedBlob]], path: str | None = None) -> StagedBlob:
        """Stage content under the limits, holding its size against the run's budget meanwhile."""
        run_id = state.meta.id
        self._check_limits(run_id, name, size)
        self._reserved[run_id] += size
        try:
            return await stage(self.settings.max_file_bytes)
        except TooLarge as exc:
            raise E.LimitExceeded(exc.limit, exc.actual,
                                  f"artifact {name!r} is larger than the per-file limit ({exc.limit} bytes)") from None
        except NotRegularFile as exc:
            raise E.PathNotAllowed(path or name, str(exc)) from None
        except OSError as exc:
            raise E.PathNotAllowed(path or name, f"cannot read: {exc.strerror or exc} (the daemon cannot open "
                                                 "this file; upload it by content_base64 or an artifact stream)") from None
        finally:
            self._reserved[run_id] -= size
            if not self._reserved[run_id]:
                del self._reserved[run_id]

    def _check_name(self, state: RunState, raw: str) -> str:
        name = normalise_name(raw)
        for other in self.arts.get(state.meta.id, {}):
            if other.startswith(name + "/") or name.startswith(other + "/"):
                raise E.PathNotAllowed(raw, f"conflicts with artifact {other!r} (a file cannot also be a folder)")
        return name

    def _run_bytes(self, run_id: str, excluding: str | None = None) -> int:
        return sum(m.size for n, m in self.arts.get(run_id, {}).items() if n != excluding)

    def _check_limits(self, run_id: str, name: str, size: int, *, reserved: bool = True) -> None:
        s = self.settings
        if size > s.max_file_bytes:
            raise E.LimitExceeded(s.max_file_bytes, size,
                                  f"artifact {name!r} is larger than the per-file limit ({s.max_file_bytes} bytes)")
        if s.retention_max_bytes is not None and size > s.retention_max_bytes:
            raise E.LimitExceeded(s.retention_max_bytes, size,
                                  f"artifact {name!r} is larger than the whole artifact store may be "
                                  f"({s.retention_max_bytes} bytes, artifact_retention_max_bytes)")
        total = self._run_bytes(run_id, excluding=name) + size + (self._reserved.get(run_id, 0) if reserved else 0)
        if total > s.max_run_bytes:
            raise E.LimitExceeded(s.max_run_bytes, total,
                                  f"the run's artifacts would exceed the per-run limit ({s.max_run_bytes} bytes)")

    @staticmethod
    def _check_provider_limit(ctx: SessionContext, state: RunState, name: str, size: int) -> None:
        """The run's CI provider's own limit on one artifact (its capability limit ``artifact_bytes``): a larger one
        is refused (-31006) unless an object store is configured to keep it."""
        provider = state.meta.ci_provider
        if provider not in ctx.artifact_routes(provider)[0]:
            return
        limit = ctx.caps(provider).limits.get(FILE_LIMIT_KEY)
        store = ctx.store is not None and ctx.available(ctx.store)
        if limit is not None and size > limit and not store:
            raise E.LimitExceeded(limit, size, f"artifact {name!r} is larger than {provider} takes ({limit} bytes "
                                               "per artifact); configure the object store ([artifact_store]) for it")

    async def _register(self, ctx: SessionContext, state: RunState, staged: StagedBlob,
                        up: _Upload) -> tuple[list[str], ArtifactMeta]:
        """Commit the blob and the metadata, and queue the provider writes (the caller commits the journal)."""
        run_id = state.meta.id
        try:
            self._check_limits(run_id, up.name, staged.size, reserved=False)  # the file may have grown
            self._check_provider_limit(ctx, state, up.name, staged.size)
        except E.LimitExceeded:
            await trio.to_thread.run_sync(self.cas.discard, staged)
            raise
        existing = self._meta(run_id, up.name)
        kind = detect_type(up.name, up.type)
        if existing is not None and existing.sha256 == staged.sha256:
            # same bytes: nothing to store or send (an unlink, done here so that nothing can remove
            # ``existing`` between this check and its journal record)
            self.cas.discard(staged)
            existing.action = "unchanged"
            existing.type, existing.labels, existing.metadata = kind, list(up.labels), dict(up.metadata)
            ids: list[str] = []  # (sent as it was before: on its own, or inside its earlier zip)
            if any(u.state == "failed" for u in existing.uploads):
                ids = self._send(ctx, state, existing)  # a failed upload is tried again, not reported done
            self.store.append(ArtifactSaved(existing))
            return ids, existing
        old: ArtifactMeta | None = None
        self._pins[staged.sha256] += 1
        try:
            await trio.to_thread.run_sync(self.cas.commit, staged)
            now = time.time()
            meta = ArtifactMeta(
                run_id=run_id, name=up.name, type=kind, size=staged.size, sha256=staged.sha256,
                mime_type=detect_mime(up.name, staged.head), created_at=now_iso(now), created_wall=now,
                labels=list(up.labels), metadata=dict(up.metadata), inside=up.inside,
            )
            old = self._put(meta)  # another upload of this name may have landed meanwhile: replace that one
            meta.action = "replaced" if old is not None else "created"
        finally:
            self._pins[staged.sha256] -= 1
            if not self._pins[staged.sha256]:
                del self._pins[staged.sha256]
        if old is not None:
            self._collect([old.sha256])
        ids = self._send(ctx, state, meta)
        self.store.append(ArtifactSaved(meta))
        return ids, meta

    async def _wait(self, entry_ids: list[str], wait_s: float) -> None:
        """``wait: true``: until the writes settle or the deadline; a failed one answers with its error."""
        with trio.move_on_after(wait_s):
            for entry_id in entry_ids:
                await self.outbox.wait(entry_id, wait_s)
        for entry_id in entry_ids:
            state = self.outbox.state(entry_id)
            if state.state == "failed" and state.error is not None:
                raise E.DeliveryFailed(state.error)

    @staticmethod
    def _routes(ctx: SessionContext, ci: str, meta: ArtifactMeta) -> tuple[list[str], str]:
        """Who gets a copy of ``meta`` and whose copy it reports: :meth:`SessionContext.artifact_routes`, without the
        CI provider when it gets the file inside its zip, or when the file is past the CI's own per-artifact limit
        (``artifact_bytes``; only accepted when the object store keeps it, see :meth:`_check_provider_limit`)."""
        providers, primary = ctx.artifact_routes(ci)  # + the object store if configured
        limit = ctx.caps(ci).limits.get(FILE_LIMIT_KEY) if ci in providers else None
        if meta.inside is not None or (limit is not None and meta.size > limit):
            providers = [p for p in providers if p != ci]
            primary = primary if primary in providers else providers[-1]
        return providers, primary

    def _send(self, ctx: SessionContext, state: RunState, meta: ArtifactMeta) -> list[str]:
        """One outbox write per provider: ``local`` always, the run's CI provider when it takes artifacts,
        the object store when one is configured (:meth:`SessionContext.artifact_routes`)."""
        providers, meta.primary = self._routes(ctx, state.meta.ci_provider, meta)
        op = self._op(meta, state.meta.output_dir)
        meta.uploads = []
        for provider in providers:
            entry_id = self.outbox.put(
                provider=provider, target=f"artifact:{meta.run_id}:{meta.name}", op=op, run_id=meta.run_id,
                session_id=ctx.session_id, ci=state.meta.ci, credential=ctx.artifact_credential_ref(provider),
                config=ctx.provider_config(provider))
            meta.uploads.append(ArtifactUpload(provider=provider, entry_id=entry_id))
        return [u.entry_id for u in meta.uploads if u.entry_id]
