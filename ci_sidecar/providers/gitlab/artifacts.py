"""Artifacts on GitLab, by tier.

* **package** — with a token, the generic package registry: ``PUT /projects/:id/packages/generic/<package>/
  pipeline-<CI_PIPELINE_ID>/<job>-<name>`` (one package version per pipeline; the job token may write packages).
  The URL is the registry's download URL, for the package file the API answered with, its SHA-256 checked.
  GitLab keeps every file PUT under a name, so a PUT that may have reached it before — a retry, or an upload a
  restarted daemon resumes (a kill -9 after GitLab stored the file and before the outcome was journaled leaves no
  trace of the attempt) — first looks the file up in the package's file list (same name and SHA-256) and adopts
  it instead of storing a second copy. The first attempt of a new upload sends only the PUT.
* **staged** — a copy in the job's staging area (:mod:`.._staging`, ``$CI_PROJECT_DIR/ci-sidecar-staged/``) for
  the job's ``artifacts:paths`` (the documented
  snippet in docs/gitlab.md), reported at ``${CI_PROJECT_URL}/-/jobs/${CI_JOB_ID}/artifacts/file/<path>`` as
  available when the job ends: used without a token, and when the registry refuses the token (packages off).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from .._http import ApiSession, HttpError, Raw, file_chunks
from .._staging import StagingArea, StagingError, area_or_reason, stage_in
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._api import project_path
from .settings import GitLabSettings

__all__ = ["upload_artifact", "lookup_package_file", "find_package_file", "staged_url", "package_file_path",
           "staging_area"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._~@+-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "artifact"


def _coordinates(op: UploadArtifact, env: ProviderEnv) -> tuple[str, str, str, str] | None:
    """``(project path, package name, version, file name)`` of ``op``'s package file (None without a project)."""
    project = project_path(env)
    if project is None:
        return None
    settings = GitLabSettings.of(env)
    version = f"pipeline-{settings.pipeline_id}" if settings.pipeline_id else f"run-{_safe(op.run_id)}"
    job = settings.job_name or env.ci.job
    name = _safe(f"{job}-{op.name.replace('/', '_')}" if job else op.name.replace("/", "_"))
    return project, _safe(settings.package_name), version, name


def _file_path(project: str, package: str, version: str, name: str) -> str:
    return f"{project}/packages/generic/{quote(package, safe='')}/{quote(version, safe='')}/{quote(name, safe='')}"


def package_file_path(op: UploadArtifact, env: ProviderEnv) -> str | None:
    """The generic package file's API path (None without a project)."""
    where = _coordinates(op, env)
    return None if where is None else _file_path(*where)


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


async def _objects(api: ApiSession, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Every object of a paginated list, page after page as they are needed."""
    async with aclosing(api.paginate(path, params)) as pages:
        async for page in pages:
            for item in page.json() or []:
                if isinstance(item, dict):
                    yield item


async def _listed(api: ApiSession, project: str, package: str, version: str, name: str,
                  sha256: str) -> dict[str, Any] | None:
    """The file ``name`` holding ``sha256`` in the generic package ``package``/``version``, from the packages
    API (newest first), else None."""
    wanted = {"package_type": "generic", "package_name": package, "package_version": version, "sort": "desc",
              "per_page": 100}
    async with aclosing(_objects(api, f"{project}/packages", wanted)) as packages:
        async for found in packages:
            # package_name is a fuzzy search, and GitLab before 16.6 ignores package_version: both checked here
            if (found.get("name"), found.get("version")) != (package, version) \
                    or not isinstance(found.get("id"), int):
                continue
            files = _objects(api, f"{project}/packages/{found['id']}/package_files", {"sort": "desc", "per_page": 100})
            async with aclosing(files) as items:
                async for item in items:
                    if item.get("file_name") == name and item.get("file_sha256") == sha256:
                        return item
    return None


async def find_package_file(op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> dict[str, Any] | None:
    """The registry's package file of ``op`` when it holds exactly its content (name and SHA-256), else None."""
    where = _coordinates(op, env)
    if where is None:
        return None
    try:
        return await _listed(api, *where, op.sha256)
    except HttpError as err:
        if err.outcome.kind != "refused" or err.status not in (401, 403):
            raise
    # GitLab before 15.11 lets the job token download package files but not list them: read the file back
    resp = await api.request("GET", _file_path(*where), expect_json=False, allow=(401, 403, 404))
    same = resp.status == 200 and hashlib.sha256(resp.body).hexdigest() == op.sha256
    return {"file_name": where[3], "file_sha256": op.sha256} if same else None


def _delivered(api: ApiSession, path: str, item: dict[str, Any]) -> Outcome:
    url = api.url(path)
    return Outcome.delivered(url=url, tier="package", remote={"package_path": path, "url": url,
                                                              "package_id": item.get("package_id"),
                                                              "file_id": item.get("id")})


async def lookup_package_file(op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> Outcome | None:
    """The package file of ``op`` when the registry holds exactly its content, else None."""
    path = package_file_path(op, env)
    if path is None:
        return None
    found = await find_package_file(op, env, api)
    return None if found is None else _delivered(api, path, found)


async def upload_artifact(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at publishing ``op``: the package registry with a token, else (or when refused) staged."""
    if not env.token:
        return await _staged(op, env, "no GitLab token for the package registry")
    path = package_file_path(op, env)
    if path is None:
        return Outcome.refused("gitlab: no project (CI_PROJECT_ID or CI_PROJECT_PATH) for the package registry")
    if not env.never_sent:  # an earlier PUT may have stored it, its answer (or the daemon) lost: adopt that copy
        found = await find_package_file(op, env, api)
        if found is not None:
            return _delivered(api, path, found)
    try:
        resp = await api.request("PUT", path, params={"select": "package_file"},
                                 body=Raw(file_chunks(op.stored_path), content_type="application/octet-stream",
                                          length=op.size))
    except HttpError as err:
        if err.status in (401, 403) and err.outcome.kind == "refused":
            api.log(f"the package registry refused the token ({err.provider_message}); staging artifacts instead")
            return await _staged(op, env, "the package registry refused the token")
        raise
    made = resp.json() or {}
    if made.get("file_sha256") not in (None, op.sha256):
        return Outcome.refused(f"artifact {op.name!r}: the registry stored other content (sha256 "
                               f"{made.get('file_sha256')})", remote=_delivered(api, path, made).remote)
    return _delivered(api, path, made)
