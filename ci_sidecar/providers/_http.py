"""The HTTP layer every remote provider shares: one attempt per call, classified into an :class:`Outcome`.

What lives here and nowhere else:

* one pooled ``httpx.AsyncClient`` per (base URL, proxy/CA settings), with timeouts, a
  ``User-Agent: ci-sidecar/<version>`` and the provider's auth header built per call from the token the
  delivery layer resolved (the token is never stored on the client);
* a response-size limit (a misconfigured proxy answering with a 2 GB page must not exhaust memory);
* ``Link: <…>; rel="next"`` pagination that never follows a link to another origin (the token is bound to
  its base URL, a forged link must not carry it elsewhere);
* classification of responses and transport errors for the outbox's retry policy — 429, 5xx, resets,
  timeouts, undecodable bodies and GitHub's 403 primary/secondary rate limits are ``retry`` (with the
  server's ``Retry-After`` or ``x-ratelimit-reset`` passed on), any other 4xx is ``refused`` with the
  provider's own message;
* redaction of the token from every message, log line and exception text that leaves this layer;
* per-token pacing of content-creating calls (GitHub: 80 per minute, 500 per hour), which tells the user
  through ``env.log`` when it makes a write wait;
* the last seen ``x-ratelimit-*`` values per provider, for ``sidecar/status``.

Retrying, backoff and persistence are not here: that is the delivery layer's job.
"""

from __future__ import annotations

import collections
import email.utils
import hashlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec
import trio

from ci_sidecar import __version__
from ci_sidecar.credentials import redact

from .base import Outcome

__all__ = [
    "USER_AGENT",
    "HttpConfig",
    "HttpError",
    "HttpLayer",
    "ApiSession",
    "Pacer",
    "RateLimitState",
    "Response",
    "bearer_auth",
    "classify_response",
    "classify_exception",
    "retry_after_seconds",
    "token_fingerprint",
]

log = logging.getLogger(__name__)

USER_AGENT = f"ci-sidecar/{__version__}"

#: GitHub's documented secondary limit for content creation; other providers pass their own windows.
DEFAULT_PACING: tuple[tuple[int, float], ...] = ((80, 60.0), (500, 3600.0))
#: When a secondary rate limit names no wait at all, GitHub's docs say to wait at least a minute.
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Connection settings for one provider base URL.

    ``trust_env`` makes httpx honour ``HTTPS_PROXY``/``NO_PROXY``/``SSL_CERT_FILE``; ``ca_bundle`` names an
    extra PEM bundle for a self-hosted server behind a private CA.
    """

    base_url: str
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_response_bytes: int = 8 * 1024 * 1024
    trust_env: bool = True
    ca_bundle: str | None = None
    max_pages: int = 100

    @classmethod
    def from_env_config(cls, base_url: str, config: Mapping[str, Any]) -> HttpConfig:
        """Read the optional ``http_timeout``/``ca_bundle``/``trust_env``/``max_response_bytes`` settings."""
        kw: dict[str, Any] = {"base_url": base_url.rstrip("/")}
        if config.get("http_timeout") is not None:
            kw["timeout"] = float(config["http_timeout"])
        if config.get("ca_bundle"):
            kw["ca_bundle"] = str(config["ca_bundle"])
        if config.get("trust_env") is not None:
            kw["trust_env"] = bool(config["trust_env"])
        if config.get("max_response_bytes") is not None:
            kw["max_response_bytes"] = int(config["max_response_bytes"])
        return cls(**kw)


class Response(msgspec.Struct, kw_only=True):
    """A complete (size-limited) response."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body else None

    @property
    def links(self) -> dict[str, str]:
        """``rel`` → absolute URL from the ``Link`` header."""
        return parse_link_header(self.headers.get("link", ""), self.url)


class HttpError(Exception):
    """Raised by :class:`ApiSession` calls that did not succeed; ``outcome`` is what to return (redacted)."""

    def __init__(self, outcome: Outcome, response: Response | None = None) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.response = response

    @property
    def status(self) -> int | None:
        return self.outcome.status

    @property
    def provider_message(self) -> str:
        """The provider's own error message (already redacted)."""
        return self.outcome.message


class RateLimitState(msgspec.Struct, kw_only=True):
    """The last ``x-ratelimit-*`` values a provider answered with, and the last time it limited us."""

    limit: int | None = None
    remaining: int | None = None
    used: int | None = None
    reset: int | None = None  # UTC epoch seconds
    resource: str | None = None
    observed_at: float | None = None
    limited_at: float | None = None  # when a 429/403 rate limit was last seen
    limited_retry_after: float | None = None
    paced_waits: int = 0  # how often the pacer made a write wait

    def update(self, headers: httpx.Headers) -> None:
        """Remember the rate-limit headers of one response (absent headers leave old values alone)."""
        seen = False
        for name, attr in (("limit", "limit"), ("remaining", "remaining"), ("used", "used"), ("reset", "reset")):
            raw = headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")
            if raw is not None:
                try:
                    setattr(self, attr, int(float(raw)))
                    seen = True
                except ValueError:
                    pass
        if headers.get("x-ratelimit-resource"):
            self.resource = headers["x-ratelimit-resource"]
        if seen:
            self.observed_at = time.time()

    def as_dict(self) -> dict[str, Any]:
        """For ``sidecar/status``: only the fields known so far."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def token_fingerprint(token: str | None) -> str:
    """A short, non-reversible id of a token (pacing and logs key on it, never on the token)."""
    if not token:
        return "anonymous"
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def bearer_auth(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer <token>`` (nothing without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def parse_link_header(value: str, base: str) -> dict[str, str]:
    """Parse RFC 8288 ``Link`` values into ``rel`` → absolute URL (relative targets resolve against ``base``)."""
    links: dict[str, str] = {}
    for part in value.split(","):
        section = part.strip()
        if not section.startswith("<") or ">" not in section:
            continue
        target, _, params = section[1:].partition(">")
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "rel":
                for rel in val.strip().strip('"').split():
                    links.setdefault(rel.lower(), urljoin(base, target.strip()))
    return links


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def retry_after_seconds(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), else from a reset epoch when exhausted."""
    now = time.time() if now is None else now
    raw = headers.get("retry-after")
    if raw:
        raw = raw.strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
                return max(0.0, when.timestamp() - now)
            except (TypeError, ValueError, IndexError):
                pass
    reset = headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset")
    remaining = headers.get("x-ratelimit-remaining") or headers.get("ratelimit-remaining")
    if reset and (remaining is None or remaining.strip() == "0"):
        try:
            value = float(reset)
        except ValueError:
            return None
        # GitHub sends an epoch; GitLab's RateLimit-Reset is an epoch too, some servers send a delta
        return max(0.0, value - now) if value > 1e9 else max(0.0, value)
    return None


def _error_message(body: bytes, fallback: str) -> str:
    """The provider's own words: JSON ``message`` (+ ``errors[].message``/``code``), else the start of the body."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        msg = data.get("message") or data.get("msg") or data.get("error") or ""
        details = []
        for err in data.get("errors") or []:
            if isinstance(err, dict):
                text = err.get("message") or " ".join(
                    str(err[k]) for k in ("resource", "field", "code") if err.get(k)
                )
                if text:
                    details.append(str(text))
            elif isinstance(err, str):
                details.append(err)
        text = str(msg) if msg else ""
        if details:
            text = f"{text} ({'; '.join(details)})" if text else "; ".join(details)
        if text:
            return text[:2000]
    snippet = body[:300].decode("utf-8", "replace").strip()
    return f"{fallback}: {snippet}" if snippet else fallback


def _is_rate_limit_403(message: str, headers: httpx.Headers) -> bool:
    lowered = message.lower()
    return (
        "rate limit" in lowered
        or "abuse" in lowered
        or headers.get("x-ratelimit-remaining", "").strip() == "0"
        or "retry-after" in headers
    )


def classify_response(resp: Response, *, now: float | None = None) -> Outcome | None:
    """``None`` for a 1xx-3xx answer, else the Outcome the outbox acts on.

    Retry: 408, 425, 429, 5xx, and 403 that is a (primary or secondary) rate limit. Refused: other 4xx.
    """
    status = resp.status
    if status < 400:
        return None
    reason = httpx.codes.get_reason_phrase(status) or "error"
    message = _error_message(resp.body, f"HTTP {status} {reason}")
    wait = retry_after_seconds(resp.headers, now=now)
    if status == 429 or (status == 403 and _is_rate_limit_403(message, resp.headers)):
        if wait is None and status == 403:
            wait = SECONDARY_LIMIT_DEFAULT_WAIT
        return Outcome.retry(f"rate limited (HTTP {status}): {message}", status=status, retry_after=wait)
    if status in (408, 425) or status >= 500:
        return Outcome.retry(f"HTTP {status}: {message}", status=status, retry_after=wait)
    return Outcome.refused(message, status=status)


def classify_exception(exc: BaseException) -> Outcome:
    """A transport failure as an Outcome: timeouts and resets retry, a broken URL/config is refused."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return Outcome.retry(f"timed out ({name}): {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Outcome.refused(f"invalid provider URL ({name}): {exc}")
    if isinstance(exc, httpx.TransportError):
        return Outcome.retry(f"connection failed ({name}): {exc or 'no detail'}")
    if isinstance(exc, httpx.HTTPError):
        return Outcome.retry(f"HTTP failure ({name}): {exc}")
    return Outcome.retry(f"{name}: {exc}")


class Pacer:
    """Sliding-window pacing of content-creating calls for one token (at most N per window, every window).

    Calls are serialized while they wait so two writers cannot both take the last slot.
    """

    def __init__(self, windows: tuple[tuple[int, float], ...] = DEFAULT_PACING) -> None:
        self._windows = windows
        self._stamps: collections.deque[float] = collections.deque()
        self._horizon = max((w for _n, w in windows), default=0.0)
        self._lock: trio.Lock | None = None

    def delay(self, now: float) -> float:
        """Seconds until one more call fits every window."""
        while self._stamps and self._stamps[0] <= now - self._horizon:
            self._stamps.popleft()
        wait = 0.0
        stamps = list(self._stamps)
        for limit, window in self._windows:
            recent = [s for s in stamps if s > now - window]
            if len(recent) >= limit:
                wait = max(wait, recent[len(recent) - limit] + window - now)
        return wait

    async def acquire(self, say: Callable[[str], None] | None = None, what: str = "write") -> float:
        """Wait for a slot (saying so when it waits) and take it; returns the seconds waited."""
        if self._lock is None:
            self._lock = trio.Lock()
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self.delay(now)
                if wait <= 0:
                    self._stamps.append(now)
                    return waited
                if say is not None and waited == 0.0:
                    say(f"pacing {what}: waiting {wait:.1f} s to stay under the provider's content-creation limit")
                await trio.sleep(wait)
                waited += wait


class HttpLayer:
    """Per provider instance: pooled clients, the pacers per token and the rate-limit state."""

    def __init__(
        self,
        provider: str,
        *,
        default_headers: Mapping[str, str] | None = None,
        auth: Callable[[str | None], dict[str, str]] = bearer_auth,
        pacing: tuple[tuple[int, float], ...] = DEFAULT_PACING,
    ) -> None:
        self.provider = provider
        self._headers = {"User-Agent": USER_AGENT, **(default_headers or {})}
        self._auth = auth
        self._pacing = pacing
        self._clients: dict[tuple[str, bool, str | None, float, float], httpx.AsyncClient] = {}
        self._pacers: dict[str, Pacer] = {}
        self.rate_limit = RateLimitState()

    def client(self, config: HttpConfig) -> httpx.AsyncClient:
        """The pooled client for these settings (created on first use)."""
        key = (config.base_url, config.trust_env, config.ca_bundle, config.timeout, config.connect_timeout)
        client = self._clients.get(key)
        if client is None:
            verify: Any = True
            if config.ca_bundle:
                verify = ssl.create_default_context(cafile=config.ca_bundle)
            client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
                trust_env=config.trust_env,
                verify=verify,
                follow_redirects=False,  # a redirect must not carry the token to another host
            )
            self._clients[key] = client
        return client

    def pacer(self, token: str | None) -> Pacer:
        """The pacer shared by every call made with this token."""
        fp = token_fingerprint(token)
        pacer = self._pacers.get(fp)
        if pacer is None:
            pacer = self._pacers[fp] = Pacer(self._pacing)
        return pacer

    def session(
        self, config: HttpConfig, token: str | None, say: Callable[[str], None] | None = None
    ) -> ApiSession:
        """An object for one attempt: calls with this token, errors and logs redacted."""
        return ApiSession(self, config, token, say)

    def status(self) -> dict[str, Any]:
        """What ``sidecar/status`` shows for this provider."""
        return {"rate_limit": self.rate_limit.as_dict()}

    async def aclose(self) -> None:
        """Close every pooled connection."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class ApiSession:
    """Calls for one delivery attempt. Every failure raises :class:`HttpError` carrying a redacted Outcome."""

    def __init__(
        self, layer: HttpLayer, config: HttpConfig, token: str | None, say: Callable[[str], None] | None
    ) -> None:
        self._layer = layer
        self.config = config
        self._token = token
        self._say = say
        self.calls = 0  # requests sent in this attempt (benchmarks count them)

    def redact(self, text: str) -> str:
        """``text`` with the token (and its URL-encoded form) replaced by ``***``."""
        return redact(text, [self._token] if self._token else [])

    def log(self, message: str) -> None:
        """Tell the user (``window/logMessage``) and the daemon log, token redacted."""
        message = self.redact(message)
        log.info("%s: %s", self._layer.provider, message)
        if self._say is not None:
            self._say(message)

    def _fail(self, outcome: Outcome, response: Response | None = None) -> HttpError:
        outcome.message = self.redact(outcome.message)
        return HttpError(outcome, response)

    def url(self, path: str) -> str:
        """An absolute URL under the base URL (absolute URLs pass through, checked for the same origin)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.config.base_url + ("" if path.startswith("/") else "/") + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        paced: bool | None = None,
        expect_json: bool = True,
        allow: tuple[int, ...] = (),
    ) -> Response:
        """One request. Mutating methods are paced per token unless ``paced=False``.

        Statuses in ``allow`` are returned instead of raised (e.g. 404 for "already deleted").
        """
        url = self.url(path)
        if _origin(url) != _origin(self.config.base_url):
            raise self._fail(Outcome.refused(f"refusing to send credentials to another origin: {url}"))
        if paced is None:
            paced = method.upper() in ("POST", "PATCH", "PUT", "DELETE")
        if paced:
            waited = await self._layer.pacer(self._token).acquire(self.log, f"{method} {path}")
            if waited:
                self._layer.rate_limit.paced_waits += 1
        headers = self._layer._auth(self._token)
        try:
            client = self._layer.client(self.config)
        except (OSError, ssl.SSLError) as exc:  # an unreadable or invalid ca_bundle: a configuration error
            raise self._fail(Outcome.refused(f"cannot load ca_bundle {self.config.ca_bundle}: {exc}")) from None
        content = None
        if json_body is not None:
            content = msgspec.json.encode(json_body)
            headers = {**headers, "Content-Type": "application/json"}
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        self.calls += 1
        try:
            request = client.build_request(method, url, params=clean_params or None, content=content, headers=headers)
            resp = await client.send(request, stream=True)
            try:
                body = await self._read_limited(resp)
            finally:
                await resp.aclose()
        except HttpError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            outcome = classify_exception(exc)
            log.info("%s %s %s: %s", self._layer.provider, method, path, self.redact(outcome.message))
            raise self._fail(outcome) from None
        response = Response(status=resp.status_code, headers=resp.headers, body=body, url=str(resp.url))
        self._layer.rate_limit.update(resp.headers)
        if resp.status_code in allow:
            return response
        outcome = classify_response(response)
        if outcome is not None:
            if outcome.kind == "retry" and outcome.status in (403, 429):
                self._layer.rate_limit.limited_at = time.time()
                self._layer.rate_limit.limited_retry_after = outcome.retry_after
                wait = f"{outcome.retry_after:.0f} s" if outcome.retry_after is not None else "a while"
                self.log(f"{self._layer.provider} rate limit hit on {method} {path}; retrying in {wait}")
            raise self._fail(outcome, response)
        if resp.status_code >= 300:
            raise self._fail(Outcome.refused(f"unexpected redirect {resp.status_code} from {method} {path}",
                                             status=resp.status_code), response)
        if expect_json and body:
            try:
                json.loads(body)
            except (ValueError, UnicodeDecodeError):
                # a proxy's HTML page or a truncated body: transient more often than not
                raise self._fail(Outcome.retry(f"undecodable response from {method} {path}",
                                               status=resp.status_code), response) from None
        return response

    async def _read_limited(self, resp: httpx.Response) -> bytes:
        limit = self.config.max_response_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refuse before reading a byte of it
            raise self._fail(Outcome.refused(f"response larger than {limit} bytes ({declared} announced)",
                                             status=resp.status_code))
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise self._fail(Outcome.refused(f"response larger than {limit} bytes", status=resp.status_code))
            chunks.append(chunk)
        return b"".join(chunks)

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int | None = None
    ) -> AsyncIterator[Response]:
        """Yield each page, following ``Link: rel="next"`` (same origin only, at most ``max_pages``)."""
        limit = max_pages or self.config.max_pages
        url: str | None = path
        first = True
        pages = 0
        while url is not None and pages < limit:
            resp = await self.request("GET", url, params=params if first else None)
            first = False
            pages += 1
            yield resp
            nxt = resp.links.get("next")
            if nxt and _origin(nxt) != _origin(self.config.base_url):
                log.warning("%s: ignoring a pagination link to another origin", self._layer.provider)
                nxt = None
            url = nxt
