"""Small objects in the S3 store, read and written by key, with S3's conditional writes.

The sharded-run group (:mod:`ci_sidecar.service.groups`) keeps its state here: immutable segments created with
``If-None-Match: *`` (a second create of the same key loses), and one group object updated with
``If-Match: <etag>`` (a writer that read an older version loses). S3 answers a lost condition with 412
``PreconditionFailed``, or with 409 ``ConditionalRequestConflict`` when two conditional writes of one key race;
both raise :class:`ConditionFailed`, and the caller reads again.

Like every provider call this makes one attempt per request: :class:`~ci_sidecar.providers.s3.S3Failed`
carries the classified outcome (``retry`` for 429/5xx/throttling), and the caller decides to retry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.errors import ExchangeError

from ._s3wire import xml_texts
from .base import ProviderEnv
from .s3 import S3Failed, S3Provider, S3Secret, S3Settings, _Attempt

__all__ = ["ObjectStore", "ConditionFailed", "S3Failed"]

#: the group's objects are small; a bigger answer than this is not one of ours
_MAX_OBJECT_BYTES = 64 * 1024 * 1024
_CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")


class ConditionFailed(ExchangeError):
    """A conditional write lost: the object exists (``If-None-Match: *``) or changed (``If-Match``)."""


class ObjectStore:
    """GET, conditional PUT and LIST of keys under the configured bucket and prefix."""

    def __init__(self, provider: S3Provider, settings: S3Settings, secret: S3Secret, env: ProviderEnv) -> None:
        self._attempt = _Attempt(provider, settings, secret, env, max_answer=_MAX_OBJECT_BYTES)
        self.settings = settings
        self.requests = 0

    def key(self, *parts: str) -> str:
        """``<prefix>/<parts...>``."""
        return "/".join(p.strip("/") for p in (self.settings.prefix, *parts) if p.strip("/"))

    async def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, None when there is no such key."""
        self.requests += 1
        try:
            answer = await self._attempt.send("GET", self.settings.object_url(key), f"GET {key}")
        except S3Failed as exc:
            if exc.outcome.status == 404:
                return None
            raise
        return answer.body, answer.headers.get("etag", "")

    async def put(self, key: str, body: bytes, *, create_only: bool = False, if_match: str | None = None,
                  content_type: str = "application/json") -> str:
        """Write ``body``; ``create_only``: only if the key does not exist, ``if_match``: only if the object
        still has this ETag. Returns the new ETag; raises :class:`ConditionFailed` when the condition lost."""
        headers = {"Content-Type": content_type}
        if create_only:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = if_match
        self.requests += 1
        try:
            answer = await self._attempt.send("PUT", self.settings.object_url(key), f"PUT {key}", headers=headers,
                                              content=body, length=len(body))
        except S3Failed as exc:
            if exc.outcome.status in (409, 412) and exc.code in _CONFLICT_CODES:
                raise ConditionFailed(key) from None
            if exc.outcome.status == 404 and if_match is not None:
                raise ConditionFailed(key) from None  # the object it was to replace is gone
            raise
        return answer.headers.get("etag", "")

    async def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, all pages)."""
        keys: list[str] = []
        token: str | None = None
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='~')}"
            if token:
                query += f"&continuation-token={quote(token, safe='~')}"
            self.requests += 1
            answer = await self._attempt.send("GET", f"{self.settings.bucket_url()}?{query}", f"LIST {prefix}")
            keys += [c["Key"] for c in xml_texts(answer.body, "Contents") if c.get("Key")]
            page: dict[str, Any] = (xml_texts(answer.body, "ListBucketResult") or [{}])[0]
            token = page.get("NextContinuationToken")
            if page.get("IsTruncated") != "true" or not token:
                return keys
