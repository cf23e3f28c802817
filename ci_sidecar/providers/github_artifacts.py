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

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import msgspec
import trio

from ci_sidecar.protocol.records import Tier

from ._http import ApiSession, HttpConfig, HttpError, HttpLayer, Response, classify_exception, classify_response
from .base import Outcome, ProviderEnv, UploadArtifact

__all__ = [
    "ARTIFACT_VERSION",
    "DEFAULT_BLOCK_BYTES",
    "RunArtifact",
    "RuntimeIds",
    "ZipLayout",
    "actions_artifact_tier",
    "artifact_prefix",
    "find_run_artifact",
    "lookup_artifact",
    "github_artifact_name",
    "parse_runtime_token",
    "unavailable_message",
    "upload_artifact",
]

log = logging.getLogger(__name__)

SERVICE = "github.actions.results.api.v1.ArtifactService"
ARTIFACT_VERSION = 4
#: @actions/artifact uploads in 8 MiB blocks; a file that fits one block goes in a single PUT
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024
_READ_BYTES = 1024 * 1024
TIER = "actions artifact"
#: characters the artifact service rejects in names (path-and-artifact-name-validation.ts)
_INVALID_NAME = re.compile(r'[":<>|*?\r\n\\/]')
_PREFIX_CLEAN = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_PREFIX = 60


# --- the runtime token ------------------------------------------------------------------------------


class RuntimeIds(msgspec.Struct, frozen=True, kw_only=True):
    """The backend ids of this job run (from the runtime token's ``scp`` claim) and the token's expiry."""

    run: str
    job: str
    expires_at: float | None = None


def parse_runtime_token(token: str | None) -> RuntimeIds:
    """The ``Actions.Results:<run>:<job>`` scope of an ``ACTIONS_RUNTIME_TOKEN`` (a JWT; not verified here,
    the service does that). Raises ``ValueError`` with a message that never contains the token."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        raise ValueError("ACTIONS_RUNTIME_TOKEN is not a JWT")
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        raise ValueError("ACTIONS_RUNTIME_TOKEN has an unreadable payload") from None
    scopes = claims.get("scp") if isinstance(claims, dict) else None
    if not isinstance(scopes, str):
        raise ValueError("ACTIONS_RUNTIME_TOKEN has no scp claim")
    for scope in scopes.split(" "):
        pieces = scope.split(":")
        if len(pieces) == 3 and pieces[0] == "Actions.Results" and pieces[1] and pieces[2]:
            exp = claims.get("exp")
            return RuntimeIds(run=pieces[1], job=pieces[2],
                              expires_at=float(exp) if isinstance(exp, int | float) else None)
    raise ValueError("ACTIONS_RUNTIME_TOKEN has no Actions.Results scope")


def _origin(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


# --- availability -----------------------------------------------------------------------------------


def unavailable_message(env: ProviderEnv) -> str:
    """Why the Actions artifact service cannot be used here, and what to do instead."""
    return ("GitHub artifacts need ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL, which GitHub does not expose to "
            "run: steps (add the .github/actions/export-runtime step before it, see docs/github.md); "
            "or configure the S3 artifact backend ([artifact_store])")


def actions_artifact_tier(env: ProviderEnv) -> Tier | None:
    """The artifacts tier when this session has the runtime token and the results URL (else None)."""
    if env.config.get("actions_results_url") and env.config.get("actions_runtime_token_present"):
        prefix = artifact_prefix(env)
        note = f"names prefixed {prefix}-" if prefix else "names are not prefixed (no GITHUB_JOB)"
        return Tier(kind="native", via="actions artifact service", note=note)
    return None


# --- names ------------------------------------------------------------------------------------------


def _clean_prefix(text: str) -> str:
    return _PREFIX_CLEAN.sub("-", text).strip("-.")[:_MAX_PREFIX].strip("-.")


def _matrix_label(raw: str) -> str:
    """``toJSON(matrix)`` → ``ubuntu-latest-3.12`` (values of the sorted keys); other text is used as is."""
    try:
        matrix = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(matrix, dict):
        return raw if matrix is None else json.dumps(matrix, separators=(",", ":"))
    values = []
    for key in sorted(matrix):
        value = matrix[key]
        values.append(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True))
    return "-".join(values)


def artifact_prefix(env: ProviderEnv) -> str:
    """``artifact_prefix`` when configured, else ``<GITHUB_JOB>[-<matrix values>]`` (may be empty)."""
    explicit = env.config.get("artifact_prefix")
    if explicit:
        return _clean_prefix(str(explicit))
    job = str(env.config.get("github_job") or env.ci.job or "")
    matrix = env.config.get("artifact_matrix")
    label = _matrix_label(str(matrix)) if matrix else ""
    if label:
        # the matrix label may be long: keep a digest of the full label so two legs never collapse into one
        full = _clean_prefix(label)
        if len(full) >= _MAX_PREFIX - len(job) - 1:
            full = full[: _MAX_PREFIX - len(job) - 10] + "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
        return _clean_prefix(f"{job}-{full}" if job else full)
    return _clean_prefix(job)


def github_artifact_name(name: str, prefix: str) -> str:
    """The artifact service name for one of our artifacts: ``<prefix>-<name>`` with the characters the service
    rejects (``" : < > | * ? \\r \\n \\ /``) replaced by ``_``."""
    safe = _INVALID_NAME.sub("_", name).strip() or "artifact"
    return f"{prefix}-{safe}" if prefix else safe


def _zip_entry_name(name: str) -> str:
    """The file name inside the archive: the artifact's own name, as a relative path."""
    entry = name.replace("\\", "/").lstrip("/")
    parts = [p for p in entry.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "artifact"


# --- the zip archive --------------------------------------------------------------------------------

_ZIP32_MAX = 0xFFFFFFFF


def _dos_time(epoch: float) -> tuple[int, int]:
    t = time.gmtime(max(epoch, 315532800))  # the zip epoch is 1980-01-01
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


class ZipLayout:
    """A one-entry *stored* zip around a file of known size and CRC-32: the bytes before and after the data.

    ZIP64 fields are used when the file or the offsets pass 4 GiB (``zip64=True`` forces them, for tests).
    """

    def __init__(self, entry_name: str, size: int, crc: int, mtime: float, *, zip64: bool | None = None) -> None:
        name = entry_name.encode("utf-8")
        dos_time, dos_date = _dos_time(mtime)
        self.zip64 = zip64 if zip64 is not None else size >= _ZIP32_MAX - 2 * len(name) - 200
        version = 45 if self.zip64 else 20
        flags = 0x0800  # names are UTF-8
        sizes = (_ZIP32_MAX, _ZIP32_MAX) if self.zip64 else (size, size)
        extra = struct.pack("<HHQQ", 1, 16, size, size) if self.zip64 else b""
        self.header = struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, 0, dos_time, dos_date, crc,
                                  sizes[0], sizes[1], len(name), len(extra)) + name + extra
        cd_offset = len(self.header) + size
        central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, flags, 0, dos_time,
                              dos_date, crc, sizes[0], sizes[1], len(name), len(extra), 0, 0, 0, 0o100644 << 16,
                              0) + name + extra
        trailer = central
        if self.zip64:
            eocd64_offset = cd_offset + len(central)
            trailer += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, 1, 1, len(central),
                                   cd_offset)
            trailer += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
        offset32 = _ZIP32_MAX if cd_offset >= _ZIP32_MAX else cd_offset
        trailer += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset32, 0)
        self.trailer = trailer
        self.data_size = size
        self.size = len(self.header) + size + len(self.trailer)


async def _file_chunks(path: str, size: int) -> AsyncIterator[bytes]:
    """The file's bytes in 1 MiB reads; fails if it is not exactly ``size`` bytes long."""
    seen = 0
    async with await trio.open_file(path, "rb") as fh:
        while True:
            chunk = await fh.read(_READ_BYTES)
            if not chunk:
                break
            seen += len(chunk)
            if seen > size:
                break
            yield chunk
    if seen != size:
        raise _SourceChanged(f"the stored file is {seen}+ bytes, expected {size}")


class _SourceChanged(Exception):
    """The stored file is not what the write describes (removed, truncated, replaced)."""


async def _zip_stream(layout: ZipLayout, path: str) -> AsyncIterator[bytes]:
    yield layout.header
    async with aclosing(_file_chunks(path, layout.data_size)) as chunks:
        async for chunk in chunks:
            yield chunk
    yield layout.trailer


class _Prepared(msgspec.Struct, kw_only=True):
    """What one pass over the stored file yields: enough to lay out the archive."""

    crc32: int
    mtime: float


async def _prepare(op: UploadArtifact) -> _Prepared:
    """CRC-32 of the stored file (one read), checked against the write's sha256."""
    try:
        mtime = (await trio.to_thread.run_sync(os.stat, op.stored_path)).st_mtime
    except OSError as exc:
        raise _SourceChanged(f"the stored file is gone ({exc.strerror or exc})") from None
    crc = 0
    source = hashlib.sha256()
    async with aclosing(_file_chunks(op.stored_path, op.size)) as chunks:
        async for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            source.update(chunk)
    if source.hexdigest() != op.sha256.lower():
        raise _SourceChanged("the stored file does not match its sha256")
    return _Prepared(crc32=crc, mtime=mtime)


async def _archive_digest(layout: ZipLayout, path: str) -> str:
    """SHA-256 of the archive without sending it (needed only to recognise an upload of an earlier attempt)."""
    digest = hashlib.sha256()
    async with aclosing(_zip_stream(layout, path)) as chunks:
        async for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()


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
        if not data.get("ok") or not isinstance(url, str) or _origin(url) is None:
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


# --- the blob upload --------------------------------------------------------------------------------


class _HideSignedQueries(logging.Filter):
    """httpx logs each request's full URL at INFO: a signed blob URL's query is a credential, drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) and b"sig=" in a.query
                                                  for a in record.args):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) and b"sig=" in a.query else a
                                for a in record.args)
        return True


_SAS_FILTER = _HideSignedQueries()
logging.getLogger("httpx").addFilter(_SAS_FILTER)  # idempotent: the same filter object is added once



async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _Blob:
    """Uploads to a signed (SAS) blob URL: no Authorization header, the URL's query never shown."""

    def __init__(self, http: HttpLayer, url: str, env: ProviderEnv) -> None:
        self.url = url
        self.http = http
        self.config = HttpConfig.from_env_config(_origin(url) or url, env.config)
        parts = urlsplit(url)
        self.secrets = [parts.query] + [v for _k, v in parse_qsl(parts.query) if len(v) >= 8]
        self.shown = f"{parts.netloc}{parts.path}"
        self.calls = 0

    def _clean(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        return text

    async def put(self, content: Any, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        client = self.http.client(self.config)
        self.calls += 1
        try:
            # appended by hand: httpx would replace the SAS query (the signature) with ``params``
            url = self.url + (("&" if "?" in self.url else "?") + urlencode(params) if params else "")
            resp = await client.put(url, content=content, headers=headers)
            body = await resp.aread() if resp.status_code >= 400 else b""
        except _SourceChanged:
            raise
        except (httpx.HTTPError, OSError) as exc:
            outcome = classify_exception(exc)
            outcome.message = self._clean(f"blob upload to {self.shown}: {outcome.message}")
            raise HttpError(outcome) from None
        if resp.status_code in (200, 201):
            return
        outcome = classify_response(Response(status=resp.status_code, headers=resp.headers, body=body[:2000],
                                             url=self.shown)) or Outcome.refused(f"HTTP {resp.status_code}")
        if resp.status_code == 403:
            # an expired or rejected signature: a new CreateArtifact hands out a fresh URL
            outcome = Outcome.retry(outcome.message, status=403)
        outcome.message = self._clean(f"blob upload to {self.shown}: {outcome.message}")
        raise HttpError(outcome)

    async def upload(self, layout: ZipLayout, path: str, block_bytes: int) -> str:
        """Send the archive; returns the SHA-256 of what was sent."""
        digest = hashlib.sha256()
        content_type = {"x-ms-blob-content-type": "application/zip"}
        if layout.size <= block_bytes:
            async def body() -> AsyncIterator[bytes]:
                async with aclosing(_zip_stream(layout, path)) as chunks:
                    async for chunk in chunks:
                        digest.update(chunk)
                        yield chunk

            await self.put(body(), {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/zip",
                                    "Content-Length": str(layout.size), **content_type})
            return digest.hexdigest()
        ids: list[str] = []
        pending = bytearray()

        async def flush() -> None:
            block_id = base64.b64encode(f"ci-sidecar-{len(ids):08d}".encode()).decode()
            size = len(pending)
            # handed over as a one-shot stream: httpx keeps requests in reference cycles for a while, and a
            # finished generator holds no bytes, so memory stays at one block
            await self.put(_once(bytes(pending)), {"Content-Length": str(size)},
                           {"comp": "block", "blockid": block_id})
            pending.clear()
            ids.append(block_id)

        async with aclosing(_zip_stream(layout, path)) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    room = block_bytes - len(pending)
                    pending.extend(view[:room])
                    view = view[room:]
                    if len(pending) == block_bytes:
                        await flush()
        if pending:
            await flush()
        xml = ('<?xml version="1.0" encoding="utf-8"?><BlockList>'
               + "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>").encode()
        await self.put(xml, {"Content-Type": "application/xml", "Content-Length": str(len(xml)), **content_type},
                       {"comp": "blocklist"})
        return digest.hexdigest()


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
    results = _origin(str(env.config.get("actions_results_url") or ""))
    if results is None or not env.token:
        return Outcome.unsupported(unavailable_message(env), tier="none")
    try:
        ids = parse_runtime_token(env.token)
    except ValueError as exc:
        return Outcome.unsupported(f"{exc}; {unavailable_message(env)}", tier="none")
    if ids.expires_at is not None and ids.expires_at < time.time():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ids.expires_at))
        return Outcome.refused(f"the job's Actions runtime token expired at {stamp} (the job has ended): "
                               "the artifact can no longer be added to this run", remote=remote or None)
    api = http.session(HttpConfig.from_env_config(results, env.config), env.token, env.log)
    state = dict(remote)
    try:
        return await _attempt(op, env, state, http, _Twirp(api, ids), ids)
    except HttpError as err:
        outcome = err.outcome
    except _SourceChanged as exc:
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
    entry = _zip_entry_name(op.name)
    if not same_content or "crc32" not in state:
        prepared = await _prepare(op)
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
                state["digest"] = await _archive_digest(layout, op.stored_path)
            if _is_ours(art, state, ids):
                state["artifact_id"] = str(art.get("database_id") or "")
                state["phase"] = "finalized"
                return None
        # ours with other content, or created but never finalized and not handed out again: start afresh
        await twirp.delete(name)
        url = await twirp.create(name)
    blob = _Blob(http, url, env)
    sent = await blob.upload(layout, op.stored_path, _int_config(env, "artifact_block_bytes", DEFAULT_BLOCK_BYTES))
    if state.get("digest") not in (None, sent):
        state.pop("digest")
        raise _SourceChanged("the stored file changed while it was uploaded")
    state["digest"] = sent
    state["phase"] = "uploaded"
    twirp.api.log(f"uploaded artifact {name} ({layout.size} bytes in {blob.calls} blob request(s))")
    return url


def _done(env: ProviderEnv, state: dict[str, Any], action: str) -> Outcome:
    url = _page_url(env, str(state.get("artifact_id") or ""))
    state["url"] = url
    return Outcome.delivered(url=url, remote=dict(state), tier=TIER, action=action,
                             message=f"artifact {state['name']} ({state['size']} bytes zipped)")


# --- REST lookup ------------------------------------------------------------------------------------


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
        layout = ZipLayout(_zip_entry_name(op.name), op.size, int(remote["crc32"]), float(remote["mtime"]),
                           zip64=True if env.config.get("artifact_zip64") else None)
        expected = await _archive_digest(layout, op.stored_path)
    if not expected:
        return None
    found = await find_run_artifact(api, repo, run_id, str(remote["name"]), server_url=env.ci.server_url)
    if found is None or found.expired or found.digest != f"sha256:{expected}":
        return None
    return Outcome.delivered(url=found.html_url, remote={"expires_at": found.expires_at, "artifact_id": found.id},
                             tier=TIER)
