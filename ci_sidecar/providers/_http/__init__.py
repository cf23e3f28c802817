"""The HTTP layer every remote provider shares: one attempt per call, classified into an :class:`Outcome`.

What lives here and nowhere else:

* one pooled ``httpx.AsyncClient`` per (base URL, proxy/CA settings), with timeouts and a
  ``User-Agent: ci-sidecar/<version>`` (:mod:`.layer`);
* the credential on each request, from the token the delivery layer resolved for the call (never stored
  on a client): bearer, basic, a header token, Jenkins' crumb with its session cookie (:mod:`.auth`);
* bodies: JSON, form, multipart, raw bytes or streams (:mod:`.bodies`);
* pagination by ``Link`` header, next-page header, continuation token or a JSON ``next`` URL, never
  following a link to another origin (:mod:`.pagination`);
* classification of answers and transport errors for the outbox's retry policy, with each vendor's hooks
  for its error bodies, its special statuses and non-JSON 2xx answers (:mod:`.classify`);
* redirects as each request asks (refuse, return, follow on the same origin) (:mod:`.session`);
* a response-size limit, redaction of the token from every message and log line that leaves the layer,
  per-token pacing of content-creating calls, and the last ``x-ratelimit-*`` values for ``sidecar/status``
  (:mod:`.pacing`).

Retrying, backoff and persistence are not here: a call is one attempt, the delivery layer retries.
"""

from __future__ import annotations

from .auth import WRITE_METHODS, Auth, Basic, Bearer, Crumb, HeaderToken, NoAuth
from .bodies import Body, FileChunks, Form, Json, Multipart, Raw, file_chunks
from .classify import (
    DEFAULT_RULES,
    Rules,
    classify_exception,
    classify_response,
    json_error_message,
    not_the_api,
    retry_after_seconds,
    retry_undecodable,
)
from .layer import HttpLayer
from .model import USER_AGENT, Call, HttpConfig, HttpError, Response, origin_of, token_fingerprint
from .pacing import DEFAULT_PACING, Pacer, RateLimitState
from .pagination import (
    ContinuationToken,
    JsonNext,
    JsonStart,
    JsonToken,
    LinkHeader,
    NextPageHeader,
    Pagination,
    parse_link_header,
)
from .session import ApiSession, Redirects

__all__ = [
    "USER_AGENT", "DEFAULT_PACING", "DEFAULT_RULES", "WRITE_METHODS",
    "HttpConfig", "HttpError", "HttpLayer", "ApiSession", "Response", "Call", "Redirects",
    "Auth", "NoAuth", "Bearer", "Basic", "HeaderToken", "Crumb",
    "Body", "Json", "Form", "Multipart", "Raw", "FileChunks", "file_chunks",
    "Pagination", "LinkHeader", "NextPageHeader", "ContinuationToken", "JsonNext", "JsonStart", "JsonToken",
    "parse_link_header",
    "Rules", "classify_response", "classify_exception", "json_error_message", "not_the_api", "retry_undecodable",
    "retry_after_seconds", "Pacer", "RateLimitState", "token_fingerprint", "origin_of",
]
