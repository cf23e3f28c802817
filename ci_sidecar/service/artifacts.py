"""Artifacts: named files attached to a run, stored once by content, handed to the run's providers.

Every upload (a daemon-readable path, inline base64, or a chunked stream) ends the same way: the bytes
are staged and hashed in one pass (:mod:`.casstore`), the blob is committed (identical content is
stored once), the artifact's metadata is journaled with the run state, and one ``UploadArtifact``
write per provider goes through the outbox (the ``local`` provider always, to materialise the file
under the run's output folder; the run's CI provider too when it has an artifact tier). ``upload.state``
reflects the primary provider's outcome and is never "uploaded" for a write that failed.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import msgspec
import trio

from ci_sidecar.delivery.outbox import Entry, Outbox
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.artifact_methods import (
    ArtifactNameParams,
    ArtifactRunParams,
    ArtifactUrlResult,
    CloseArtifactStreamParams,
    OpenArtifactStreamParams,
    OpenArtifactStreamResult,
    PurgeArtifactsResult,
    UpdateArtifactMetadataParams,
    UploadArtifactParams,
    UploadArtifactsParams,
    UploadItemResult,
    WriteArtifactStreamParams,
    WriteArtifactStreamResult,
)
from ci_sidecar.protocol.records import Artifact, ErrorInfo, UploadInfo
from ci_sidecar.providers.base import Outcome, UploadArtifact

from .casstore import BlobWriter, CasStore, NotRegularFile, StagedBlob, TooLarge
from .mime import detect_mime, detect_type
from .model import ArtifactMeta, ArtifactSaved, ArtifactsRemoved, ArtifactUpload, StateImage
from .runs import RunService, RunState, now_iso
from .session_context import SessionContext
from .store import StateStore

if TYPE_CHECKING:
    from ci_sidecar.rpc.session import Call

__all__ = ["ArtifactService", "ArtifactSettings", "UploadFailed", "normalise_name"]

log = logging.getLogger("ci_sidecar.artifacts")

GiB = 1024 ** 3
_MAX_NAME_BYTES = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArtifactSettings:
    """Limits and timings of the artifact service (daemon-wide)."""

    max_file_bytes: int = 1 * GiB
    max_run_bytes: int = 10 * GiB
    #: a stream nobody wrote to for this long is discarded with its partial upload
    stream_idle_s: float = 600.0
    max_streams_per_session: int = 64
    #: how many files one ``upload_artifacts`` copies at once
    concurrency: int = 4
    #: retention of the store: artifacts older than this go (None: no age limit)
    retention_max_age_s: float | None = 30 * 86400.0
    #: retention of the store: past this many bytes of distinct content the oldest artifacts go (None: no limit)
    retention_max_bytes: int | None = None
    #: how long a URL found through a provider's API is trusted before it is looked up again
    lookup_ttl_s: float = 300.0
    #: how long "not found" is remembered (in memory), so a polling client does not hammer the provider
    lookup_miss_ttl_s: float = 2.0

    @property
    def retention_interval_s(self) -> float:
        """How often the age limit is applied: a quarter of it, between 0.2 s and a minute."""
        age = self.retention_max_age_s
        return 60.0 if age is None else max(0.2, min(60.0, age / 4))

    @classmethod
    def from_config(cls, config: Any, env: Mapping[str, str]) -> ArtifactSettings:
        """From the daemon config's ``artifact_*`` keys when its schema has them, else the daemon's
        ``CI_SIDECAR_ARTIFACT_*`` variables, else the defaults."""
        values: dict[str, Any] = {}
        days = getattr(config, "artifact_retention_days", None)
        if days is not None:
            values["retention_max_age_s"] = float(days) * 86400
        values["retention_max_bytes"] = getattr(config, "artifact_retention_max_bytes", None)
        for name, kind in (("max_file_bytes", int), ("max_run_bytes", int), ("stream_idle_s", float),
                           ("max_streams_per_session", int), ("concurrency", int)):
            value = getattr(config, f"artifact_{name}", None)
            if value is None:
                raw = env.get(f"CI_SIDECAR_ARTIFACT_{name.upper()}")
                if raw:
                    try:
                        value = kind(raw)
                    except ValueError:
                        log.warning("ignoring CI_SIDECAR_ARTIFACT_%s=%r: not a number", name.upper(), raw)
            if value is not None and value > 0:
                values[name] = value
        return cls(**values)


def normalise_name(raw: str) -> str:
    """An artifact name as a normalised relative path confined to the run's artifacts, else -31005."""
    if not raw:
        raise E.PathNotAllowed(raw, "empty name")
    if "\x00" in raw:
        raise E.PathNotAllowed(raw, "NUL byte in name")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise E.PathNotAllowed(raw, "control character in name")
    name = raw.replace("\\", "/")  # a Windows client's separators mean the same thing
    if name.startswith("/") or _DRIVE.match(name):
        raise E.PathNotAllowed(raw, "absolute path; artifact names are relative")
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../"):
        raise E.PathNotAllowed(raw, "resolves outside the run's artifacts")
    if len(norm.encode()) > _MAX_NAME_BYTES or any(len(part.encode()) > 255 for part in norm.split("/")):
        raise E.PathNotAllowed(raw, "name too long")
    return norm


class UploadFailed(E.SidecarError):
    """A provider upload awaited with ``wait: true`` failed: answers the delivery error's own code."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message, error.data)
        self.code = error.code  # after the base sets the class default  # type: ignore[misc]


def _error_info(exc: E.SidecarError) -> ErrorInfo:
    return ErrorInfo(code=exc.code, message=exc.message, data=exc.data)


def _expired(iso: str | None, margin_s: float = 0.0) -> bool:
    if not iso:
        return False
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() <= time.time() + margin_s
    except ValueError:
        return False


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def _is_file(url: str) -> bool:
    """Whether a ``file://`` URL names an existing regular file (somebody may have removed it)."""
    local = Path(unquote(urlparse(url).path))
    return await trio.to_thread.run_sync(local.is_file)


@dataclass
class _Stream:
    handle: str
    run_id: str
    name: str
    type: str | None
    labels: list[str]
    metadata: dict[str, Any]
    size: int | None
    session_id: str
    writer: BlobWriter
    last_used: float = field(default_factory=time.monotonic)
    lock: trio.Lock = field(default_factory=trio.Lock)
    dead: bool = False


@dataclass
class _Upload:
    """What a finished upload asks for, whichever way the bytes came."""

    name: str
    type: str | None
    labels: list[str]
    metadata: dict[str, Any]


class ArtifactService:
    """The ten artifact methods, their persisted state and the blob store behind them."""

    def __init__(self, store: StateStore, outbox: Outbox, runs: RunService,
                 settings: ArtifactSettings | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.runs = runs
        self.settings = settings or ArtifactSettings()
        self.cas = CasStore(store.dir / "cas")
        #: run id → name → metadata (insertion order is creation order)
        self.arts: dict[str, dict[str, ArtifactMeta]] = {}
        self._refs: Counter[str] = Counter()  # blob digest → artifacts using it
        self._pins: Counter[str] = Counter()  # blobs being committed: never collected meanwhile
        self._reserved: Counter[str] = Counter()  # run id → bytes of uploads in progress
        self._streams: dict[str, _Stream] = {}
        #: (run id, name) → (sha256, url, expires_at) of URLs never persisted (they carry temporary credentials)
        self._urls: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        #: (run id, name, provider) → (sha256, url or None, expires_at, trusted until (epoch s)) of lookups whose
        #: answer is not persisted: misses, and URLs carrying temporary credentials
        self._found: dict[tuple[str, str, str], tuple[str, str | None, str | None, float]] = {}
        self._sizes: dict[str, int] = {}  # blob digest → bytes, for the digests artifacts use
        #: bytes of distinct content the artifacts use (what retention's size limit counts)
        self.store_bytes = 0
        runs.hooks.append(self)

    # --- the method table -----------------------------------------------------------------------

    def handlers(self) -> dict[str, Any]:
        def ctx(call: Call) -> SessionContext:
            return call.session.context

        async def upload(call: Call, p: UploadArtifactParams) -> Any:
            return await self.upload(ctx(call), call, p)

        async def upload_many(call: Call, p: UploadArtifactsParams) -> Any:
            return await self.upload_many(ctx(call), call, p)

        async def open_stream(call: Call, p: OpenArtifactStreamParams) -> Any:
            return await self.open_stream(ctx(call), p)

        async def write_stream(call: Call, p: WriteArtifactStreamParams) -> Any:
            return await self.write_stream(p)

        async def close_stream(call: Call, p: CloseArtifactStreamParams) -> Any:
            return await self.close_stream(ctx(call), p)

        async def url(call: Call, p: ArtifactNameParams) -> Any:
            return await self.url(p, ctx(call))

        async def list_all(call: Call, p: ArtifactRunParams) -> Any:
            return self.list(p.test_run_id)

        async def by_name(call: Call, p: ArtifactNameParams) -> Any:
            return self.by_name(p.test_run_id, p.name)

        async def update(call: Call, p: UpdateArtifactMetadataParams) -> Any:
            return await self.update_metadata(p)

        async def purge(call: Call, p: ArtifactRunParams) -> Any:
            return await self.purge(p.test_run_id)

        return {
            "upload_artifact": upload,
            "upload_artifacts": upload_many,
            "open_artifact_stream": open_stream,
            "write_artifact_stream": write_stream,
            "close_artifact_stream": close_stream,
            "get_artifact_url": url,
            "get_artifacts_for_test_run": list_all,
            "get_artifact_by_name": by_name,
            "update_artifact_metadata": update,
            "purge_artifacts_for_test_run": purge,
        }

    async def run(self) -> None:
        """Discard streams left idle (their partial uploads) and apply the store's retention, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep_streams)
            nursery.start_soon(self._retention_loop)

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:  # a full disk or a bug must not end the daemon's maintenance
                log.exception("artifact retention failed; will try again")
            await trio.sleep(self.settings.retention_interval_s)

    async def _sweep_streams(self) -> None:
        interval = max(0.05, min(30.0, self.settings.stream_idle_s / 4))
        while True:
            await trio.sleep(interval)
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if now - stream.last_used > self.settings.stream_idle_s:
                    log.info("artifact stream %s (%s) idle for %.0f s: discarded", stream.handle, stream.name,
                             now - stream.last_used)
                    self._discard_stream(stream)

    def session_ended(self, session_id: str) -> None:
        """A session's open streams go with it (nobody can finish them)."""
        for stream in [s for s in self._streams.values() if s.session_id == session_id]:
            self._discard_stream(stream)

    # --- views ----------------------------------------------------------------------------------

    def view(self, meta: ArtifactMeta) -> Artifact:
        uploads = {u.provider: u for u in meta.uploads}
        primary = uploads.get(meta.primary)
        local = uploads.get("local")
        state = "pending"
        error = None
        if primary is not None:
            if primary.state == "delivered":
                state = "local" if primary.provider == "local" else ("staged" if primary.tier == "staged" else "uploaded")
            elif primary.state == "failed":
                state, error = "failed", primary.error
        url, expires = None, None
        if primary is not None and primary.state == "delivered" and primary.url and not _expired(primary.url_expires_at):
            url, expires = primary.url, primary.url_expires_at
        elif local is not None and local.state == "delivered" and local.url:
            url = local.url
        return Artifact(
            name=meta.name, type=meta.type, test_run_id=meta.run_id, size=meta.size, sha256=meta.sha256,
            mime_type=meta.mime_type, created_at=meta.created_at, stored_path=str(self.cas.path(meta.sha256)),
            upload=UploadInfo(state=state, action=meta.action, provider=meta.primary, error=error),  # type: ignore[arg-type]
            labels=list(meta.labels), metadata=dict(meta.metadata), url=url, url_expires_at=expires,
        )

    def _meta(self, run_id: str, name: str) -> ArtifactMeta | None:
        return self.arts.get(run_id, {}).get(name)

    def list(self, run_id: str) -> list[Artifact]:
        self.runs._require(run_id)
        return [self.view(m) for m in self.arts.get(run_id, {}).values()]

    def by_name(self, run_id: str, name: str) -> Artifact | None:
        self.runs._require(run_id)
        meta = self._find(run_id, name)
        return self.view(meta) if meta is not None else None

    def _find(self, run_id: str, name: str) -> ArtifactMeta | None:
        meta = self._meta(run_id, name)
        if meta is None:
            try:
                meta = self._meta(run_id, normalise_name(name))
            except E.PathNotAllowed:
                return None
        return meta

    def _require_artifact(self, run_id: str, name: str) -> ArtifactMeta:
        self.runs._require(run_id)
        meta = self._find(run_id, name)
        if meta is None:
            raise E.UnknownArtifact(run_id, name)
        return meta

    async def url(self, p: ArtifactNameParams, ctx: SessionContext | None = None) -> ArtifactUrlResult:
        """The primary provider's URL when known; else one a lookup through its API verifies; else the local
        copy's ``file://`` URL when that file holds the content; else null. Never a guessed URL."""
        meta = self._require_artifact(p.test_run_id, p.name)
        fresh = await self._fresh_url(meta, ctx) if ctx is not None else None
        if fresh is not None:
            return fresh
        uploads = {u.provider: u for u in meta.uploads}
        primary = uploads.get(meta.primary)
        if primary is not None and primary.state == "delivered" and primary.url \
                and not _expired(primary.url_expires_at):
            if not primary.url.startswith("file://") or await _is_file(primary.url):
                return ArtifactUrlResult(url=primary.url, expires_at=primary.url_expires_at)
        if ctx is not None and meta.primary != "local":
            found = await self._lookup(meta, meta.primary, ctx)
            if found is not None:
                return found
        local = uploads.get("local")
        if local is not None and local.state == "delivered" and local.url and await _is_file(local.url):
            return ArtifactUrlResult(url=local.url)
        if ctx is not None:  # the copy may be there although its write is pending (a restart) or failed
            found = await self._lookup(meta, "local", ctx)
            if found is not None:
                return found
        return ArtifactUrlResult(url=None)  # never a dead link or a made-up one

    async def _lookup(self, meta: ArtifactMeta, provider: str, ctx: SessionContext) -> ArtifactUrlResult | None:
        """A URL the provider's API verifies holds this content (``lookup_artifact``, when the provider has it),
        cached for ``lookup_ttl_s``: on the artifact (persisted), or in memory for misses and URLs that carry
        temporary credentials."""
        upload = next((u for u in meta.uploads if u.provider == provider), None)
        lookup = getattr(self.outbox.providers.get(provider), "lookup_artifact", None)
        if upload is None or lookup is None or not ctx.available(provider):
            return None
        now = time.time()
        if upload.found_url and upload.found_until is not None and upload.found_until > now \
                and not _expired(upload.found_expires_at):
            return ArtifactUrlResult(url=upload.found_url, expires_at=upload.found_expires_at)
        key = (meta.run_id, meta.name, provider)
        cached = self._found.get(key)
        if cached is not None and cached[0] == meta.sha256 and cached[3] > now and not _expired(cached[2]):
            return ArtifactUrlResult(url=cached[1], expires_at=cached[2]) if cached[1] else None
        state = self.runs.runs.get(meta.run_id)
        if state is None:
            return None
        env = ctx.provider_env(provider)
        if state.meta.ci is not None:
            env.ci = state.meta.ci  # the run's repository and CI run, not the asking session's
        op = self._op(meta, state.meta.output_dir)
        remote = self.outbox.remote(provider, f"artifact:{meta.run_id}:{meta.name}")
        try:
            outcome = await lookup(op, env, dict(remote))
        except Exception:  # a provider bug answers "not verifiable", never a broken get_artifact_url
            log.exception("artifact lookup of %s through %s failed", meta.name, provider)
            outcome = None
        if self._meta(meta.run_id, meta.name) is not meta:
            return None  # replaced or removed while we asked
        if outcome is None or outcome.kind != "delivered" or not outcome.url:
            self._found[key] = (meta.sha256, None, None, time.time() + self.settings.lookup_miss_ttl_s)
            return None
        found = outcome.remote or {}
        expires = str(found["expires_at"]) if found.get("expires_at") else None
        until = time.time() + self.settings.lookup_ttl_s
        if expires:  # re-asked before the URL dies, never after
            until = min(until, _epoch(expires) - min(30.0, 0.1 * max(0.0, _epoch(expires) - time.time())))
        if found.get("ephemeral_url"):
            self._found[key] = (meta.sha256, outcome.url, expires, until)
        else:
            upload.found_url, upload.found_expires_at, upload.found_until = outcome.url, expires, until
            self.store.append(ArtifactSaved(meta))
            await self.store.commit()
        return ArtifactUrlResult(url=outcome.url, expires_at=expires)

    def _op(self, meta: ArtifactMeta, output_dir: str | None) -> UploadArtifact:
        return UploadArtifact(run_id=meta.run_id, name=meta.name, stored_path=str(self.cas.path(meta.sha256)),
                              sha256=meta.sha256, size=meta.size, mime_type=meta.mime_type, output_dir=output_dir)

    async def _fresh_url(self, meta: ArtifactMeta, ctx: SessionContext) -> ArtifactUrlResult | None:
        """A new URL from the primary provider when its last one expired or was never kept (a presigned
        object-store URL); None when the stored URL is still good or the provider cannot make one.

        URLs the provider marks ``ephemeral_url`` (they carry temporary credentials) live in memory only.
        """
        upload = next((u for u in meta.uploads if u.provider == meta.primary), None)
        if upload is None or upload.state != "delivered" or not ctx.available(meta.primary):
            return None
        presign = getattr(self.outbox.providers.get(meta.primary), "presign_url", None)
        if presign is None:
            return None
        config = ctx.provider_config(meta.primary)
        margin = min(30.0, 0.1 * float(config.get("presign_ttl_s") or 300))  # never hand out a dying link
        cached = self._urls.get((meta.run_id, meta.name))
        if cached is not None and cached[0] == meta.sha256 and not _expired(cached[2], margin):
            return ArtifactUrlResult(url=cached[1], expires_at=cached[2])
        if upload.url and not _expired(upload.url_expires_at, margin):
            return None
        remote = self.outbox.remote(meta.primary, f"artifact:{meta.run_id}:{meta.name}")
        if remote.get("sha256") != meta.sha256:
            return None  # what the provider holds is not this content (yet)
        fresh = presign(remote, ctx.provider_env(meta.primary))
        if fresh is None:
            return None
        url, expires = fresh
        if remote.get("ephemeral_url"):
            self._urls[(meta.run_id, meta.name)] = (meta.sha256, url, expires)
        else:
            upload.url, upload.url_expires_at = url, expires
            self.store.append(ArtifactSaved(meta))
            await self.store.commit()
        return ArtifactUrlResult(url=url, expires_at=expires)

    # --- uploads ----------------------------------------------------------------------------------

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
                    _, meta = await self._register(ctx, state, staged,
                                                   _Upload(name, item.type, item.labels, item.metadata))
                    results[i] = UploadItemResult(name=name, ok=True, artifact=self.view(meta))
                    uploaded.append(meta)
                except E.SidecarError as exc:
                    results[i] = UploadItemResult(name=label, ok=False, error=_error_info(exc))
            done += 1
            pct = done * 100 // total
            if pct != last_pct:  # at most 101 notifications however many files
                last_pct = pct
                await call.progress("report", message=f"{done}/{total}: {label}", percentage=pct)

        async with trio.open_nursery() as nursery:
            for i in range(total):
                nursery.start_soon(one, i)
        await self.store.commit()  # one group commit acknowledges every item
        await self._after_upload(*uploaded)
        failed = sum(1 for r in results if r is not None and not r.ok)
        await call.progress("end", message=f"{total - failed} uploaded, {failed} failed")
        return [r for r in results if r is not None]

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

    async def _register(self, ctx: SessionContext, state: RunState, staged: StagedBlob,
                        up: _Upload) -> tuple[list[str], ArtifactMeta]:
        """Commit the blob and the metadata, and queue the provider writes (the caller commits the journal)."""
        run_id = state.meta.id
        try:
            self._check_limits(run_id, up.name, staged.size, reserved=False)  # the file may have grown
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
            ids: list[str] = []
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
                labels=list(up.labels), metadata=dict(up.metadata),
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
                raise UploadFailed(state.error)

    def _send(self, ctx: SessionContext, state: RunState, meta: ArtifactMeta) -> list[str]:
        """One outbox write per provider: ``local`` always, the run's CI provider when it takes artifacts,
        the object store when one is configured (:meth:`SessionContext.artifact_routes`)."""
        providers, meta.primary = ctx.artifact_routes(state.meta.ci_provider)  # + the object store if configured
        op = self._op(meta, state.meta.output_dir)
        meta.uploads = []
        for provider in providers:
            entry_id = self.outbox.put(
                provider=provider, target=f"artifact:{meta.run_id}:{meta.name}", op=op, run_id=meta.run_id,
                session_id=ctx.session_id, ci=state.meta.ci, credential=ctx.artifact_credential_ref(provider),
                config=ctx.provider_config(provider))
            meta.uploads.append(ArtifactUpload(provider=provider, entry_id=entry_id))
        return [u.entry_id for u in meta.uploads if u.entry_id]

    # --- streams ----------------------------------------------------------------------------------

    async def open_stream(self, ctx: SessionContext, p: OpenArtifactStreamParams) -> OpenArtifactStreamResult:
        state = self.runs._require(p.test_run_id)
        name = self._check_name(state, p.name)
        if p.size is not None:
            self._check_limits(state.meta.id, name, p.size)
        mine = sum(1 for s in self._streams.values() if s.session_id == ctx.session_id)
        if mine >= self.settings.max_streams_per_session:
            raise E.LimitExceeded(self.settings.max_streams_per_session, mine + 1,
                                  "too many open artifact streams in this session")
        limit = self.settings.max_file_bytes if p.size is None else min(p.size, self.settings.max_file_bytes)
        writer = await trio.to_thread.run_sync(self.cas.writer, limit)
        stream = _Stream(handle=uuid.uuid4().hex, run_id=state.meta.id, name=name, type=p.type,
                         labels=list(p.labels), metadata=dict(p.metadata), size=p.size,
                         session_id=ctx.session_id, writer=writer)
        self._streams[stream.handle] = stream
        return OpenArtifactStreamResult(handle=stream.handle)

    def _stream(self, run_id: str, handle: str) -> _Stream:
        stream = self._streams.get(handle)
        if stream is None or stream.run_id != run_id:
            raise E.InvalidParams("$.handle", "unknown artifact stream (closed, discarded after 10 minutes idle "
                                              "or when its session ended, or of another run)")
        return stream

    async def write_stream(self, p: WriteArtifactStreamParams) -> WriteArtifactStreamResult:
        stream = self._stream(p.test_run_id, p.handle)
        async with stream.lock:
            if stream.dead:
                raise E.InvalidParams("$.handle", "the artifact stream was discarded")
            stream.last_used = time.monotonic()
            try:
                await trio.to_thread.run_sync(stream.writer.write_at, p.offset, p.chunk_base64)
            except ValueError as exc:
                raise E.InvalidParams("$.offset", f"{exc}; send from offset {stream.writer.written}") from None
            except TooLarge as exc:
                self._discard_stream(stream, locked=True)
                raise E.LimitExceeded(exc.limit, exc.actual,
                                      f"artifact {stream.name!r} passed its size limit ({exc.limit} bytes); "
                                      "the stream was discarded") from None
            finally:
                if stream.dead:
                    await trio.to_thread.run_sync(stream.writer.discard)
            return WriteArtifactStreamResult(written=stream.writer.written)

    async def close_stream(self, ctx: SessionContext, p: CloseArtifactStreamParams) -> Artifact:
        stream = self._stream(p.test_run_id, p.handle)
        state = self.runs._require(p.test_run_id)
        async with stream.lock:
            if stream.dead:
                raise E.InvalidParams("$.handle", "the artifact stream was discarded")
            written = stream.writer.written
            if stream.size is not None and written != stream.size:
                raise E.InvalidParams("$.handle", f"incomplete: {written} of {stream.size} byte(s) written; "
                                                  f"send from offset {written}")
            self._streams.pop(stream.handle, None)
            stream.dead = True
            try:
                staged = await trio.to_thread.run_sync(stream.writer.finish)
            except BaseException:
                await trio.to_thread.run_sync(stream.writer.discard)
                raise
        if p.sha256 is not None and p.sha256.lower() != staged.sha256:
            await trio.to_thread.run_sync(self.cas.discard, staged)
            raise E.InvalidParams("$.sha256", f"does not match the {staged.size} byte(s) received "
                                              f"(sha256 {staged.sha256}); the upload was discarded")
        entry_ids, meta = await self._register(ctx, state, staged,
                                               _Upload(stream.name, stream.type, stream.labels, stream.metadata))
        await self.store.commit()
        await self._after_upload(meta)
        if entry_ids and p.wait:
            await self._wait(entry_ids, p.wait_s)
        return self.view(meta)

    def _discard_stream(self, stream: _Stream, *, locked: bool = False) -> None:
        self._streams.pop(stream.handle, None)
        stream.dead = True
        if not locked and not stream.lock.locked():
            stream.writer.discard()  # close + unlink: quick; a busy stream is discarded by its writer

    # --- metadata, purge --------------------------------------------------------------------------

    async def update_metadata(self, p: UpdateArtifactMetadataParams) -> Artifact:
        meta = self._require_artifact(p.test_run_id, p.name)
        for key, value in p.metadata.items():
            if value is None:
                meta.metadata.pop(key, None)
            else:
                meta.metadata[key] = value
        if p.labels is not None:
            meta.labels = list(dict.fromkeys(p.labels))
        self.store.append(ArtifactSaved(meta))
        await self.store.commit()
        return self.view(meta)

    async def purge(self, run_id: str) -> PurgeArtifactsResult:
        self.runs._require(run_id)
        metas = list(self.arts.get(run_id, {}).values())
        return PurgeArtifactsResult(removed=await self._remove(metas))

    async def _remove(self, metas: list[ArtifactMeta]) -> int:
        """Forget artifacts (journaled), delete blobs nothing else uses and the local copies under the runs'
        output folders; returns how many were removed."""
        by_run: dict[str, list[str]] = {}
        for meta in metas:
            if self._meta(meta.run_id, meta.name) is meta:
                by_run.setdefault(meta.run_id, []).append(meta.name)
        if not by_run:
            return 0
        for run_id, names in by_run.items():
            self._drop(run_id, names)
            self.store.append(ArtifactsRemoved(run_id, names))
        self._collect([m.sha256 for m in metas])
        await self.store.commit()
        for run_id, names in by_run.items():
            state = self.runs.runs.get(run_id)
            if state is not None:
                await trio.to_thread.run_sync(_remove_local_copies, Path(state.meta.output_dir) / "artifacts", names)
        return sum(len(n) for n in by_run.values())

    # --- retention --------------------------------------------------------------------------------

    def _retention_victims(self, *, by_age: bool, keep: frozenset[tuple[str, str]]) -> list[ArtifactMeta]:
        """What retention removes now, oldest first: everything past the age limit, then the oldest until
        the distinct content the rest uses fits the size limit (a blob counts until its last user goes)."""
        s = self.settings
        over_size = s.retention_max_bytes is not None and self.store_bytes > s.retention_max_bytes
        over_age = by_age and s.retention_max_age_s is not None
        if not (over_size or over_age):
            return []
        metas = sorted((m for run in self.arts.values() for m in run.values()
                        if (m.run_id, m.name) not in keep), key=lambda m: m.created_wall)
        victims: list[ArtifactMeta] = []
        refs = Counter(self._refs)
        total = self.store_bytes
        cutoff = time.time() - s.retention_max_age_s if over_age and s.retention_max_age_s is not None else None
        for meta in metas:
            too_old = cutoff is not None and meta.created_wall < cutoff
            too_big = s.retention_max_bytes is not None and total > s.retention_max_bytes
            if not (too_old or too_big):
                break  # sorted by age: the rest are younger and fit
            victims.append(meta)
            refs[meta.sha256] -= 1
            if refs[meta.sha256] <= 0:
                total -= self._sizes.get(meta.sha256, meta.size)
        return victims

    async def apply_retention(self, *, by_age: bool = True,
                              keep: frozenset[tuple[str, str]] = frozenset()) -> int:
        """Remove artifacts past the store's age or size limit, oldest first (never those in ``keep``:
        (run id, name) of uploads being answered); returns how many went."""
        victims = self._retention_victims(by_age=by_age, keep=keep)
        if not victims:
            return 0
        removed = await self._remove(victims)
        s = self.settings
        log.info("artifact retention: removed %d artifact(s) (max age %s s, max %s bytes); the store holds %d bytes",
                 removed, s.retention_max_age_s, s.retention_max_bytes, self.store_bytes)
        if s.retention_max_bytes is not None and self.store_bytes > s.retention_max_bytes:
            log.warning("artifact store holds %d bytes, over its %d byte limit, with only new uploads left",
                        self.store_bytes, s.retention_max_bytes)
        return removed

    async def _after_upload(self, *metas: ArtifactMeta) -> None:
        """The size limit right after uploads (the age limit runs on its schedule): cheap unless over it."""
        limit = self.settings.retention_max_bytes
        if limit is not None and self.store_bytes > limit:
            await self.apply_retention(by_age=False, keep=frozenset((m.run_id, m.name) for m in metas))

    # --- delivery outcomes ------------------------------------------------------------------------

    def on_outcome(self, entry: Entry, outcome: Outcome | None, error: ErrorInfo | None) -> None:
        """The outbox settled an upload: record it on the artifact (the outbox commits the journal)."""
        op = entry.op
        if not isinstance(op, UploadArtifact):
            return
        meta = self._meta(op.run_id, op.name)
        upload = next((u for u in meta.uploads if u.entry_id == entry.id), None) if meta else None
        if meta is None or upload is None:
            self._collect([op.sha256])  # an upload of content since replaced or purged
            return
        if error is None and outcome is not None and outcome.kind == "delivered":
            upload.state, upload.error = "delivered", None
            upload.url, upload.tier = outcome.url, outcome.tier
            expires = (outcome.remote or {}).get("expires_at")
            upload.url_expires_at = str(expires) if expires else None
        else:
            upload.state = "failed"
            upload.error = error or ErrorInfo(code=-31004, message=outcome.message if outcome else "upload failed")
        self.store.append(ArtifactSaved(meta))

    # --- state: the StateHook of RunService --------------------------------------------------------

    def _ref(self, meta: ArtifactMeta) -> None:
        if self._refs[meta.sha256] <= 0:
            self._sizes[meta.sha256] = meta.size
            self.store_bytes += meta.size
        self._refs[meta.sha256] += 1

    def _unref(self, meta: ArtifactMeta) -> None:
        self._refs[meta.sha256] -= 1
        if self._refs[meta.sha256] <= 0:
            self.store_bytes -= self._sizes.pop(meta.sha256, meta.size)

    def _put(self, meta: ArtifactMeta) -> ArtifactMeta | None:
        run = self.arts.setdefault(meta.run_id, {})
        old = run.pop(meta.name, None)
        if old is not None:
            self._unref(old)
        run[meta.name] = meta
        self._ref(meta)
        return old

    def _drop(self, run_id: str, names: list[str]) -> None:
        run = self.arts.get(run_id, {})
        for name in names:
            meta = run.pop(name, None)
            if meta is not None:
                self._unref(meta)
                self._urls.pop((run_id, name), None)
                for provider in {"local"} | {u.provider for u in meta.uploads}:
                    self._found.pop((run_id, name, provider), None)
        if not run:
            self.arts.pop(run_id, None)

    def _pending_digests(self) -> set[str]:
        return {e.op.sha256 for e in self.outbox.image().pending if isinstance(e.op, UploadArtifact)}

    def _collect(self, digests: list[str]) -> int:
        """Delete blobs no artifact, commit in progress or pending upload uses; returns how many."""
        candidates = [d for d in set(digests) if self._refs.get(d, 0) <= 0 and not self._pins.get(d)]
        if not candidates:
            return 0
        busy = self._pending_digests()
        removed = 0
        for digest in candidates:
            self._refs.pop(digest, None)
            if digest not in busy:
                self.cas.remove(digest)  # an unlink: quick enough to do here, and no race with commits
                removed += 1
        return removed

    def load_image(self, image: StateImage) -> None:
        for meta in image.artifacts:
            self._put(meta)

    def replay(self, record: Any) -> bool:
        if isinstance(record, ArtifactSaved):
            self._put(record.meta)
            return True
        if isinstance(record, ArtifactsRemoved):
            self._drop(record.run_id, record.names)
            return True
        return False

    def recovered(self) -> None:
        """After replay: forget artifacts of deleted runs and delete blobs nothing uses (a crash may
        have left them between a blob commit and its journal record)."""
        for run_id in [r for r in self.arts if r not in self.runs.runs]:
            self._drop(run_id, list(self.arts[run_id]))
        keep = {d for d, n in self._refs.items() if n > 0} | self._pending_digests()
        orphans = self.cas.all_digests() - keep
        for digest in orphans:
            self.cas.remove(digest)
        if orphans:
            log.info("artifacts: removed %d unreferenced blob(s)", len(orphans))
        n = sum(len(v) for v in self.arts.values())
        if n:
            log.info("recovered %d artifact(s)", n)

    def fill_image(self, image: StateImage) -> None:
        image.artifacts = [msgspec.structs.replace(m, uploads=[msgspec.structs.replace(u) for u in m.uploads])
                           for run in self.arts.values() for m in run.values()]

    def run_deleted(self, run_id: str) -> None:
        """The runs service deleted a run (its retention): its artifacts go with it."""
        metas = list(self.arts.get(run_id, {}).values())
        if metas:
            self._drop(run_id, [m.name for m in metas])
            self.store.append(ArtifactsRemoved(run_id, [m.name for m in metas]))
            self._collect([m.sha256 for m in metas])


def _remove_local_copies(root: Path, names: list[str]) -> None:
    """Delete materialised copies under ``<output>/artifacts`` (never following a link out of it)."""
    try:
        real_root = root.resolve(strict=True)
    except OSError:
        return
    for name in names:
        path = root / name
        try:
            parent = path.parent.resolve(strict=True)
        except OSError:
            continue
        if parent != real_root and real_root not in parent.parents:
            continue
        try:
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass
