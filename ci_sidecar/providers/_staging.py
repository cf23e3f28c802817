"""The staged tier: a file copied where the CI collects it when the job ends (GitLab ``artifacts:paths``,
Jenkins ``archiveArtifacts``, CircleCI ``store_artifacts``). Nothing is published by copying: the CI uploads the
folder after the job, so a provider reports what it staged as available when the job ends, never as done."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import trio

__all__ = ["staged_path", "stage_file"]


def staged_path(root: str, folder: str, relative: str) -> Path:
    """``root/folder/relative``, refusing any part that would leave ``root/folder`` (``..``, absolute names).

    Raises:
        ValueError: the folder or the name leaves the root.
    """
    base = Path(root)
    parts = [p for p in PurePosixPath(folder.replace("\\", "/")).parts + PurePosixPath(
        relative.replace("\\", "/")).parts]
    if not parts or any(p in ("..", "/") or p.startswith("/") for p in parts):
        raise ValueError(f"{folder}/{relative} is not a relative path inside {root}")
    return base.joinpath(*(p for p in parts if p != "."))


async def stage_file(source: str | os.PathLike[str], target: Path) -> int:
    """Copy ``source`` to ``target`` (through a temporary name, so the CI never collects half a file); its size."""

    def copy() -> int:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.staging")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return target.stat().st_size

    return await trio.to_thread.run_sync(copy)
