"""The artifacts the service knows: records per run, blob reference counts, their journal and snapshot
(the :class:`~ci_sidecar.service.runs.StateHook` of the runs service) and the outcomes of their uploads."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime
from typing import Any

import msgspec

from ci_sidecar.delivery.outbox import Entry, Outbox
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.records import Artifact, ErrorInfo, UploadInfo
from ci_sidecar.providers.base import Outcome, UploadArtifact

from ..casstore import CasStore
from ..model import ArtifactMeta, ArtifactSaved, ArtifactsRemoved, StateImage
from ..runs import RunService
from ..store import StateStore
from .settings import ArtifactSettings, normalise_name

__all__ = ["ArtifactIndex"]

log = logging.getLogger("ci_sidecar.artifacts")


def _expired(iso: str | None, margin_s: float = 0.0) -> bool:
    if not iso:
        return False
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() <= time.time() + margin_s
    except ValueError:
        return False


class ArtifactIndex:
    """The artifact records and blob references shared by the parts of :class:`ArtifactService`."""

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
        #: (run id, name) → (sha256, url, expires_at) of URLs never persisted (they carry temporary credentials)
        self._urls: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        #: (run id, name, provider) → (sha256, url or None, expires_at, trusted until (epoch s)) of lookups whose
        #: answer is not persisted: misses, and URLs carrying temporary credentials
        self._found: dict[tuple[str, str, str], tuple[str, str | None, str | None, float]] = {}
        self._sizes: dict[str, int] = {}  # blob digest → bytes, for the digests artifacts use
        #: bytes of distinct content the artifacts use (what retention's size limit counts)
        self.store_bytes = 0
        runs.hooks.append(self)

    # --- views ----------------------------------------------------------------------------------

    def view(self, meta: ArtifactMeta) -> Artifact:
        carrier = self._meta(meta.run_id, meta.inside) if meta.inside else None
        if carrier is not None and carrier is not meta:
            # the file went to the CI provider inside a zip: its upload and URL are the zip's, and it says so
            zipped = self.view(carrier)
            own = msgspec.structs.replace(meta, inside=None)
            return msgspec.structs.replace(self.view(own), upload=zipped.upload, url=zipped.url,
                                           url_expires_at=zipped.url_expires_at, inside=carrier.name)
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

    def _op(self, meta: ArtifactMeta, output_dir: str | None) -> UploadArtifact:
        return UploadArtifact(run_id=meta.run_id, name=meta.name, stored_path=str(self.cas.path(meta.sha256)),
                              sha256=meta.sha256, size=meta.size, mime_type=meta.mime_type, output_dir=output_dir)


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

