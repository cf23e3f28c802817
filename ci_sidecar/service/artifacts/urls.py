"""Where an artifact can be fetched: the stored URL, a fresh presigned one, or one the provider's API verifies."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import msgspec
import trio

from ci_sidecar.protocol.artifact_methods import ArtifactNameParams, ArtifactUrlResult
from ci_sidecar.protocol.records import Artifact
from ci_sidecar.providers.base import LooksUpArtifacts, PresignsUrls

from ..model import ArtifactMeta, ArtifactSaved, ArtifactUpload
from .index import ArtifactIndex, _expired

if TYPE_CHECKING:
    from ..session_context import SessionContext

__all__ = ["ArtifactUrls"]

log = logging.getLogger("ci_sidecar.artifacts")


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def _is_file(url: str) -> bool:
    """Whether a ``file://`` URL names an existing regular file (somebody may have removed it)."""
    local = Path(unquote(urlparse(url).path))
    return await trio.to_thread.run_sync(local.is_file)



class ArtifactUrls(ArtifactIndex):
    """Listing artifacts and answering ``get_artifact_url``."""

    def list(self, run_id: str) -> list[Artifact]:
        self.runs._require(run_id)
        return [self.view(m) for m in self.arts.get(run_id, {}).values()]

    def by_name(self, run_id: str, name: str) -> Artifact | None:
        self.runs._require(run_id)
        meta = self._find(run_id, name)
        return self.view(meta) if meta is not None else None

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
        note = self._staged_note(primary, ctx)
        local = uploads.get("local")
        if local is not None and local.state == "delivered" and local.url and await _is_file(local.url):
            return ArtifactUrlResult(url=local.url, note=note)
        if ctx is not None:  # the copy may be there although its write is pending (a restart) or failed
            found = await self._lookup(meta, "local", ctx)
            if found is not None:
                return msgspec.structs.replace(found, note=note)
        return ArtifactUrlResult(url=None, note=note)  # never a dead link or a made-up one

    @staticmethod
    def _staged_note(primary: ArtifactUpload | None, ctx: SessionContext | None) -> str | None:
        """What the primary provider says of its staged tier (where the file waits, when its URL comes), when the
        artifact is staged there and has no URL of that provider yet."""
        if primary is None or primary.state != "delivered" or primary.tier != "staged" or ctx is None \
                or not ctx.available(primary.provider):
            return None
        return ctx.caps(primary.provider).artifacts.note or "staged for a step of the job that uploads it"

    async def _lookup(self, meta: ArtifactMeta, provider: str, ctx: SessionContext) -> ArtifactUrlResult | None:
        """A URL the provider's API verifies holds this content (``lookup_artifact``, when the provider has it),
        cached for ``lookup_ttl_s``: on the artifact (persisted), or in memory for misses and URLs that carry
        temporary credentials."""
        upload = next((u for u in meta.uploads if u.provider == provider), None)
        finder = self.outbox.providers.capable(provider, LooksUpArtifacts)
        if upload is None or finder is None or not ctx.available(provider):
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
            outcome = await finder.lookup_artifact(op, env, dict(remote))
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

    async def _fresh_url(self, meta: ArtifactMeta, ctx: SessionContext) -> ArtifactUrlResult | None:
        """A new URL from the primary provider when its last one expired or was never kept (a presigned
        object-store URL); None when the stored URL is still good or the provider cannot make one.

        URLs the provider marks ``ephemeral_url`` (they carry temporary credentials) live in memory only.
        """
        upload = next((u for u in meta.uploads if u.provider == meta.primary), None)
        if upload is None or upload.state != "delivered" or not ctx.available(meta.primary):
            return None
        presigner = self.outbox.providers.capable(meta.primary, PresignsUrls)
        if presigner is None:
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
        fresh = presigner.presign_url(remote, ctx.provider_env(meta.primary))
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
