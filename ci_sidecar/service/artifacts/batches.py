"""Batching small files into one zip artifact when a CI provider caps the artifacts of a job.

GitHub Actions refuses a job's 501st artifact. An ``upload_artifacts`` call that would cross a provider's
``artifacts_per_job`` limit (its capabilities say so) sends its small files to that provider as one zip artifact
of the run instead of one artifact each: every file is still stored (and sent to the object store) on its own,
and its answer names the zip that carries it (``inside``) and reports that zip's upload and URL. Files above
:data:`SMALL_FILE_BYTES` still go on their own; past the limit the provider refuses them and the answer says so.

The count is what this daemon sent to the provider for the job (runs of the same CI job); artifacts that other
steps of the job uploaded themselves are not known here, and the provider's refusal reports them.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ci_sidecar.protocol.records import CIContext

from ..model import ArtifactMeta

__all__ = ["SMALL_FILE_BYTES", "LIMIT_KEY", "FILE_LIMIT_KEY", "BatchPlan", "batch_name", "job_key", "sent_to", "write_zip"]

#: files up to this size are batched (the zip of a call's small files stays small)
SMALL_FILE_BYTES = 1024 * 1024
#: the capability limit a provider declares for the artifacts one job may create
LIMIT_KEY = "artifacts_per_job"
#: the capability limit a provider declares for one artifact's size (Azure DevOps: 100 MB per attachment)
FILE_LIMIT_KEY = "artifact_bytes"


@dataclass
class BatchPlan:
    """One ``upload_artifacts`` call whose small files go to ``provider`` as the zip artifact ``zip_name``."""

    provider: str
    limit: int
    zip_name: str

    def takes(self, name: str, size: int) -> bool:
        return size <= SMALL_FILE_BYTES and name != self.zip_name


def job_key(ci: CIContext) -> tuple[str, str | None, str | None, int | None]:
    """Which CI job a run belongs to (artifact caps count per job, across the job's runs)."""
    return (ci.provider, ci.build_id, ci.job, ci.run_attempt)


def sent_to(metas: Iterable[ArtifactMeta], provider: str) -> int:
    """How many of ``metas`` went to ``provider`` as artifacts of their own."""
    return sum(1 for m in metas if any(u.provider == provider for u in m.uploads))


def batch_name(taken: Iterable[str]) -> str:
    """``batch-<n>.zip``, the first number no artifact of the run uses."""
    names = set(taken)
    n = 1
    while f"batch-{n}.zip" in names:
        n += 1
    return f"batch-{n}.zip"


def write_zip(entries: list[tuple[str, Path]], folder: str) -> str:
    """A deflated zip of ``entries`` (entry name, stored file) in a new file under ``folder``; its path.
    Blocking: call in a worker thread."""
    fd, path = tempfile.mkstemp(prefix=".batch-", suffix=".zip", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, stored in sorted(entries):
                zf.write(stored, arcname=name)
    except BaseException:
        os.unlink(path)
        raise
    return path
