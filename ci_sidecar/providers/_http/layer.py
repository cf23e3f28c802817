"""One per provider instance: the pooled clients, the vendor's rules and auth, the pacers per token, the
rate-limit state."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .auth import Auth, Bearer
from .classify import DEFAULT_RULES, Rules
from .model import USER_AGENT, HttpConfig, direct_mounts, token_fingerprint
from .pacing import DEFAULT_PACING, Pacer, RateLimitState
from .pagination import LinkHeader, Pagination
from .session import ApiSession

__all__ = ["HttpLayer"]


class HttpLayer:
    """Per provider instance: pooled clients, the pacers per token and the rate-limit state.

    Args:
        provider: the name in logs and messages.
        default_headers: sent on every request (besides ``User-Agent``).
        auth: how a token goes on a request (default :class:`~.auth.Bearer`); a session may use another.
        pacing: (calls, seconds) windows for content-creating calls per token; ``()`` paces nothing.
        rules: the vendor's error-body parsing and classification hooks.
        pagination: how the vendor links pages (default ``Link`` headers).
    """

    def __init__(
        self,
        provider: str,
        *,
        default_headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        pacing: tuple[tuple[int, float], ...] = DEFAULT_PACING,
        rules: Rules = DEFAULT_RULES,
        pagination: Pagination | None = None,
    ) -> None:
        self.provider = provider
        self._headers = {"User-Agent": USER_AGENT, **(default_headers or {})}
        self.auth = auth or Bearer()
        self.rules = rules
        self.pagination: Pagination = pagination or LinkHeader()
        self._pacing = pacing
        self._clients: dict[tuple[str, bool, str | None, float, float, str | None, str | None],
                            httpx.AsyncClient] = {}
        self._pacers: dict[str, Pacer] = {}
        self.rate_limit = RateLimitState()

    def client(self, config: HttpConfig) -> httpx.AsyncClient:
        """The pooled client for these settings (created on first use)."""
        key = (config.base_url, config.trust_env, config.ca_bundle, config.timeout, config.connect_timeout,
               config.proxy, config.no_proxy)
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
                proxy=config.proxy,
                mounts=direct_mounts(config.no_proxy) if config.proxy else None,
                follow_redirects=False,  # redirects are each request's policy (the session follows them)
            )
            self._clients[key] = client
        return client

    def pacer(self, token: str | None) -> Pacer | None:
        """The pacer shared by every call made with this token (None when this layer paces nothing)."""
        if not self._pacing:
            return None
        fp = token_fingerprint(token)
        pacer = self._pacers.get(fp)
        if pacer is None:
            pacer = self._pacers[fp] = Pacer(self._pacing)
        return pacer

    def session(
        self, config: HttpConfig, token: str | None, say: Callable[[str], None] | None = None, *,
        auth: Auth | None = None, secrets: list[str] | None = None,
    ) -> ApiSession:
        """An object for one attempt: calls with this token (through ``auth``, default the layer's), errors and
        logs redacted of the token and of ``secrets``."""
        return ApiSession(self, config, token, say, auth=auth or self.auth, secrets=secrets or [])

    def status(self) -> dict[str, Any]:
        """What ``sidecar/status`` shows for this provider."""
        return {"rate_limit": self.rate_limit.as_dict()}

    async def aclose(self) -> None:
        """Close every pooled connection."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
