"""The S3 wire: SigV4 signing (botocore's signers, as an auth hook of the shared HTTP layer), presigned GETs,
file ranges as request bodies, and S3's XML answers and their classification."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
from defusedxml import ElementTree

from ._http import Auth, Call, Rules, retry_after_seconds
from .base import Outcome

if TYPE_CHECKING:
    from ._http import Requester

__all__ = ["S3Secret", "SigV4", "sign_headers", "presign_get", "FileRange", "sha256_range", "xml_texts", "first_text",
           "s3_error", "classify", "RULES", "RETRY_CODES", "xml_escape"]

_READ_CHUNK = 1024 * 1024
#: S3 error codes worth another attempt whatever the status says (RequestTimeout comes as a 400)
RETRY_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
                         "ThrottlingException", "RequestLimitExceeded", "OperationAborted"})


class S3Secret(msgspec.Struct, frozen=True, kw_only=True):
    """An access key pair (and session token), carried as one secret string through the outbox."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, token: str | None) -> S3Secret | None:
        if not token:
            return None
        try:
            return msgspec.json.decode(token, type=cls)
        except msgspec.DecodeError:
            return None

    def secrets(self) -> list[str]:
        """What must never appear in a message (the key id is an identifier, visible in every request)."""
        return [s for s in (self.secret_access_key, self.session_token) if s]


def _signer(secret: S3Secret, region: str, *, presign_ttl: int | None = None) -> Any:
    # botocore is imported on first use: the daemon starts without paying for it
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
    from botocore.credentials import Credentials

    creds = Credentials(secret.access_key_id, secret.secret_access_key, secret.session_token)
    if presign_ttl is not None:
        return S3SigV4QueryAuth(creds, "s3", region, expires=presign_ttl)

    class _KnownPayload(S3SigV4Auth):
        """Signs the SHA-256 we already know (the blob's or the part's) instead of hashing a body in memory."""

        def payload(self, request: Any) -> str:
            known = request.context.get("payload_sha256")
            return known if known else super().payload(request)

    return _KnownPayload(creds, "s3", region)


def sign_headers(secret: S3Secret, region: str, method: str, url: str, headers: Mapping[str, str],
                 payload_sha256: str) -> dict[str, str]:
    """The headers to send (``Authorization``, ``X-Amz-Date``, ``X-Amz-Content-SHA256``...) for one request."""
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["payload_sha256"] = payload_sha256
    _signer(secret, region).add_auth(request)
    return dict(request.headers.items())


def presign_get(secret: S3Secret, region: str, url: str, ttl_s: int) -> tuple[str, str]:
    """A presigned GET URL and its expiry (ISO 8601, from the signature's own ``X-Amz-Date``)."""
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="GET", url=url)
    _signer(secret, region, presign_ttl=ttl_s).add_auth(request)
    query = parse_qs(urlsplit(request.url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    expires = datetime.fromtimestamp(signed.timestamp() + int(query["X-Amz-Expires"][0]), tz=timezone.utc)
    return request.url, expires.strftime("%Y-%m-%dT%H:%M:%SZ")


class SigV4(Auth):
    """Signs each request with the access key (``Call.context["payload_sha256"]``: the body's known digest)."""

    def __init__(self, secret: S3Secret, region: str) -> None:
        self.secret, self.region = secret, region

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        payload = call.context.get("payload_sha256") or hashlib.sha256(b"").hexdigest()
        return sign_headers(self.secret, self.region, call.method, call.url, call.headers, payload)

    def secrets(self, token: str | None) -> list[str]:
        return self.secret.secrets()


class FileRange:
    """``length`` bytes of an open file from ``offset``, as an async iterable of 1 MiB chunks (flat memory)."""

    def __init__(self, fh: Any, offset: int, length: int) -> None:  # a trio async file
        self._fh, self._offset, self._left = fh, offset, length
        self._positioned = False

    def __aiter__(self) -> FileRange:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            raise StopAsyncIteration
        if not self._positioned:
            await self._fh.seek(self._offset)
            self._positioned = True
        data = await self._fh.read(min(_READ_CHUNK, self._left))
        if not data:
            raise OSError(f"stored blob ended {self._left} byte(s) early")
        self._left -= len(data)
        return data


def sha256_range(path: str, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = length
        while left > 0:
            data = fh.read(min(_READ_CHUNK, left))
            if not data:
                raise OSError(f"stored blob ended {left} byte(s) early")
            digest.update(data)
            left -= len(data)
    return digest.hexdigest()


def xml_texts(body: bytes, *names: str) -> list[dict[str, str]]:
    """Every element whose local name is ``names[0]``, as {child local name: text} (namespaces ignored)."""
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # a proxy's HTML page, an empty body: no XML to read
        return []
    out = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == names[0]:
            out.append({c.tag.rsplit("}", 1)[-1]: (c.text or "") for c in el})
    if not out and root.tag.rsplit("}", 1)[-1] == names[0]:
        out.append({c.tag.rsplit("}", 1)[-1]: (c.text or "") for c in root})
    return out


def first_text(body: bytes, name: str) -> str:
    """The text of the first element with this local name anywhere in an XML answer ("" when none)."""
    try:
        root = ElementTree.fromstring(body)
    except Exception:
        return ""
    return next((el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == name), "")


def s3_error(body: bytes) -> tuple[str, str]:
    """S3's ``<Error><Code>…</Code><Message>…</Message></Error>`` (code, message)."""
    errors = xml_texts(body, "Error")
    if errors:
        return errors[0].get("Code", ""), errors[0].get("Message", "")
    return "", body[:200].decode("utf-8", "replace").strip()


def classify(status: int, headers: httpx.Headers, body: bytes, what: str = "") -> Outcome | None:
    """None for success, else retry (429, 5xx, throttling codes) or refused (any other status)."""
    if status < 300:
        return None
    code, message = s3_error(body)
    reason = httpx.codes.get_reason_phrase(status) or "error"
    text = f"{what + ': ' if what else ''}HTTP {status} {code or reason}" + (f": {message}" if message else "")
    if status == 429 or status >= 500 or code in RETRY_CODES:
        return Outcome.retry(text, status=status, retry_after=retry_after_seconds(headers))
    return Outcome.refused(text, status=status)


#: S3 answers in XML, small: an oversized answer is a misbehaving proxy, its start is kept
RULES = Rules(classify=lambda resp, _message, _now: classify(resp.status, resp.headers, resp.body),
              oversize="truncate")


def xml_escape(text: str) -> str:
    """``text`` safe inside an XML element."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
