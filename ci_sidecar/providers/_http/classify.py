"""Turning an answer (or its absence) into an :class:`~ci_sidecar.providers.base.Outcome` the outbox acts on.

The layer's defaults: 408, 425, 429 and 5xx are ``retry`` (with the server's ``Retry-After`` or rate-limit
reset passed on), any other 4xx is ``refused`` with the provider's own message; a 2xx that should be JSON and
is not is ``refused`` as "not the API" (a sign-in page, a proxy's page) — retrying it gets the same page.
A vendor changes any of that through :class:`Rules`: how its error bodies read, extra classification before
the defaults (GitHub: 403 with a rate-limit message is a secondary rate limit), what a non-JSON 2xx means.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from ..base import Outcome
from .model import Response

__all__ = ["Rules", "DEFAULT_RULES", "classify_response", "classify_exception", "retry_after_seconds",
           "json_error_message", "not_the_api", "retry_undecodable"]


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


def json_error_message(resp: Response) -> str | None:
    """The provider's own words from a JSON error body: ``message`` (or ``msg``, ``error`` as text, or
    Bitbucket's ``error: {message, detail}``) plus ``errors[]`` details; None when there are none."""
    try:
        data = json.loads(resp.body) if resp.body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    msg = data.get("message") or data.get("msg") or data.get("error") or ""
    if isinstance(msg, dict):  # {"error": {"message": ..., "detail": ...}}
        msg = "; ".join(str(msg[k]) for k in ("message", "detail") if msg.get(k))
    details = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            text = err.get("message") or " ".join(str(err[k]) for k in ("resource", "field", "code") if err.get(k))
            if text:
                details.append(str(text))
        elif isinstance(err, str):
            details.append(err)
    text = str(msg) if msg else ""
    if details:
        text = f"{text} ({'; '.join(details)})" if text else "; ".join(details)
    return text[:2000] if text else None


def not_the_api(resp: Response, what: str) -> Outcome:
    """The default for a 2xx that is not JSON: refused, it is a sign-in or proxy page (Azure DevOps answers an
    expired token with ``203`` and its sign-in page), and asking again gets the same page."""
    ctype = resp.headers.get("content-type", "no content type")
    if resp.status == 203:
        return Outcome.refused(f"{what} answered 203 with a {ctype} page: the credential was not accepted "
                               "(a sign-in page, not the API)", status=203)
    return Outcome.refused(f"{what} answered {resp.status} with a {ctype} body, not JSON: the URL does not "
                           "reach the API (a proxy or sign-in page?)", status=resp.status)


def retry_undecodable(resp: Response, what: str) -> Outcome:
    """For vendors whose undecodable bodies are mostly truncated answers or passing proxy pages: retry."""
    return Outcome.retry(f"undecodable response from {what}", status=resp.status)


@dataclass(frozen=True, kw_only=True)
class Rules:
    """A vendor's hooks into classification.

    * ``error_message(resp)``: the provider's words from an error body (None: the layer quotes the body start);
    * ``classify(resp, message, now)``: an Outcome that overrides the defaults for any status ≥ 300, or None;
    * ``non_json(resp, what)``: the Outcome for a 2xx that should be JSON and is not (``what`` = "GET /path");
    * ``oversize``: ``refuse`` an answer past ``max_response_bytes``, or ``truncate`` it (small XML APIs).
    """

    error_message: Callable[[Response], str | None] = json_error_message
    classify: Callable[[Response, str, float | None], Outcome | None] | None = None
    non_json: Callable[[Response, str], Outcome] = not_the_api
    oversize: Literal["refuse", "truncate"] = "refuse"


DEFAULT_RULES = Rules()


def classify_response(resp: Response, *, rules: Rules = DEFAULT_RULES, now: float | None = None) -> Outcome | None:
    """``None`` for a 1xx-3xx answer the vendor hook leaves alone, else the Outcome the outbox acts on.

    Retry: 408, 425, 429, 5xx. Refused: other 4xx. ``rules.classify`` goes first.
    """
    status = resp.status
    if status < 300:
        return None
    reason = httpx.codes.get_reason_phrase(status) or "error"
    fallback = f"HTTP {status} {reason}"
    message = rules.error_message(resp)
    if not message:
        snippet = resp.body[:300].decode("utf-8", "replace").strip()
        message = f"{fallback}: {snippet}" if snippet else fallback
    if rules.classify is not None:
        special = rules.classify(resp, message, now)
        if special is not None:
            return special
    if status < 400:
        return None
    wait = retry_after_seconds(resp.headers, now=now)
    if status == 429:
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
