"""How a vendor says "there is more": each kind answers the next request (URL or path, and params) from the page
just read, or None on the last page. The session follows only targets on the base URL's origin.

* :class:`LinkHeader` — RFC 8288 ``Link: <…>; rel="next"`` (GitHub, GitLab keyset pagination);
* :class:`NextPageHeader` — a header with the next page number, sent back as a query parameter
  (GitLab ``X-Next-Page`` → ``page``);
* :class:`ContinuationToken` — an opaque header token sent back as a parameter (Azure DevOps
  ``x-ms-continuationtoken`` → ``continuationToken``);
* :class:`JsonNext` — an absolute URL in the body (Bitbucket ``{"next": "…"}``);
* :class:`JsonStart` — an offset in the body sent back as a parameter (Bitbucket Data Center ``isLastPage`` /
  ``nextPageStart`` → ``start``);
* :class:`JsonToken` — an opaque token in the body, sent back as a query parameter (CircleCI
  ``next_page_token`` → ``page-token``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from .model import Response, parse_link_header

__all__ = ["Pagination", "LinkHeader", "NextPageHeader", "ContinuationToken", "JsonNext", "JsonStart", "JsonToken",
           "parse_link_header"]

NextRequest = tuple[str, Mapping[str, Any] | None]


class Pagination(Protocol):
    """Where the page after ``resp`` is (``params`` are those the page was asked with)."""

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None: ...


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass(frozen=True)
class LinkHeader:
    """``Link: <url>; rel="next"`` (the URL carries the query)."""

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None:
        nxt = resp.links.get("next")
        return (nxt, None) if nxt else None


@dataclass(frozen=True)
class _HeaderValue:
    header: str
    param: str

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None:
        value = resp.headers.get(self.header, "").strip()
        if not value:
            return None
        return _without_query(resp.url), {**(params or {}), self.param: value}


@dataclass(frozen=True)
class NextPageHeader(_HeaderValue):
    """A next-page number in a header, asked for with a query parameter (GitLab's offset pagination)."""

    header: str = "x-next-page"
    param: str = "page"


@dataclass(frozen=True)
class ContinuationToken(_HeaderValue):
    """An opaque continuation token in a header, sent back as a query parameter (Azure DevOps)."""

    header: str = "x-ms-continuationtoken"
    param: str = "continuationToken"


@dataclass(frozen=True)
class JsonNext:
    """The next page's absolute URL in a JSON body field (Bitbucket Cloud's ``next``)."""

    field: str = "next"

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None:
        try:
            body = resp.json()
        except ValueError:
            return None
        nxt = body.get(self.field) if isinstance(body, dict) else None
        return (urljoin(resp.url, nxt), None) if isinstance(nxt, str) and nxt else None


@dataclass(frozen=True)
class JsonStart:
    """Bitbucket Data Center's paged APIs: ``{"isLastPage": false, "nextPageStart": 25}`` asked for again with
    ``start=25`` (a page without ``isLastPage: false`` and a number is the last)."""

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None:
        try:
            body = resp.json()
        except ValueError:
            return None
        if not isinstance(body, dict) or body.get("isLastPage") is not False:
            return None
        start = body.get("nextPageStart")
        if not isinstance(start, int) or isinstance(start, bool):
            return None
        return _without_query(resp.url), {**(params or {}), "start": start}


@dataclass(frozen=True)
class JsonToken:
    """An opaque next-page token in a JSON body field, asked for with a query parameter (CircleCI API v2:
    ``next_page_token`` → ``page-token``; null or absent on the last page)."""

    field: str = "next_page_token"
    param: str = "page-token"

    def next_page(self, resp: Response, params: Mapping[str, Any] | None) -> NextRequest | None:
        try:
            body = resp.json()
        except ValueError:
            return None
        token = body.get(self.field) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return None
        return _without_query(resp.url), {**(params or {}), self.param: token}
