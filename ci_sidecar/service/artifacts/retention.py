"""Removing artifacts: metadata edits, ``purge_artifacts_for_test_run`` and the store's age and size limits."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path

import trio

from ci_sidecar.protocol.artifact_methods import PurgeArtifactsResult, UpdateArtifactMetadataParams
from ci_sidecar.protocol.records import Artifact

from ..model import ArtifactMeta, ArtifactSaved, ArtifactsRemoved
from .index import ArtifactIndex

__all__ = ["ArtifactRetention"]

log = logging.getLogger("ci_sidecar.artifacts")


class ArtifactRetention(ArtifactIndex):
    """Metadata edits and everything that removes artifacts."""

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:  # a full disk or a bug must not end the daemon's maintenance
                log.exception("artifact retention failed; will try again")
            await trio.sleep(self.settings.retention_interval_s)


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
