"""The job's staging folder and the artifact URLs CircleCI gives once the job has stored them.

CircleCI has no API a job step could publish through: ``store_test_results`` and ``store_artifacts`` upload
folders of the job's working directory at that step. Files are staged in :class:`~.._staging.StagingArea`
(``<working directory>/ci-sidecar-staged/``: ``junit/`` for ``store_test_results``, ``artifacts/<run id>/<name>``
for ``store_artifacts``). Run ids are unique, so the parallel nodes of a job (and the jobs sharing a
workspace) never write the same file; each node stores its own files and API v2 lists them with its
``node_index``.

An artifact's URL exists only after the job's ``store_artifacts`` step ran; before that none is given (CircleCI's
URLs name the job's internal id, which a job cannot know). Afterwards ``GET /project/{slug}/{job-number}/artifacts``
(``Circle-Token``, ``next_page_token`` paging) lists the file at its staged path on this node. The list carries
no digest: the path holds a run id of this daemon, and an artifact is trusted there only while a single content
was ever staged under its name (one replaced within the job gets no URL: which of its contents the step
uploaded cannot be told).
"""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from .._http import ApiSession
from .._staging import StagingArea, StagingError, area_or_reason, stage_in
from ..base import Outcome, ProviderEnv, UploadArtifact
from .settings import CircleCISettings

__all__ = ["STORE_TEST_RESULTS", "STORE_ARTIFACTS", "URL_AFTER_UPLOAD", "staging_area", "project_slug",
           "node_index", "stage_artifact", "find_artifact"]

STORE_TEST_RESULTS = "store_test_results"
STORE_ARTIFACTS = "store_artifacts"
URL_AFTER_UPLOAD = "CircleCI gives its URL after the job's store_artifacts step"

_VCS = {"github": "gh", "bitbucket": "bb"}


def workspace(env: ProviderEnv) -> str | None:
    """The job's working directory (``~`` expanded with the job's ``HOME``), else the session's checkout or cwd."""
    settings = CircleCISettings.of(env)
    folder = settings.working_directory
    if folder and folder.startswith("~"):
        if not settings.home:
            folder = None
        else:
            folder = settings.home.rstrip("/") + folder[1:]
    return folder or settings.repository_root or settings.session_cwd


def staging_area(env: ProviderEnv) -> StagingArea | str:
    """The job's staging area, or why there is none."""
    folder = workspace(env)
    return area_or_reason(folder if folder and os.path.isabs(folder) else None, CircleCISettings.of(env).staged_dir,
                          "no working directory (CIRCLE_WORKING_DIRECTORY) to stage files in")


def project_slug(env: ProviderEnv) -> str | None:
    """API v2's project slug: configured; else ``gh/``/``bb/`` + ``CIRCLE_PROJECT_USERNAME/REPONAME`` for GitHub
    OAuth and Bitbucket Cloud projects; else ``circleci/<CIRCLE_ORGANIZATION_ID>/<CIRCLE_PROJECT_ID>`` (GitLab,
    GitHub App and Bitbucket Data Center projects, whose jobs have no project user name); None without these."""
    settings = CircleCISettings.of(env)
    if settings.project_slug:
        return settings.project_slug.strip("/")
    host = env.ci.scm.provider if env.ci.scm is not None else None
    source = env.ci.sources.get("repository")
    from_circle = source is not None and source.name.startswith("CIRCLE_PROJECT_USERNAME")
    repository = env.ci.repository
    if from_circle and host in _VCS and repository and repository.count("/") == 1:
        return f"{_VCS[host]}/{repository}"
    if settings.organization_id and settings.project_id:
        return f"circleci/{settings.organization_id}/{settings.project_id}"
    return None


def node_index(env: ProviderEnv) -> int:
    """This node of a parallel job (0 when the job runs on one)."""
    raw = CircleCISettings.of(env).node_index or "0"
    return int(raw) if raw.isdigit() else 0


async def stage_artifact(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any]) -> Outcome:
    """Copy the artifact into the staging folder for the job's ``store_artifacts``; its URL comes later."""
    try:
        staged = await stage_in(staging_area(env), op)
    except StagingError as exc:
        return Outcome.unsupported(f"circleci: artifact {op.name!r} cannot be staged: {exc}", tier="none")
    if state.get("sha256") not in (None, op.sha256):
        state["replaced"] = True  # two contents under one path: the API cannot say which one was stored
    state.update(staged_path=staged.relative, sha256=op.sha256, node_index=node_index(env))
    return Outcome.delivered(
        tier="staged", action="staged", remote=state,
        message=f"staged as {staged.relative} for the job's store_artifacts step; {URL_AFTER_UPLOAD}")


def _listed_as(staged_path: str, area_root: str) -> str:
    """The part of a staged path every ``store_artifacts`` of the folder keeps: ``<run id>/<name>``."""
    parts = PurePosixPath(staged_path).parts
    root = PurePosixPath(area_root).parts
    inner = parts[len(root) + 1:] if parts[:len(root)] == root else parts  # without "<folder>/artifacts"
    return "/".join(inner)


async def find_artifact(op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any],
                        api: ApiSession) -> Outcome | None:
    """The URL CircleCI lists for this artifact on this node, once the job stored it; None before, for a
    replaced artifact, or without what the request needs (token, job number, project slug)."""
    staged = remote.get("staged_path")
    slug, job = project_slug(env), env.ci.build_number
    if not (staged and env.token and slug and job and job.isdigit()) or remote.get("replaced") \
            or remote.get("sha256") != op.sha256:
        return None
    wanted = _listed_as(str(staged), CircleCISettings.of(env).staged_dir)
    node = int(remote.get("node_index") or 0)
    async with aclosing(api.paginate(f"/project/{quote(slug, safe='')}/{job}/artifacts")) as pages:
        async for page in pages:
            body = page.json() or {}
            for item in body.get("items") or []:
                path, url = str(item.get("path") or ""), item.get("url")
                if item.get("node_index") == node and isinstance(url, str) and url and \
                        (path == wanted or path.endswith("/" + wanted)):
                    return Outcome.delivered(url=url, tier="staged", remote={"listed_path": path})
    return None
