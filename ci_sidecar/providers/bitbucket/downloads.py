"""Artifacts in the repository's Downloads: ``POST …/downloads`` (multipart ``files``; a file of the same name is
replaced), named ``<build>-<step>-<name>`` so the steps of one build, parallel ones too, never collide (within a
step, an artifact uploaded again under its name replaces the earlier one, as it would in Pipelines).

The file is streamed from the store into the multipart body (never read into memory whole), so an artifact of
any size goes up with a flat footprint; the body has a Content-Length, as Bitbucket's upload expects.

The URL is never made up: after the upload the downloads list is read and the entry of that name, with this
size, gives its ``links.self.href`` (the API answers it with a 302 to the file; the redirect's target is
short-lived and not kept). A retry after a lost answer uploads again under the same name, which replaces the
file: nothing is duplicated.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from typing import Any

from .._http import ApiSession, FileChunks, Multipart
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._api import repo_path
from .settings import BitbucketSettings

__all__ = ["upload_download", "find_download", "download_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "artifact"


def download_name(op: UploadArtifact, env: ProviderEnv) -> str:
    """``<build number>-<step>-<name>``: the step's first 8 UUID characters; outside Pipelines ``local-<run>``."""
    settings = BitbucketSettings.of(env)
    build = settings.build_number or env.ci.build_number
    step = re.sub(r"[^0-9A-Za-z]", "", settings.step_uuid or "")[:8]
    prefix = f"{build}-{step}" if build and step else f"{build}" if build else f"local-{op.run_id[:12]}"
    return _safe(f"{prefix}-{op.name.replace('/', '_')}")


async def find_download(api: ApiSession, repo: str, name: str, size: int) -> dict[str, Any] | None:
    """The downloads-list entry named ``name`` holding ``size`` bytes, else None."""
    async with aclosing(api.paginate(f"{repo}/downloads", {"pagelen": 100})) as pages:
        async for page in pages:
            for entry in (page.json() or {}).get("values") or []:
                if isinstance(entry, dict) and entry.get("name") == name:
                    return entry if entry.get("size") == size else None
    return None


def _delivered(entry: dict[str, Any], name: str) -> Outcome | None:
    url = ((entry.get("links") or {}).get("self") or {}).get("href")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    return Outcome.delivered(url=url, tier="downloads", remote={"download": name, "url": url})


async def upload_download(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at putting ``op`` in the repository's Downloads and finding its URL there."""
    repo = repo_path(env)
    if repo is None:
        return Outcome.refused("bitbucket: no repository (BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG) for Downloads")
    name = download_name(op, env)
    if state.get("download") != name or not state.get("uploaded"):
        content = FileChunks(op.stored_path, op.size)
        await api.request("POST", f"{repo}/downloads", expect_json=False,
                          body=Multipart(files={"files": (name, content, op.mime_type or "application/octet-stream")}))
        state.update(download=name, uploaded=True)
    entry = await find_download(api, repo, name, op.size)
    found = _delivered(entry, name) if entry is not None else None
    if found is None:
        state.pop("uploaded", None)  # not listed (yet, or replaced since): upload again next time
        return Outcome.retry(f"artifact {op.name!r} was uploaded as {name} but the downloads list does not show it "
                             "with its size yet", remote=state)
    return found


async def lookup(op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> Outcome | None:
    """``get_artifact_url``: the entry of ``op``'s name and size in the downloads list, else None."""
    repo = repo_path(env)
    if repo is None:
        return None
    name = download_name(op, env)
    entry = await find_download(api, repo, name, op.size)
    return _delivered(entry, name) if entry is not None else None
