"""The ``s3`` provider: artifacts into an S3-compatible object store (AWS S3, MinIO, Ceph RGW...).

* Settings come from the daemon's ``[artifact_store]`` table (:class:`ci_sidecar.config.ArtifactStoreConfig`),
  journaled with each write as plain values; the store is configured when ``bucket`` is set.
* Credentials: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``) from the session's
  environment, else the daemon's, else ``$CREDENTIALS_DIRECTORY/s3-access-key-id``, ``s3-secret-access-key``
  (+ ``s3-session-token``). They travel as one :class:`~ci_sidecar.credentials.Secret` through the outbox's
  in-memory credential pool; the journal holds only a fingerprint, and every message is redacted.
* Keys are ``<prefix>/<run id>/<artifact name>``, percent-encoded once per S3's canonical URI rules.
* Upload: one signed ``PUT`` up to ``multipart_threshold`` (payload SHA-256 signed, plus
  ``x-amz-checksum-sha256``), else a multipart upload of ``part_size`` parts, each part's SHA-256 signed. Bytes
  are streamed from the stored blob in 1 MiB reads, so memory stays flat whatever the size.
* One attempt per call. A part that fails transiently returns ``retry`` with the upload id and finished parts
  in ``Outcome.remote``: the next attempt resumes. A refused part aborts the upload; a fresh upload first
  aborts unfinished uploads of the same key (left by a crash), so re-attempts leave no garbage.
* URL: ``public_base_url/<key>`` when configured, else a presigned GET (``expires_at`` in ``remote``);
  :meth:`S3Provider.presign_url` signs a fresh one locally when the old one expires. With temporary
  credentials AWS puts the session token into presigned URLs, so such URLs are marked ``ephemeral`` and are
  never persisted (the service keeps them in memory).

Signing uses botocore's SigV4 signers (``S3SigV4Auth`` for requests, ``S3SigV4QueryAuth`` for presigned URLs);
transport is the shared pooled httpx client of :mod:`._http`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import msgspec
import trio

from ci_sidecar.credentials import Credential, Secret, fingerprint, redact
from ci_sidecar.protocol.errors import ExchangeError
from ci_sidecar.protocol.records import ProviderCaps, Tier

from ._http import HttpConfig, HttpError, HttpLayer, NoAuth, Raw, Response
from ._s3wire import (
    RETRY_CODES,
    RULES,
    FileRange,
    S3Secret,
    SigV4,
    classify,
    first_text,
    presign_get,
    s3_error,
    sha256_range,
    xml_escape,
    xml_texts,
)
from .base import Operation, Outcome, ProviderEnv, UploadArtifact
from .settings import ProviderSettings

__all__ = ["S3Provider", "S3Settings", "S3Secret", "find_s3_credential", "store_config", "object_key"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_MAX_PARTS = 10_000
_MAX_ANSWER_BYTES = 1 * MiB  # S3 answers are small; the start of a bigger one is kept (see _s3wire.RULES)
_ENV_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_CRED_FILES = ("s3-access-key-id", "s3-secret-access-key", "s3-session-token")
_TIER = "object store"
#: user metadata every object carries: the SHA-256 of its content, which a lookup checks (a multipart
#: object's own checksum is a checksum of part checksums, and its ETag is not a digest of the bytes)
_META_SHA256 = "x-amz-meta-sha256"


# --- settings and keys -----------------------------------------------------------------------------


class S3Settings(ProviderSettings, frozen=True, kw_only=True):
    """The object store as one write sees it (from the journaled provider config)."""

    bucket: str
    endpoint_url: str
    region: str = "us-east-1"
    prefix: str = ""
    path_style: bool = True
    presign_ttl_s: int = 3600
    public_base_url: str | None = None
    multipart_threshold: int = 64 * MiB
    part_size: int = 64 * MiB

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> S3Settings | None:
        """From a provider config dict (see :func:`store_config`); None when no bucket is configured."""
        if not config.get("bucket"):
            return None
        fields = {k: config[k] for k in cls.__struct_fields__ if config.get(k) is not None}
        fields.setdefault("endpoint_url", default_endpoint(str(config.get("region") or "us-east-1")))
        return msgspec.convert(fields, cls, strict=False)

    @classmethod
    def from_daemon_config(cls, config: Any) -> dict[str, Any] | None:
        """The daemon's ``[artifact_store]`` (see :func:`store_config`): a session cannot change it."""
        return store_config(config)

    def _origin_and_path(self, bucket: str) -> tuple[str, str]:
        parts = urlsplit(self.endpoint_url.rstrip("/"))
        if self.path_style:
            return f"{parts.scheme}://{parts.netloc}", f"{parts.path}/{quote(bucket, safe='')}"
        return f"{parts.scheme}://{quote(bucket, safe='')}.{parts.netloc}", parts.path

    def object_url(self, key: str, bucket: str | None = None) -> str:
        """The request URL of an object (path-style or virtual-hosted), the key percent-encoded once."""
        origin, base = self._origin_and_path(bucket or self.bucket)
        return f"{origin}{base}/{quote(key, safe='/~')}"

    def bucket_url(self) -> str:
        origin, base = self._origin_and_path(self.bucket)
        return f"{origin}{base}/"

    def public_url(self, key: str) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url.rstrip('/')}/{quote(key, safe='/~')}"


def default_endpoint(region: str) -> str:
    """AWS's regional S3 endpoint."""
    return f"https://s3.{region}.amazonaws.com"


def store_config(config: Any) -> dict[str, Any] | None:
    """The provider config of the object store from a daemon ``Config`` (None when none is configured).

    ``path_style`` defaults to on for a custom endpoint (MinIO, Ceph) and off for AWS.
    """
    store = getattr(config, "artifact_store", None)
    if store is None or not store.bucket:
        return None
    out: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(store).items() if v is not None}
    out["endpoint_url"] = (store.endpoint_url or default_endpoint(store.region)).rstrip("/")
    if store.path_style is None:
        out["path_style"] = store.endpoint_url is not None
    out["base_url"] = out["endpoint_url"]
    return out


def object_key(prefix: str, run_id: str, name: str) -> str:
    """``<prefix>/<run id>/<artifact name>`` (the name is already normalised and relative)."""
    return "/".join(p for p in (prefix.strip("/"), run_id, name) if p)


# --- credentials -----------------------------------------------------------------------------------


def _from_env(env: Mapping[str, str]) -> S3Secret | None:
    key_id, secret, token = (env.get(n, "").strip() for n in _ENV_NAMES)
    if key_id and secret:
        return S3Secret(access_key_id=key_id, secret_access_key=secret, session_token=token or None)
    return None


def _from_dir(directory: str) -> S3Secret | None:
    from ci_sidecar.credentials import _read_credential  # the same size and name checks as provider tokens

    key_id, secret, token = (_read_credential(directory, n) for n in _CRED_FILES)
    if key_id and secret:
        return S3Secret(access_key_id=key_id, secret_access_key=secret, session_token=token)
    return None


def find_s3_credential(session_env: Mapping[str, str], daemon_env: Mapping[str, str],
                       credentials_dir: str | None, endpoint_url: str) -> Credential | None:
    """The object store's credential, bound to the daemon-configured endpoint.

    Lookup: the session's ``AWS_*`` variables, the daemon's, then ``$CREDENTIALS_DIRECTORY/s3-*`` files.
    """
    for source, found in (("env:AWS_ACCESS_KEY_ID", lambda: _from_env(session_env)),
                          ("daemon-env:AWS_ACCESS_KEY_ID", lambda: _from_env(daemon_env)),
                          ("credentials:s3-access-key-id", lambda: _from_dir(credentials_dir) if credentials_dir else None)):
        secret = found()
        if secret is not None:
            blob = secret.encode()
            return Credential(provider="s3", base_url=endpoint_url, source=source, fingerprint=fingerprint(blob),
                              secret=Secret(blob))
    return None


class S3Failed(ExchangeError):
    """An S3 request did not succeed; ``outcome`` is what the write returns, ``code`` S3's error code."""

    def __init__(self, outcome: Outcome, code: str = "") -> None:
        super().__init__(outcome.message)
        self.outcome, self.code = outcome, code


# --- the provider ----------------------------------------------------------------------------------


class S3Provider:
    """Uploads artifacts to the configured bucket and hands out presigned (or public) URLs."""

    name: ClassVar[str] = "s3"

    def __init__(self) -> None:
        self._http = HttpLayer("s3", auth=NoAuth(), pacing=(), rules=RULES)
        self.requests = 0  # sent by this instance (tests and benchmarks count them)

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        none = Tier(kind="none", note="an object store holds artifacts only")
        settings = S3Settings.from_config(env.config)
        if settings is None:
            artifacts = Tier(kind="none", note="no object store configured ([artifact_store] bucket)")
        else:
            where = f"s3://{settings.bucket}/{settings.prefix.strip('/')} at {settings.endpoint_url}"
            if not env.token:
                where += "; no credentials found (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or s3-* credentials)"
            artifacts = Tier(kind="native", via=_TIER, note=where)
        return ProviderCaps(provider="s3", test_run=none, build_status=none, pr_comment=none, artifacts=artifacts,
                            limits={"max_object_bytes": 5 * 1024 ** 4})

    def status(self) -> dict[str, Any]:
        return {"requests": self.requests}

    def find_credential(self, settings: Mapping[str, Any], session_env: Mapping[str, str],
                        daemon_env: Mapping[str, str], credentials_dir: str | None) -> tuple[Credential, list[str]] | None:
        """The store's keys (see :func:`find_s3_credential`) bound to its endpoint, and the secret parts of them."""
        cred = find_s3_credential(session_env, daemon_env, credentials_dir, str(settings["endpoint_url"]))
        if cred is None:
            return None
        blob = cred.secret.reveal()
        parts = (S3Secret.decode(blob) or S3Secret(access_key_id="", secret_access_key="")).secrets()
        return cred, [blob, *parts]

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- delivery --------------------------------------------------------------------------------

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        if not isinstance(op, UploadArtifact):
            return Outcome.unsupported(f"the object store takes artifacts only, not {type(op).__name__}")
        settings = S3Settings.from_config(env.config)
        if settings is None:
            return Outcome.unsupported("no object store configured ([artifact_store] bucket)")
        secret = S3Secret.decode(env.token)
        if secret is None:
            return Outcome.refused("no object store credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                   "(or the s3-access-key-id / s3-secret-access-key credentials)")
        attempt = _Attempt(self, settings, secret, env)
        try:
            outcome = await attempt.upload(op, remote)
        except S3Failed as exc:
            outcome = exc.outcome
        except FileNotFoundError:
            outcome = Outcome.refused(f"the stored content of artifact {op.name!r} is gone (purged or replaced)")
        except OSError as exc:
            outcome = Outcome.retry(f"cannot read the stored artifact: {exc}")
        outcome.message = redact(outcome.message, secret.secrets())
        return outcome

    def presign_url(self, remote: Mapping[str, Any], env: ProviderEnv) -> tuple[str, str | None] | None:
        """A fresh URL for a delivered object (pure computation, no request): public, or presigned for
        ``presign_ttl_s``. None when the object or the credentials are unknown."""
        settings = S3Settings.from_config(env.config)
        key = remote.get("key")
        if settings is None or not key:
            return None
        public = settings.public_url(key)
        if public:
            return public, None
        secret = S3Secret.decode(env.token)
        if secret is None:
            return None
        url = settings.object_url(key, remote.get("bucket"))
        return presign_get(secret, settings.region, url, settings.presign_ttl_s)


    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``HEAD`` the artifact's key: when the object is there and holds ``op.sha256`` (its ``sha256`` user
        metadata, or the SHA-256 checksum S3 keeps for a single PUT), a fresh public or presigned URL.

        None when the object is missing, holds other content, or the store cannot be asked.
        """
        settings = S3Settings.from_config(env.config)
        secret = S3Secret.decode(env.token)
        if settings is None or secret is None:
            return None
        known = remote.get("key") and remote.get("bucket") == settings.bucket and remote.get("sha256") == op.sha256
        key = str(remote["key"]) if known else object_key(settings.prefix, op.run_id, op.name)
        attempt = _Attempt(self, settings, secret, env)
        try:
            answer = await attempt.send("HEAD", settings.object_url(key), f"HEAD {key}",
                                        headers={"x-amz-checksum-mode": "ENABLED"})
        except S3Failed as exc:
            if exc.outcome.status != 404:
                log.info("s3: cannot look up %s: %s", key, redact(exc.outcome.message, secret.secrets()))
            return None
        checksum = base64.b64encode(bytes.fromhex(op.sha256)).decode()
        held = answer.headers.get(_META_SHA256) or ""
        if held.lower() != op.sha256 and answer.headers.get("x-amz-checksum-sha256") != checksum:
            return None  # another content under this key, or one we cannot tell apart
        found: dict[str, Any] = {"bucket": settings.bucket, "key": key, "sha256": op.sha256}
        url = settings.public_url(key)
        if url is None:
            url, found["expires_at"] = presign_get(secret, settings.region, settings.object_url(key),
                                                   settings.presign_ttl_s)
            if secret.session_token:
                found["ephemeral_url"] = True
        return Outcome.delivered(url=url, remote=found, tier=_TIER)


class _Attempt:
    """One delivery attempt: its settings, credentials and session (requests signed by :class:`SigV4`)."""

    def __init__(self, provider: S3Provider, settings: S3Settings, secret: S3Secret, env: ProviderEnv,
                 max_answer: int = _MAX_ANSWER_BYTES) -> None:
        self.p, self.s, self.secret, self.env = provider, settings, secret, env
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.bucket_url()))
        config = msgspec.structs.replace(HttpConfig.from_env_config(origin, env.config),
                                         max_response_bytes=max_answer)
        self.api = provider._http.session(config, None, None, auth=SigV4(secret, settings.region),
                                          secrets=secret.secrets())

    async def send(self, method: str, url: str, what: str, *, headers: Mapping[str, str] | None = None,
                   content: Any = None, payload_sha256: str | None = None, length: int | None = None,
                   ok_codes: tuple[str, ...] = ()) -> Response:
        """One signed request; raises :class:`S3Failed` with the classified outcome unless it succeeded."""
        if payload_sha256 is None:
            payload_sha256 = hashlib.sha256(content or b"").hexdigest()
        # S3 refuses chunked transfer encoding: the length always goes with the body
        body = Raw(content, length=length) if content is not None else None
        self.p.requests += 1
        try:
            return await self.api.request(method, url, body=body, headers=headers, expect_json=False,
                                          context={"payload_sha256": payload_sha256})
        except HttpError as err:
            code = s3_error(err.response.body)[0] if err.response is not None else ""
            if err.response is not None and code in ok_codes:
                return err.response
            outcome = err.outcome
            outcome.message = f"{what}: {outcome.message}"
            if err.response is not None:
                log.info("s3 %s: %s", what, outcome.message)
            raise S3Failed(outcome, code) from None

    # --- the upload ------------------------------------------------------------------------------

    async def upload(self, op: UploadArtifact, remote: dict[str, Any]) -> Outcome:
        key = object_key(self.s.prefix, op.run_id, op.name)
        actual = (await trio.to_thread.run_sync(os.stat, op.stored_path)).st_size
        if actual != op.size:
            return Outcome.refused(f"the stored content of artifact {op.name!r} changed size ({actual} != {op.size})")
        if op.size <= self.s.multipart_threshold:
            etag = await self._put(op, key)
        else:
            etag = await self._multipart(op, key, remote)
        return self._delivered(op, key, etag)

    def _delivered(self, op: UploadArtifact, key: str, etag: str) -> Outcome:
        done: dict[str, Any] = {"bucket": self.s.bucket, "key": key, "sha256": op.sha256, "etag": etag,
                                "endpoint_url": self.s.endpoint_url}
        url = self.s.public_url(key)
        if url is None:
            presigned, expires = presign_get(self.secret, self.s.region, self.s.object_url(key), self.s.presign_ttl_s)
            if self.secret.session_token:
                done["ephemeral_url"] = True  # it carries the session token: presign on demand, never persist
            else:
                url = presigned
                done["expires_at"] = expires
        return Outcome.delivered(url=url, remote=done, tier=_TIER)

    async def _put(self, op: UploadArtifact, key: str) -> str:
        headers = {"Content-Type": op.mime_type, _META_SHA256: op.sha256,
                   "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(op.sha256)).decode()}
        async with await trio.open_file(op.stored_path, "rb") as fh:
            answer = await self.send("PUT", self.s.object_url(key), f"PUT {key}", headers=headers,
                                     content=FileRange(fh, 0, op.size), payload_sha256=op.sha256, length=op.size)
        return answer.headers.get("etag", "")

    async def _multipart(self, op: UploadArtifact, key: str, remote: dict[str, Any]) -> str:
        part_size = max(self.s.part_size, math.ceil(op.size / _MAX_PARTS))
        count = math.ceil(op.size / part_size)
        url = self.s.object_url(key)
        resume = (remote.get("upload_id") and remote.get("key") == key and remote.get("sha256") == op.sha256
                  and remote.get("part_size") == part_size and remote.get("bucket") == self.s.bucket)
        if resume:
            upload_id = str(remote["upload_id"])
            parts = {int(n): str(etag) for n, etag in remote.get("parts", [])}
        else:
            await self._abort_unfinished(key)  # a crashed or abandoned attempt of this artifact
            answer = await self.send("POST", url + "?uploads=", f"create multipart upload of {key}",
                                     headers={"Content-Type": op.mime_type, _META_SHA256: op.sha256})
            upload_id = first_text(answer.body, "UploadId")
            if not upload_id:
                raise S3Failed(Outcome.retry(f"create multipart upload of {key}: no UploadId in the answer"))
            parts = {}

        def progress() -> dict[str, Any]:
            return {"upload_id": upload_id, "key": key, "bucket": self.s.bucket, "sha256": op.sha256,
                    "part_size": part_size, "parts": sorted(parts.items())}

        async with await trio.open_file(op.stored_path, "rb") as fh:
            for number in range(1, count + 1):
                if number in parts:
                    continue
                offset = (number - 1) * part_size
                length = min(part_size, op.size - offset)
                digest = await trio.to_thread.run_sync(sha256_range, op.stored_path, offset, length)
                part_url = f"{url}?partNumber={number}&uploadId={quote(upload_id, safe='')}"
                try:
                    answer = await self.send("PUT", part_url, f"upload part {number}/{count} of {key}",
                                             content=FileRange(fh, offset, length), payload_sha256=digest,
                                             length=length)
                except S3Failed as exc:
                    raise await self._part_failed(exc, upload_id, key, progress()) from None
                parts[number] = answer.headers.get("etag", "")
        body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{xml_escape(e)}</ETag></Part>"
                       for n, e in sorted(parts.items()))
        payload = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        try:
            answer = await self.send("POST", f"{url}?uploadId={quote(upload_id, safe='')}",
                                     f"complete multipart upload of {key}", headers={"Content-Type": "application/xml"},
                                     content=payload)
        except S3Failed as exc:
            raise await self._part_failed(exc, upload_id, key, progress()) from None
        # S3 may answer 200 and report the failure in the body (the XML streams while it assembles the parts)
        code, message = s3_error(answer.body) if b"<Error" in answer.body else ("", "")
        if code:
            failure = classify(500 if code in RETRY_CODES else 400, answer.headers, answer.body,
                               f"complete multipart upload of {key}")
            assert failure is not None
            raise await self._part_failed(S3Failed(failure, code), upload_id, key, progress()) from None
        return first_text(answer.body, "ETag")  # (moto names the root ...Response, S3 ...Result)

    async def _part_failed(self, exc: S3Failed, upload_id: str, key: str, progress: dict[str, Any]) -> S3Failed:
        """What a failed part means: resume next time (transient), start over (upload gone), or abort."""
        if exc.code == "NoSuchUpload":
            exc.outcome = Outcome.retry(f"{exc.outcome.message}; starting the upload again", remote={})
        elif exc.outcome.kind == "retry":
            exc.outcome.remote = progress
        else:
            await self._abort(key, upload_id)
            exc.outcome.remote = {}
        return exc

    async def _abort(self, key: str, upload_id: str) -> None:
        """Best effort: an unfinished upload costs storage until aborted (or a lifecycle rule removes it)."""
        try:
            with trio.move_on_after(10):
                await self.send("DELETE", f"{self.s.object_url(key)}?uploadId={quote(upload_id, safe='')}",
                                f"abort multipart upload of {key}", ok_codes=("NoSuchUpload",))
        except S3Failed as exc:
            log.warning("s3: could not abort multipart upload of %s: %s", key,
                        redact(exc.outcome.message, self.secret.secrets()))

    async def _abort_unfinished(self, key: str) -> None:
        """Abort unfinished multipart uploads of exactly this key (keys are per run and name: ours)."""
        try:
            answer = await self.send("GET", f"{self.s.bucket_url()}?prefix={quote(key, safe='~')}&uploads=",
                                     f"list unfinished uploads of {key}")
        except S3Failed as exc:
            # without ListBucketMultipartUploads permission we can only rely on the bucket's lifecycle rules
            log.info("s3: cannot list unfinished uploads of %s: %s", key,
                     redact(exc.outcome.message, self.secret.secrets()))
            return
        for upload in xml_texts(answer.body, "Upload"):
            if upload.get("Key") == key and upload.get("UploadId"):
                log.info("s3: aborting an unfinished upload of %s left by an earlier attempt", key)
                await self._abort(key, upload["UploadId"])
