"""One delivery attempt's calls: one request per call (no retries here: the outbox retries), redirects per the
request's policy, the vendor's classification, pagination, and the token kept out of every message."""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urljoin

import httpx

from ci_sidecar.credentials import redact

from ..base import Outcome
from .auth import Auth
from .bodies import Body, Json
from .classify import Rules, classify_exception, classify_response
from .model import Call, HttpConfig, HttpError, Response, origin_of
from .pacing import Pacer, RateLimitState
from .pagination import Pagination

__all__ = ["ApiSession", "Redirects"]

log = logging.getLogger("ci_sidecar.providers._http")

#: ``refuse``: a 3xx is a failure; ``return``: the 3xx is the answer (Jenkins answers a queued build with 201
#: or 302); ``follow``: up to five hops on the same origin (the credential never leaves it)
Redirects = Literal["refuse", "return", "follow"]
_MAX_HOPS = 5


class Layer(Protocol):
    """What a session uses of its :class:`~.layer.HttpLayer` (the layer creates sessions, not the reverse)."""

    provider: str
    rules: Rules
    pagination: Pagination
    rate_limit: RateLimitState

    def client(self, config: HttpConfig) -> httpx.AsyncClient: ...

    def pacer(self, token: str | None) -> Pacer | None: ...


class ApiSession:
    """Calls for one delivery attempt. Every failure raises :class:`HttpError` carrying a redacted Outcome."""

    def __init__(
        self, layer: Layer, config: HttpConfig, token: str | None, say: Callable[[str], None] | None, *,
        auth: Auth, secrets: list[str] | None = None,
    ) -> None:
        self._layer = layer
        self.config = config
        self._token = token
        self._say = say
        self.auth = auth
        self._secrets = list(secrets or [])
        self.calls = 0  # requests sent in this attempt (benchmarks count them)

    def redact(self, text: str) -> str:
        """``text`` with the token in every form the auth sends it, and the extra secrets, replaced by ``***``."""
        return redact(text, self.auth.secrets(self._token) + self._secrets)

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
        body: Body | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        paced: bool | None = None,
        expect_json: bool = True,
        allow: tuple[int, ...] = (),
        redirects: Redirects = "refuse",
        context: Mapping[str, Any] | None = None,
    ) -> Response:
        """One request. Mutating methods are paced per token unless ``paced=False``.

        ``json_body`` is short for ``body=Json(...)``. Statuses in ``allow`` are returned instead of raised
        (e.g. 404 for "already deleted"). ``context`` is passed to the auth hook.
        """
        url = self.url(path)
        if origin_of(url) != origin_of(self.config.base_url):
            raise self._fail(Outcome.refused(f"refusing to send credentials to another origin: {url}"))
        if paced is None:
            paced = method.upper() in ("POST", "PATCH", "PUT", "DELETE")
        pacer = self._layer.pacer(self._token) if paced else None
        if pacer is not None:
            waited = await pacer.acquire(self.log, f"{method} {path}")
            if waited:
                self._layer.rate_limit.paced_waits += 1
        try:
            client = self._layer.client(self.config)
        except (OSError, ssl.SSLError) as exc:  # an unreadable or invalid ca_bundle: a configuration error
            raise self._fail(Outcome.refused(f"cannot load ca_bundle {self.config.ca_bundle}: {exc}")) from None
        if json_body is not None:
            body = Json(json_body)
        clean_params = {k: v for k, v in (params or {}).items() if v is not None} or None
        what = f"{method} {path}"
        for _hop in range(_MAX_HOPS + 1):
            response = await self._send(client, method, url, clean_params, body, headers, context, what)
            status = response.status
            if not (300 <= status < 400 and redirects == "follow" and response.headers.get("location")):
                break
            target = urljoin(response.url, response.headers["location"])
            if origin_of(target) != origin_of(self.config.base_url):
                raise self._fail(Outcome.refused(f"{what} redirected to another origin ({target}): not followed",
                                                 status=status), response)
            url, clean_params = target, None
            if status == 303 or (status in (301, 302) and method.upper() == "POST"):
                method, body = "GET", None
        return self._check(response, what, allow, redirects, expect_json)

    async def _send(self, client: httpx.AsyncClient, method: str, url: str, params: Mapping[str, Any] | None,
                    body: Body | None, extra: Mapping[str, str] | None, context: Mapping[str, Any] | None,
                    what: str) -> Response:
        """Send once (and once more when the auth hook refreshed stale state); read the answer, size-limited."""
        kwargs, body_headers = body.build() if body is not None else ({}, {})
        resendable = not kwargs or isinstance(kwargs.get("content"), bytes | None)
        for attempt in (1, 2):
            call = Call(method=method, url=url, headers={**body_headers, **(extra or {})}, context=dict(context or {}))
            call.headers.update(await self.auth.headers(call, self._token, self))
            self.calls += 1
            try:
                request = client.build_request(method, url, params=params, headers=call.headers, **kwargs)
                resp = await client.send(request, stream=True)
                try:
                    data = await self._read_limited(resp)
                finally:
                    await resp.aclose()
            except HttpError:
                raise
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                outcome = classify_exception(exc)
                log.info("%s %s: %s", self._layer.provider, what, self.redact(outcome.message))
                raise self._fail(outcome) from None
            response = Response(status=resp.status_code, headers=resp.headers, body=data, url=str(resp.url))
            self._layer.rate_limit.update(resp.headers)
            if attempt == 1 and resendable and self.auth.refresh(call, response, self._token):
                self.log(f"{what}: the credential's session was stale; sending once more with a fresh one")
                continue
            return response
        return response

    def _check(self, response: Response, what: str, allow: tuple[int, ...], redirects: Redirects,
               expect_json: bool) -> Response:
        status = response.status
        if status in allow or (300 <= status < 400 and redirects == "return"):
            return response
        outcome = classify_response(response, rules=self._layer.rules)
        if outcome is not None:
            if outcome.kind == "retry" and outcome.status in (403, 429):
                self._layer.rate_limit.limited_at = time.time()
                self._layer.rate_limit.limited_retry_after = outcome.retry_after
                wait = f"{outcome.retry_after:.0f} s" if outcome.retry_after is not None else "a while"
                self.log(f"{self._layer.provider} rate limit hit on {what}; retrying in {wait}")
            raise self._fail(outcome, response)
        if status >= 300:
            raise self._fail(Outcome.refused(f"unexpected redirect {status} from {what}", status=status), response)
        if expect_json and response.body:
            try:
                json.loads(response.body)
            except (ValueError, UnicodeDecodeError):
                raise self._fail(self._layer.rules.non_json(response, what), response) from None
        return response

    async def _read_limited(self, resp: httpx.Response) -> bytes:
        limit = self.config.max_response_bytes
        truncate = self._layer.rules.oversize == "truncate"
        declared = resp.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > limit:  # refuse before reading a byte of it
            raise self._fail(Outcome.refused(f"response larger than {limit} bytes ({declared} announced)",
                                             status=resp.status_code))
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                if truncate:
                    break  # keep what fits: the start of an oversized answer still says what went wrong
                raise self._fail(Outcome.refused(f"response larger than {limit} bytes", status=resp.status_code))
            chunks.append(chunk)
        return b"".join(chunks)

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int | None = None,
        pagination: Pagination | None = None,
    ) -> AsyncIterator[Response]:
        """Yield each page, following the vendor's next-page signal (same origin only, at most ``max_pages``)."""
        pager = pagination or self._layer.pagination
        limit = max_pages or self.config.max_pages
        nxt: tuple[str, Mapping[str, Any] | None] | None = (path, params)
        pages = 0
        while nxt is not None and pages < limit:
            url, page_params = nxt
            resp = await self.request("GET", url, params=page_params)
            pages += 1
            yield resp
            nxt = pager.next_page(resp, page_params)
            if nxt and nxt[0].startswith(("http://", "https://")) and \
                    origin_of(nxt[0]) != origin_of(self.config.base_url):
                log.warning("%s: ignoring a pagination link to another origin", self._layer.provider)
                nxt = None
