"""Artifacts and the JUnit report on Jenkins: staged in the workspace for the pipeline's ``archiveArtifacts`` and
``junit`` steps (Jenkins has no API a build step could upload through), then found again through the build's API.

* Staging (:mod:`.._staging`): ``$WORKSPACE/ci-sidecar-out/junit/<run>-<id>.xml`` for ``junit
  'ci-sidecar-out/junit/*.xml'`` and ``$WORKSPACE/ci-sidecar-out/artifacts/<run id>/<name>`` for ``archiveArtifacts
  'ci-sidecar-out/artifacts/**'`` (the folder is the ``staged_dir`` knob).
* URLs: an archived artifact lives at ``BUILD_URL/artifact/<relative path>``. That URL exists only once
  ``archiveArtifacts`` ran, so it is given only after ``api/json?tree=artifacts[relativePath]`` lists the file;
  before that the artifact is "staged, URL after archiving" and no URL is invented.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._http import ApiSession
from .._staging import StagingArea, StagingError, area_or_reason, stage_in
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._api import build_path, build_web_url
from .settings import JenkinsSettings

__all__ = ["staging_area", "stage_artifact", "archived_paths", "artifact_url", "ARCHIVE_STEP", "JUNIT_STEP"]

ARCHIVE_STEP = "archiveArtifacts"
JUNIT_STEP = "junit step"


def staging_area(env: ProviderEnv) -> StagingArea | str:
    """The build's staging area under ``WORKSPACE``, or why there is none."""
    settings = JenkinsSettings.of(env)
    return area_or_reason(settings.workspace, settings.staged_dir,
                          "no WORKSPACE: not inside a Jenkins build, nothing collects a staged file")


async def stage_artifact(op: UploadArtifact, env: ProviderEnv) -> Outcome:
    """Copy the artifact where ``archiveArtifacts`` collects it; its URL is known once the build archived it."""
    try:
        relative = (await stage_in(staging_area(env), op)).relative
    except StagingError as exc:
        return Outcome.unsupported(f"jenkins: artifacts are staged for archiveArtifacts, and that is not possible "
                                   f"here: {exc}", tier="none")
    pattern = f"{JenkinsSettings.of(env).staged_dir}/artifacts/**"
    return Outcome.delivered(
        tier="staged", action="staged", remote={"staged_path": relative},
        message=f"staged as {relative} for the pipeline's archiveArtifacts '{pattern}'; its URL exists after "
                "archiving (get_artifact_url checks the build's artifact list)")


def artifact_url(env: ProviderEnv, relative: str) -> str | None:
    """``BUILD_URL/artifact/<relative>`` (each path segment encoded)."""
    base = build_web_url(env)
    return f"{base}artifact/{quote(relative)}" if base else None


async def archived_paths(api: ApiSession, env: ProviderEnv) -> set[str]:
    """The relative paths of every file the build archived so far."""
    path = build_path(env)
    if path is None:
        return set()
    resp = await api.request("GET", f"{path}/api/json", params={"tree": "artifacts[relativePath]"})
    body: Any = resp.json() or {}
    return {a["relativePath"] for a in body.get("artifacts") or [] if isinstance(a, dict)
            and isinstance(a.get("relativePath"), str)}


def staged_relative(op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> str | None:
    """Where the artifact was staged (relative to the workspace): from the delivery's record, else its place."""
    if isinstance(remote.get("staged_path"), str):
        return remote["staged_path"]
    area = staging_area(env)
    if isinstance(area, str):
        return None
    try:
        return area.artifact_path(op).relative_to(area.workspace).as_posix()
    except StagingError:
        return None
