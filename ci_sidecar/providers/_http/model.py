"""The values the HTTP layer passes around: connection settings, a complete response, the error a call raises,
and what an auth hook sees of a request."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from ci_sidecar import __version__
from ci_sidecar.protocol.errors import ExchangeError

from ..base import Outcome

__all__ = ["USER_AGENT", "HttpConfig", "direct_mounts", "Response", "HttpError", "Call", "token_fingerprint", "origin_of",
           "parse_link_header", "Requester"]

USER_AGENT = f"ci-sidecar/{__version__}"


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Connection settings for one provider base URL.

    ``trust_env`` makes httpx honour ``HTTPS_PROXY``/``NO_PROXY``/``SSL_CERT_FILE``, and lets the daemon's
    ``proxy``/``no_proxy`` settings apply (off: direct connections, as loopback fakes want); ``ca_bundle``
    names an extra PEM bundle for a self-hosted server behind a private CA.
    """

    base_url: str
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_response_bytes: int = 8 * 1024 * 1024
    trust_env: bool = True
    ca_bundle: str | None = None
    max_pages: int = 100
    #: an HTTP proxy every request goes through (the daemon's ``proxy`` setting, Bitbucket Pipelines' auth
    #: proxy); None: none, or the environment's when ``trust_env``
    proxy: str | None = None
    #: with ``proxy``: the hosts reached directly, comma-separated as in ``NO_PROXY`` (``*``: all of them)
    no_proxy: str | None = None

    @classmethod
    def from_env_config(cls, base_url: str, config: Mapping[str, Any]) -> HttpConfig:
        """Read the optional ``http_timeout``/``ca_bundle``/``trust_env``/``max_response_bytes`` settings, and
        ``proxy``/``no_proxy`` unless ``trust_env`` is off."""
        kw: dict[str, Any] = {"base_url": base_url.rstrip("/")}
        if config.get("http_timeout") is not None:
            kw["timeout"] = float(config["http_timeout"])
        if config.get("ca_bundle"):
            kw["ca_bundle"] = str(config["ca_bundle"])
        if config.get("trust_env") is not None:
            kw["trust_env"] = bool(config["trust_env"])
        if config.get("max_response_bytes") is not None:
            kw["max_response_bytes"] = int(config["max_response_bytes"])
        if kw.get("trust_env", True) and config.get("proxy"):
            kw["proxy"] = str(config["proxy"])
            kw["no_proxy"] = str(config["no_proxy"]) if config.get("no_proxy") else None
        return cls(**kw)


def direct_mounts(no_proxy: str | None) -> dict[str, None]:
    """httpx mounts that send the ``NO_PROXY``-style hosts of *no_proxy* around the proxy, read the way httpx
    reads ``NO_PROXY`` (``example.com``: it and its subdomains; ``.example.com``: subdomains; an IP address;
    ``scheme://host``; ``*``: every host)."""
    mounts: dict[str, None] = {}
    for host in (h.strip() for h in (no_proxy or "").split(",")):
        if not host:
            continue
        if host == "*":
            return {"all://": None}
        if "://" in host:
            mounts[host] = None
        elif host.startswith("."):
            mounts[f"all://*{host}"] = None
        elif _is_ip(ip := host.strip("[]")):
            mounts[f"all://[{ip}]" if ":" in ip else f"all://{ip}"] = None
        elif host.lower() == "localhost":
            mounts[f"all://{host}"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


class HttpError(ExchangeError):
    """Raised by :class:`~.session.ApiSession` calls that did not succeed; ``outcome`` is what to return
    (redacted), ``response`` the answer when there was one."""

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


class Call(msgspec.Struct, kw_only=True):
    """A request as an auth hook sees it before it is sent: the headers so far (body headers included) and
    ``context``, values the caller passed for the hook (e.g. S3's payload digest)."""

    method: str
    url: str
    headers: dict[str, str]
    context: dict[str, Any] = {}


def token_fingerprint(token: str | None) -> str:
    """A short, non-reversible id of a token (pacing and logs key on it, never on the token)."""
    if not token:
        return "anonymous"
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def origin_of(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) in lower case: credentials stay within one origin."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


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


class Requester(Protocol):
    """What an auth hook may use of a session: one more request (Jenkins' crumb fetch)."""

    async def request(self, method: str, path: str, **kw: Any) -> Response: ...
