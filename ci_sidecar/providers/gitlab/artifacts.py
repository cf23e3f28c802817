"""Artifacts on GitLab, by tier.

* **package** — with a token, the generic package registry: ``PUT /projects/:id/packages/generic/<package>/
  pipeline-<CI_PIPELINE_ID>/<job>-<name>`` (one package version per pipeline; the job token may write packages).
  The URL is the registry's download URL, for the package file the API answered with, its SHA-256 checked. A
  retry after a lost answer reads the file back first instead of adding a second copy.
* **staged** — a copy in the job's staging area (:mod:`.._staging`, ``$CI_PROJECT_DIR/ci-sidecar-staged/``) for
  the job's ``artifacts:paths`` (the documented
  snippet in docs/gitlab.md), reported at ``${CI_PROJECT_URL}/-/jobs/${CI_JOB_ID}/artifacts/file/<path>`` as
  available when the job ends: used without a token, and when the registry refuses the token (packages off).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

from .._http import ApiSession, HttpError, Raw, file_chunks
from .._staging import StagingArea, StagingError, area_or_reason, stage_in
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._api import project_path
from .settings import GitLabSettings

__all__ = ["upload_artifact", "lookup_package_file", "staged_url", "package_file_path", "staging_area"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._~@+-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "artifact"


def package_file_path(op: UploadArtifact, env: ProviderEnv) -> str | None:
    """The generic package file's API path (None without a project)."""
    project = project_path(env)
    if project is None:
        return None
    settings = GitLabSettings.of(env)
    version = f"pipeline-{settings.pipeline_id}" if settings.pipeline_id else f"run-{_safe(op.run_id)}"
    job = settings.job_name or env.ci.job
    name = _safe(f"{job}-{op.name.replace('/', '_')}" if job else op.name.replace("/", "_"))
    return (f"{project}/packages/generic/{quote(_safe(settings.package_name), safe='')}/"
            f"{quote(version, safe='')}/{quote(name, safe='')}")


def staged_url(env: ProviderEnv, relative: str) -> str | None:
    """Where GitLab shows a staged file once the job's artifacts are uploaded (None outside a GitLab job)."""
    settings = GitLabSettings.of(env)
    if not (settings.project_url and settings.job_id):
        return None
    return f"{settings.project_url.rstrip('/')}/-/jobs/{settings.job_id}/artifacts/file/{quote(relative)}"


def staging_area(env: ProviderEnv) -> StagingArea | str:
    """The job's staging area under ``CI_PROJECT_DIR``, or why there is none."""
    settings = GitLabSettings.of(env)
    return area_or_reason(settings.project_dir, settings.staged_dir,
                          "no CI_PROJECT_DIR: not inside a GitLab job, nothing collects a staged file")


async def _staged(op: UploadArtifact, env: ProviderEnv, why: str) -> Outcome:
    try:
        relative = (await stage_in(staging_area(env), op)).relative
    except StagingError as exc:
        return Outcome.unsupported(f"gitlab: {why}, and the staged tier is not available: {exc}", tier="none")
    url = staged_url(env, relative)
    settings = GitLabSettings.of(env)
    return Outcome.delivered(
        url=url, tier="staged", action="staged", remote={"staged_path": relative, "url": url},
        message=f"{why}: staged as {relative} for the job's artifacts:paths ({settings.staged_dir}/); "
                "available when the job ends")


async def _digest(api: ApiSession, path: str) -> str | None:
    """SHA-256 of the package file at ``path``, None when it is not there."""
    resp = await api.request("GET", path, expect_json=False, allow=(404,))
    return None if resp.status == 404 else hashlib.sha256(resp.body).hexdigest()


async def lookup_package_file(op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> Outcome | None:
    """The package file of ``op`` when the registry holds exactly its content, else None."""
    path = package_file_path(op, env)
    if path is None or await _digest(api, path) != op.sha256:
        return None
    return Outcome.delivered(url=api.url(path), tier="package", remote={"package_path": path, "url": api.url(path)})


async def upload_artifact(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at publishing ``op``: the package registry with a token, else (or when refused) staged."""
    if not env.token:
        return await _staged(op, env, "no GitLab token for the package registry")
    path = package_file_path(op, env)
    if path is None:
        return Outcome.refused("gitlab: no project (CI_PROJECT_ID or CI_PROJECT_PATH) for the package registry")
    url = api.url(path)
    if state.get("inflight") and await _digest(api, path) == op.sha256:
        return Outcome.delivered(url=url, tier="package", remote={"package_path": path, "url": url})
    state["inflight"] = True
    try:
        resp = await api.request("PUT", path, params={"select": "package_file"},
                                 body=Raw(file_chunks(op.stored_path), content_type="application/octet-stream",
                                          length=op.size))
    except HttpError as err:
        if err.outcome.kind == "deferred":
            state.pop("inflight", None)
        elif err.status in (401, 403) and err.outcome.kind == "refused":
            api.log(f"the package registry refused the token ({err.provider_message}); staging artifacts instead")
            return await _staged(op, env, "the package registry refused the token")
        err.outcome.remote = state
        raise
    made = resp.json() or {}
    remote = {"package_path": path, "url": url, "package_id": made.get("package_id"), "file_id": made.get("id")}
    if made.get("file_sha256") not in (None, op.sha256):
        return Outcome.refused(f"artifact {op.name!r}: the registry stored other content (sha256 "
                               f"{made.get('file_sha256')})", remote=remote)
    return Outcome.delivered(url=url, tier="package", remote=remote)
