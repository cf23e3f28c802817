"""How a request carries its credential. The token is resolved per call by the delivery layer and handed to the
session; an auth object turns it into headers (and, for Jenkins, fetches a crumb). Kinds:

* :class:`Bearer` — ``Authorization: Bearer <token>`` (GitHub, Azure DevOps with Entra tokens), or another
  scheme word (Travis CI API v3: ``Authorization: token <token>``);
* :class:`Basic` — ``Authorization: Basic`` of ``user:secret`` (Azure DevOps PATs with an empty user,
  Bitbucket app passwords, Jenkins API tokens); the token is ``user:secret`` unless a username is fixed;
* :class:`HeaderToken` — the token in a named header (GitLab ``PRIVATE-TOKEN`` or ``JOB-TOKEN``,
  CircleCI ``Circle-Token``);
* :class:`Crumb` — Jenkins: Basic plus a CSRF crumb from ``/crumbIssuer/api/json`` sent with the session
  cookie that came with it, fetched before the first write and fetched again once when a write gets 403;
* :class:`NoAuth` — nothing (pre-signed URLs; S3 signs in its own hook).
"""

from __future__ import annotations

import base64
from http.cookies import CookieError, SimpleCookie
from typing import Any

from .model import Call, Requester, Response, token_fingerprint

__all__ = ["Auth", "NoAuth", "Bearer", "Basic", "HeaderToken", "Crumb", "WRITE_METHODS"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Auth:
    """The hook a session calls for every request (subclass and override ``headers``)."""

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        """Headers that carry ``token`` on ``call``."""
        return {}

    def secrets(self, token: str | None) -> list[str]:
        """Every form of the token that could show up in text (each is redacted)."""
        return [token] if token else []

    def refresh(self, call: Call, resp: Response, token: str | None) -> bool:
        """True when ``resp`` means stale auth state that was dropped: the session sends the call once more."""
        return False


class NoAuth(Auth):
    """No credential on the request."""


class Bearer(Auth):
    """``Authorization: <scheme> <token>``, ``Bearer`` unless another scheme is named (nothing without a token)."""

    def __init__(self, scheme: str = "Bearer") -> None:
        self.scheme = scheme

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {token}"} if token else {}


class Basic(Auth):
    """HTTP Basic: ``username`` + token as the password, or a token of the form ``user:secret``
    (no colon: an empty user, as Azure DevOps takes a PAT)."""

    def __init__(self, username: str | None = None) -> None:
        self.username = username

    def _pair(self, token: str) -> str:
        if self.username is not None:
            return f"{self.username}:{token}"
        return token if ":" in token else f":{token}"

    def _encoded(self, token: str) -> str:
        return base64.b64encode(self._pair(token).encode()).decode()

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        return {"Authorization": f"Basic {self._encoded(token)}"} if token else {}

    def secrets(self, token: str | None) -> list[str]:
        if not token:
            return []
        secret = token.partition(":")[2] if self.username is None and ":" in token else token
        return [token, secret, self._encoded(token)]


class HeaderToken(Auth):
    """The token as the value of one header (``PRIVATE-TOKEN``, ``JOB-TOKEN``, ``Circle-Token``)."""

    def __init__(self, header: str) -> None:
        self.header = header

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        return {self.header: token} if token else {}


class Crumb(Basic):
    """Jenkins: Basic auth, and for writes the crumb ``/crumbIssuer/api/json`` hands out with its session cookie.

    The crumb is bound to that session, so both are kept per token and sent together. A write answered 403
    drops them and is sent once more with a fresh crumb (Jenkins restarted, the session expired). A server
    without a crumb issuer (404) gets writes without one.
    """

    def __init__(self, username: str | None = None, path: str = "/crumbIssuer/api/json") -> None:
        super().__init__(username)
        self.path = path
        self._crumbs: dict[str, dict[str, str]] = {}

    async def headers(self, call: Call, token: str | None, session: Requester) -> dict[str, str]:
        headers = await super().headers(call, token, session)
        if call.method.upper() not in WRITE_METHODS or call.context.get("crumb_fetch"):
            return headers
        key = token_fingerprint(token)
        crumb = self._crumbs.get(key)
        if crumb is None:
            crumb = self._crumbs[key] = await self._fetch(session)
        return {**headers, **crumb}

    async def _fetch(self, session: Requester) -> dict[str, str]:
        resp = await session.request("GET", self.path, allow=(404,), context={"crumb_fetch": True})
        if resp.status == 404:
            return {}  # crumbs are disabled on this server
        body: Any = resp.json() or {}
        field, value = body.get("crumbRequestField"), body.get("crumb")
        if not (isinstance(field, str) and isinstance(value, str)):
            return {}
        out = {field: value}
        cookies = []
        for raw in resp.headers.get_list("set-cookie"):
            try:
                jar = SimpleCookie(raw)
            except CookieError:
                continue
            cookies += [f"{name}={morsel.value}" for name, morsel in jar.items()]
        if cookies:
            out["Cookie"] = "; ".join(cookies)
        return out

    def refresh(self, call: Call, resp: Response, token: str | None) -> bool:
        if resp.status != 403 or call.method.upper() not in WRITE_METHODS:
            return False
        return self._crumbs.pop(token_fingerprint(token), None) is not None

    def secrets(self, token: str | None) -> list[str]:
        crumbs = self._crumbs.get(token_fingerprint(token), {})
        return super().secrets(token) + [v for k, v in crumbs.items()]
