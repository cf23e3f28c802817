"""Finding an artifact of a workflow run through the REST API (``get_artifact_url`` when an upload's answer was
lost): the newest of a name, accepted only when its digest is the archive an attempt of ours built."""

from __future__ import annotations

import os
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import msgspec

from .._http import ApiSession
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._zip import ZipLayout, archive_digest, zip_entry_name
from .artifacts import TIER

__all__ = ["RunArtifact", "find_run_artifact", "lookup_artifact"]


class RunArtifact(msgspec.Struct, kw_only=True):
    """An artifact of a workflow run as the REST list shows it, with the page a person opens."""

    id: int
    name: str
    size_in_bytes: int
    expired: bool
    digest: str | None = None
    expires_at: str | None = None
    archive_download_url: str | None = None
    html_url: str | None = None


async def find_run_artifact(api: ApiSession, repository: str, run_id: str | int, name: str, *,
                            server_url: str | None = None) -> RunArtifact | None:
    """``GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts?name=…``: the newest artifact of that name.

    ``html_url`` is the artifact's page (``{server}/{owner}/{repo}/actions/runs/{run_id}/artifacts/{id}``);
    ``archive_download_url`` is the API URL that redirects to a short-lived download (it needs a token).
    """
    owner, _, repo = repository.partition("/")
    path = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/actions/runs/{quote(str(run_id), safe='')}/artifacts"
    found: list[dict[str, Any]] = []
    async with aclosing(api.paginate(path, {"name": name, "per_page": 100}, max_pages=10)) as pages:
        async for page in pages:
            body = page.json() or {}
            found += [a for a in body.get("artifacts") or [] if isinstance(a, dict) and a.get("name") == name]
    if not found:
        return None
    art = max(found, key=lambda a: int(a.get("id") or 0))
    server = (server_url or "https://github.com").rstrip("/")
    return RunArtifact(
        id=int(art["id"]), name=str(art["name"]), size_in_bytes=int(art.get("size_in_bytes") or 0),
        expired=bool(art.get("expired")), digest=art.get("digest"), expires_at=art.get("expires_at"),
        archive_download_url=art.get("archive_download_url"),
        html_url=f"{server}/{repository}/actions/runs/{run_id}/artifacts/{art['id']}",
    )


async def lookup_artifact(op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any],
                          api: ApiSession) -> Outcome | None:
    """The artifact's page URL when the run's REST list shows the archive an attempt of ours built for
    ``op.sha256`` (same name, same archive digest, not expired); None otherwise.

    ``env.token`` is a REST API token (not the runtime token), ``env.ci`` the run's context. Nothing is
    verifiable when no attempt of ours prepared this content (``remote`` names the archive and its digest).
    Raises :class:`HttpError` when the API fails.
    """
    repo, run_id = env.ci.repository, env.ci.build_id
    if not (repo and run_id and env.token) or remote.get("source_sha256") != op.sha256 or not remote.get("name"):
        return None
    expected = remote.get("digest")
    if not expected and "crc32" in remote and "mtime" in remote and os.path.isfile(op.stored_path):
        # the archive is deterministic: its digest follows from what the first attempt recorded
        layout = ZipLayout(zip_entry_name(op.name), op.size, int(remote["crc32"]), float(remote["mtime"]),
                           zip64=True if env.config.get("artifact_zip64") else None)
        expected = await archive_digest(layout, op.stored_path)
    if not expected:
        return None
    found = await find_run_artifact(api, repo, run_id, str(remote["name"]), server_url=env.ci.server_url)
    if found is None or found.expired or found.digest != f"sha256:{expected}":
        return None
    return Outcome.delivered(url=found.html_url, remote={"expires_at": found.expires_at, "artifact_id": found.id},
                             tier=TIER)
