"""GitHub Actions artifacts (v4): the results service's twirp ``ArtifactService`` plus an Azure blob upload.

What ``@actions/artifact`` does, for one stored file (PROVIDERS.md §1c):

1. ``CreateArtifact`` (twirp JSON at the *origin* of ``ACTIONS_RESULTS_URL``, ``Authorization: Bearer
   <ACTIONS_RUNTIME_TOKEN>``) with the run/job backend ids from the token's ``scp`` claim → a signed blob URL;
2. the bytes to that URL: one ``PUT`` with ``x-ms-blob-type: BlockBlob`` when they fit one block, else Put Block
   (``comp=block``) per block and Put Block List (``comp=blocklist``), streamed from the stored file so memory
   stays at one block whatever the size;
3. ``FinalizeArtifact`` with the size and ``hash: "sha256:<hex>"`` of the uploaded bytes → the artifact id.

Version 4 artifacts are zip archives (GitHub serves them as ``<name>.zip``), so the file is wrapped in a
*stored* (uncompressed) zip built on the fly: header and trailer are computed up front from the size, CRC-32
and the stored file's mtime, which makes the archive deterministic — a retry produces the same bytes and the
same digest, so an artifact finalized by an attempt whose response was lost is recognised instead of replaced.

Names: artifact names are unique per *workflow run*, across jobs, so every name gets a per-job prefix
(``artifact_prefix`` config, else ``GITHUB_JOB`` plus the matrix values the ``export-runtime`` action exports).
A name another job already used is refused with that advice, never deleted.

The runtime token is the write's credential (kind ``github-actions-runtime``, see :mod:`ci_sidecar.credentials`);
it only ever goes to the results service origin, and the signed blob URL (a bearer secret too) is neither
persisted nor logged. The artifact's page URL is built from the id Finalize returns (three calls per artifact);
:func:`find_run_artifact` looks an artifact up through the REST list when an API token is at hand.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .._http import ApiSession, HttpConfig, HttpError, HttpLayer
from .._render import utc_stamp
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._blob import Blob
from ._zip import SourceChanged, ZipLayout, archive_digest, prepare, zip_entry_name
from .runtime import RuntimeIds, artifact_prefix, github_artifact_name, origin, parse_runtime_token, unavailable_message

__all__ = ["ARTIFACT_VERSION", "DEFAULT_BLOCK_BYTES", "SERVICE", "TIER", "upload_artifact"]

log = logging.getLogger(__name__)

SERVICE = "github.actions.results.api.v1.ArtifactService"
ARTIFACT_VERSION = 4
#: @actions/artifact uploads in 8 MiB blocks; a file that fits one block goes in a single PUT
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024
TIER = "actions artifact"


# --- twirp ------------------------------------------------------------------------------------------


class _Twirp:
    """JSON twirp calls to the results service (one attempt each; errors raise :class:`HttpError`)."""

    def __init__(self, api: ApiSession, ids: RuntimeIds) -> None:
        self.api = api
        self.ids = ids

    def _ids(self) -> dict[str, Any]:
        return {"workflow_run_backend_id": self.ids.run, "workflow_job_run_backend_id": self.ids.job}

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        # the results service is not the REST API: GitHub's content-creation pacing does not apply to it
        resp = await self.api.request("POST", f"/twirp/{SERVICE}/{method}", json_body={**self._ids(), **body},
                                      paced=False)
        data = resp.json()
        if not isinstance(data, dict):
            raise HttpError(Outcome.retry(f"{method}: the results service answered {resp.status} without a message",
                                          status=resp.status), resp)
        return data

    async def create(self, name: str) -> str:
        data = await self.call("CreateArtifact", {"name": name, "version": ARTIFACT_VERSION})
        url = data.get("signed_upload_url")
        if not data.get("ok") or not isinstance(url, str) or origin(url) is None:
            raise HttpError(Outcome.refused("CreateArtifact: the results service did not return an upload URL"))
        return url

    async def finalize(self, name: str, size: int, digest: str) -> str:
        data = await self.call("FinalizeArtifact", {"name": name, "size": str(size), "hash": f"sha256:{digest}"})
        if not data.get("ok"):
            raise HttpError(Outcome.refused("FinalizeArtifact: the results service answered ok=false"))
        return str(data.get("artifact_id") or "")

    async def find(self, name: str) -> list[dict[str, Any]]:
        data = await self.call("ListArtifacts", {"name_filter": name})
        return [a for a in data.get("artifacts") or [] if isinstance(a, dict) and a.get("name") == name]

    async def delete(self, name: str) -> bool:
        try:
            await self.call("DeleteArtifact", {"name": name})
        except HttpError as err:
            if err.status == 404:
                return False
            raise
        return True


# --- the upload -------------------------------------------------------------------------------------


def _page_url(env: ProviderEnv, artifact_id: str) -> str | None:
    """``{server}/{owner}/{repo}/actions/runs/{run_id}/artifacts/{id}``: the page GitHub shows the artifact on."""
    repo, run_id = env.ci.repository, env.ci.build_id
    if not (repo and run_id and artifact_id):
        return None
    server = (env.ci.server_url or "https://github.com").rstrip("/")
    return f"{server}/{repo}/actions/runs/{run_id}/artifacts/{artifact_id}"


def _int_config(env: ProviderEnv, key: str, default: int) -> int:
    try:
        return max(1, int(env.config.get(key) or default))
    except (TypeError, ValueError):
        return default


async def upload_artifact(op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any], http: HttpLayer) -> Outcome:
    """One attempt at putting ``op``'s stored file into the run's artifacts; never raises for a provider failure.

    ``env.token`` is the ``ACTIONS_RUNTIME_TOKEN`` (the write's credential), ``env.config["actions_results_url"]``
    the service. ``remote`` (persisted by the outbox) records how far earlier attempts got.
    """
    results = origin(str(env.config.get("actions_results_url") or ""))
    if results is None or not env.token:
        return Outcome.unsupported(unavailable_message(env), tier="none")
    try:
        ids = parse_runtime_token(env.token)
    except ValueError as exc:
        return Outcome.unsupported(f"{exc}; {unavailable_message(env)}", tier="none")
    if ids.expires_at is not None and ids.expires_at < time.time():
        stamp = utc_stamp(ids.expires_at)
        return Outcome.refused(f"the job's Actions runtime token expired at {stamp} (the job has ended): "
                               "the artifact can no longer be added to this run", remote=remote or None)
    api = http.session(HttpConfig.from_env_config(results, env.config), env.token, env.log)
    state = dict(remote)
    try:
        return await _attempt(op, env, state, http, _Twirp(api, ids), ids)
    except HttpError as err:
        outcome = err.outcome
    except SourceChanged as exc:
        outcome = Outcome.refused(f"artifact {op.name!r}: {exc}")
    outcome.message = api.redact(outcome.message)
    outcome.remote = state
    return outcome


async def _attempt(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], http: HttpLayer,
                   twirp: _Twirp, ids: RuntimeIds) -> Outcome:
    name = github_artifact_name(op.name, artifact_prefix(env))
    same_content = state.get("source_sha256") == op.sha256 and state.get("name") == name
    if same_content and state.get("phase") == "finalized":
        return _done(env, state, "skipped")
    # earlier content of this name finalized on the run: it is replaced (deleted first, names are unique)
    replacing = state.get("phase") == "finalized" and state.get("name") == name
    zip64 = True if env.config.get("artifact_zip64") else None
    entry = zip_entry_name(op.name)
    if not same_content or "crc32" not in state:
        prepared = await prepare(op)
        state.clear()
        state.update(name=name, source_sha256=op.sha256, crc32=prepared.crc32, mtime=prepared.mtime, phase="new")
    layout = ZipLayout(entry, op.size, int(state["crc32"]), float(state["mtime"]), zip64=zip64)
    state["size"] = layout.size
    if replacing:
        await twirp.delete(name)
    if state["phase"] != "uploaded":
        if await _create_and_upload(op, env, state, http, twirp, ids, layout) is None:
            return _done(env, state, "created")  # an earlier attempt finalized exactly these bytes
    try:
        state["artifact_id"] = await twirp.finalize(name, layout.size, str(state["digest"]))
    except HttpError as err:
        if err.outcome.kind != "refused":
            raise
        # a Finalize whose answer was lost has already happened: the artifact is listed with our digest
        mine = next((a for a in await twirp.find(name) if _is_ours(a, state, ids)), None)
        if mine is None:
            state["phase"] = "new"  # the upload is gone (expired, deleted): start over next attempt
            raise
        state["artifact_id"] = str(mine.get("database_id") or "")
    state["phase"] = "finalized"
    return _done(env, state, "replaced" if replacing else "created")


def _is_ours(art: dict[str, Any], state: dict[str, Any], ids: RuntimeIds) -> bool:
    return art.get("digest") == f"sha256:{state.get('digest')}" and art.get("workflow_job_run_backend_id") == ids.job


async def _create_and_upload(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], http: HttpLayer,
                             twirp: _Twirp, ids: RuntimeIds, layout: ZipLayout) -> str | None:
    """CreateArtifact, then the blob; None when these exact bytes are already finalized under the name."""
    name = str(state["name"])
    try:
        url = await twirp.create(name)
    except HttpError as err:
        if err.status != 409:
            raise
        url = None
    if url is None:  # the name is taken on this run: by whom, and with what?
        for art in await twirp.find(name):
            if art.get("workflow_job_run_backend_id") != ids.job:
                raise HttpError(Outcome.refused(
                    f"another job of this workflow run already uploaded an artifact named {name!r}; give each job "
                    "or matrix leg its own prefix (artifact_prefix, or the matrix input of "
                    ".github/actions/export-runtime)", status=409))
            if "digest" not in state:
                state["digest"] = await archive_digest(layout, op.stored_path)
            if _is_ours(art, state, ids):
                state["artifact_id"] = str(art.get("database_id") or "")
                state["phase"] = "finalized"
                return None
        # ours with other content, or created but never finalized and not handed out again: start afresh
        await twirp.delete(name)
        url = await twirp.create(name)
    blob = Blob(http, url, env)
    sent = await blob.upload(layout, op.stored_path, _int_config(env, "artifact_block_bytes", DEFAULT_BLOCK_BYTES))
    if state.get("digest") not in (None, sent):
        state.pop("digest")
        raise SourceChanged("the stored file changed while it was uploaded")
    state["digest"] = sent
    state["phase"] = "uploaded"
    twirp.api.log(f"uploaded artifact {name} ({layout.size} bytes in {blob.calls} blob request(s))")
    return url


def _done(env: ProviderEnv, state: dict[str, Any], action: str) -> Outcome:
    url = _page_url(env, str(state.get("artifact_id") or ""))
    state["url"] = url
    return Outcome.delivered(url=url, remote=dict(state), tier=TIER, action=action,
                             message=f"artifact {state['name']} ({state['size']} bytes zipped)")
