"""The "staged" tier: files put where a CI collects them at the end of the job.

Jenkins (``junit``, ``archiveArtifacts``), CircleCI (``store_test_results``, ``store_artifacts``) and GitLab
(``artifacts:paths``, ``artifacts:reports:junit``) have no API a job step could publish through; they pick
files up from the workspace. A :class:`StagingArea` is one folder under the workspace (default
``ci-sidecar-staged``) that the pipeline's collect step names:

* ``junit/<run name>-<run id>.xml`` — the run as one JUnit document;
* ``artifacts/<run id>/<artifact name>`` — each artifact, under its own (relative) name.

Run ids are unique, so parallel jobs and nodes sharing a workspace (Jenkins ``parallel`` on one agent,
matrix legs) never write the same file, and a retried write replaces its own file with the same name.
:meth:`StagingArea.stage_file` places any file under a name of the provider's choosing.

Nothing is published by staging: the CI uploads the folder after the job, so a provider reports a staged
file as available when the job ends, never as done.
Every file appears whole, and no temporary file is ever in the folder, even after a ``kill -9`` mid-write: it is
written in the hidden folder beside it (``.ci-sidecar-staged.partial``, :func:`~ci_sidecar.atomic.partial_dir`)
and renamed into place; leftovers of killed writers are cleared there. Names cannot leave
the folder: ``..``, absolute names and symlinked folders that point elsewhere are refused, as is a
configured folder outside the workspace. Files are readable by the CI's agent user (``0644``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec
import trio

from ci_sidecar.atomic import atomic_write, ready_partial_dir
from ci_sidecar.protocol.errors import ContentError
from ci_sidecar.reports import write_junit

from ._render import report_data
from ._results import collect
from .base import ProviderEnv, RunSnapshot, UploadArtifact

__all__ = ["DEFAULT_FOLDER", "Staged", "StagingArea", "StagingError", "repository_root", "area_or_reason", "stage_in"]

DEFAULT_FOLDER = "ci-sidecar-staged"
_MODE = 0o644
_TMP = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StagingError(ContentError, ValueError):
    """A staging request that cannot be honoured as asked (a name or folder outside the area, a missing file)."""


class Staged(msgspec.Struct, frozen=True, kw_only=True):
    """A staged file: ``path`` (absolute), ``relative`` (to the workspace: what a collect step names), ``size``."""

    kind: str  # "junit" or "artifact"
    path: str
    relative: str
    size: int


def _safe_label(text: str, limit: int = 80) -> str:
    return _UNSAFE.sub("-", text).strip("-.")[:limit].strip("-.") or "run"


def _relative_name(name: str) -> Path:
    """An artifact name as a relative path inside the area; ``..``, absolute names and empty parts refused."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or any(p in ("..",) for p in parts):
        raise StagingError(f"artifact name {name!r} would leave the staging folder")
    clean = [p for p in parts if p not in ("", ".")]
    if not clean or any(_TMP in p for p in clean):
        raise StagingError(f"artifact name {name!r} is not a usable file name")
    return Path(*clean)


class StagingArea:
    """A staging folder under ``workspace`` (``folder`` is relative to it, default :data:`DEFAULT_FOLDER`)."""

    def __init__(self, workspace: str | os.PathLike[str], folder: str | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        relative = Path(folder or DEFAULT_FOLDER)
        if relative.is_absolute() or ".." in relative.parts:
            raise StagingError(f"the staging folder {str(relative)!r} must be a folder inside the workspace")
        self.root = self.workspace / relative

    def junit_path(self, run: RunSnapshot) -> Path:
        """Where the run's JUnit document goes."""
        return self.root / "junit" / f"{_safe_label(run.name)}-{_safe_label(run.id)}.xml"

    def path_for(self, relative: str) -> Path:
        """``relative`` inside the area (``..`` and absolute names refused)."""
        return self.root / _relative_name(relative)

    def artifact_path(self, op: UploadArtifact) -> Path:
        """Where an artifact goes (its name kept as a relative path)."""
        return self.root / "artifacts" / _safe_label(op.run_id) / _relative_name(op.name)

    async def stage_junit(self, run: RunSnapshot, env: ProviderEnv) -> Staged:
        """Write ``run`` (every result ``env.read_results`` yields) as one JUnit XML file."""
        collected = await collect(run, env, keep_all=True)
        data = report_data(run, env, collected, max_failures=len(collected.latest) or 1)
        target = self.junit_path(run)

        def write(fh: BinaryIO) -> None:
            text = _TextSink(fh)
            write_junit(data, text)  # type: ignore[arg-type]

        return await trio.to_thread.run_sync(self._place, "junit", target, write)

    async def stage_artifact(self, op: UploadArtifact) -> Staged:
        """Copy the artifact's stored file into the area (a copy: the store's files are private)."""
        try:
            return await self._copy("artifact", op.stored_path, self.artifact_path(op))
        except FileNotFoundError:
            raise StagingError(f"the stored content of artifact {op.name!r} is gone (purged or replaced)") from None

    async def stage_file(self, source: str | os.PathLike[str], relative: str) -> Staged:
        """Copy ``source`` into the area as ``relative``."""
        return await self._copy("file", source, self.path_for(relative))

    async def _copy(self, kind: str, source: str | os.PathLike[str], target: Path) -> Staged:
        return await trio.to_thread.run_sync(self._place, kind, target, _copier(source))

    def _inside(self, path: Path) -> bool:
        real_root = self.workspace
        real = path.resolve()
        return real == real_root or real_root in real.parents

    def _check(self, target: Path) -> None:
        # a folder on the way may be a symlink put there by anyone: never write outside the workspace's area
        real_area, real_parent = self.root.resolve(), target.parent.resolve()
        if not self._inside(self.root) or (real_parent != real_area and real_area not in real_parent.parents):
            raise StagingError(f"{target.parent} resolves outside the staging folder {self.root}")

    def _partial(self) -> Path | None:
        """The folder for temporary files, outside the area (None, beside the target, if it cannot be had)."""
        partial = ready_partial_dir(self.root if self.root != self.workspace else self.workspace / "ci-sidecar")
        return partial if partial is not None and self._inside(partial) else None  # no byte outside the workspace

    def _place(self, kind: str, target: Path, write: Callable[[BinaryIO], None]) -> Staged:
        """Create the folders, write through a temporary file in the target's folder, rename it into place."""
        self._check(target)  # before mkdir, which would follow a symlink out of the area
        target.parent.mkdir(parents=True, exist_ok=True)
        self._check(target)
        if target.is_dir() and not target.is_symlink():
            raise StagingError(f"{target} is a folder")
        atomic_write(target, write, mode=_MODE, tmp_dir=self._partial())
        return Staged(kind=kind, path=str(target), relative=target.relative_to(self.workspace).as_posix(),
                      size=target.stat().st_size)


def _copier(source: str | os.PathLike[str]) -> Callable[[BinaryIO], None]:
    def write(fh: BinaryIO) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, fh, 1024 * 1024)

    return write


def area_or_reason(workspace: str | None, folder: str, missing: str) -> StagingArea | str:
    """The staging area ``folder`` under the job's ``workspace``, or why there is none (``missing`` when the job
    names no workspace: not inside that CI's job, nothing would collect a staged file)."""
    if not workspace:
        return missing
    try:
        return StagingArea(workspace, folder)
    except StagingError as exc:
        return str(exc)


async def stage_in(area: StagingArea | str, op: UploadArtifact) -> Staged:
    """Stage the artifact in ``area``; a reason in place of an area (:func:`area_or_reason`) is raised.

    Raises:
        StagingError: no area, or the artifact cannot be staged there.
    """
    if isinstance(area, str):
        raise StagingError(area)
    return await area.stage_artifact(op)


class _TextSink:
    """A text ``write`` over a binary file (the JUnit writer writes text; the document is UTF-8)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def write(self, text: str) -> int:
        self._fh.write(text.encode("utf-8"))
        return len(text)


def repository_root(cwd: str) -> str | None:
    """The nearest folder at or above *cwd* that holds ``.git`` (a folder, or a worktree's file), or None."""
    try:
        here = Path(cwd).resolve()
    except OSError:
        return None
    for folder in (here, *here.parents):
        try:
            if (folder / ".git").exists():
                return str(folder)
        except OSError:
            return None
    return None
