"""What every Bitbucket module shares: the API's limits, how its errors read, how a credential goes on a request
(Bearer, Basic, or nothing through the Pipelines auth proxy), and the repository's path in URLs."""

from __future__ import annotations

import hashlib
import re
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from .._http import Auth, Basic, Bearer, HttpConfig, HttpLayer, JsonNext, NoAuth, Rules, json_error_message
from ..base import ProviderEnv
from .settings import BitbucketSettings

__all__ = ["DEFAULT_API_URL", "SUMMARY_CHARS", "DETAILS_CHARS", "ANNOTATIONS_PER_POST", "ANNOTATIONS_PER_REPORT",
           "DATA_FIELDS", "COMMENT_CHARS", "KEY_CHARS", "NEEDS_TOKEN", "Mode", "mode", "rest_layer", "rest_config",
           "auth_for", "repo_path", "commit_sha", "ident", "web_origin", "data_center"]

DEFAULT_API_URL = "https://api.bitbucket.org/2.0"
#: an annotation's ``summary`` (Code Insights: "maximum 450 characters")
SUMMARY_CHARS = 450
#: a report's and an annotation's ``details`` (Code Insights: "maximum 2000 characters")
DETAILS_CHARS = 2000
ANNOTATIONS_PER_POST = 100
ANNOTATIONS_PER_REPORT = 1000
#: ``data`` fields per report
DATA_FIELDS = 10
#: a comment's body: Cloud documents no limit, Data Center's is 32,768 characters; the lower one is kept
COMMENT_CHARS = 32_768
#: a build status ``key`` (Bitbucket keeps at most 40 characters)
KEY_CHARS = 40
NEEDS_TOKEN = ("the Pipelines auth proxy carries Code Insights reports only: set BITBUCKET_TOKEN (a repository "
               "access token) or BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD")

Mode = Literal["bearer", "basic", "proxy", "none"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

#: Bitbucket's error bodies ``{"type": "error", "error": {"message", "detail"}}`` are read by the shared parser
RULES = Rules(error_message=json_error_message)


def mode(env: ProviderEnv) -> Mode:
    """How this write authenticates: a token (Bearer), an app password with its user (Basic), the Pipelines auth
    proxy (no credential, inside a Pipelines step), or not at all."""
    if env.token:
        return "basic" if env.username else "bearer"
    return "proxy" if BitbucketSettings.of(env).build_number else "none"


def data_center(env: ProviderEnv) -> str | None:
    """The REST root (``https://host[/context]/rest``) when this write's base URL is a Bitbucket Data Center/Server
    one (its path has a ``/rest`` segment: ``…/rest``, ``…/rest/api/1.0``); None: Bitbucket Cloud's API 2.0."""
    base = str(env.base_url or BitbucketSettings.of(env).base_url or "")
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    at = (path + "/").find("/rest/")
    if at < 0:
        return None
    return urlunsplit((parts.scheme, parts.netloc, path[:at] + "/rest", "", ""))


def rest_layer() -> HttpLayer:
    """The HTTP layer for API 2.0: JSON ``next`` pagination, Bitbucket's error bodies."""
    return HttpLayer("bitbucket", auth=Bearer(), pagination=JsonNext("next"), pacing=(), rules=RULES)


def rest_config(env: ProviderEnv) -> HttpConfig:
    """``base_url`` from the session (the token's binding) or bitbucket.org; through the proxy the same API over
    ``http://`` (the proxy authenticates plain-HTTP requests only)."""
    settings = BitbucketSettings.of(env)
    base = str(env.base_url or settings.base_url or DEFAULT_API_URL)
    config = HttpConfig.from_env_config(base, env.config)
    if mode(env) != "proxy":
        return config
    parts = urlsplit(base)
    plain = urlunsplit(("http", parts.netloc, parts.path, "", "")).rstrip("/")
    return HttpConfig(base_url=plain, timeout=config.timeout, trust_env=False, proxy=settings.proxy_url,
                      max_response_bytes=config.max_response_bytes)


def auth_for(env: ProviderEnv) -> Auth:
    """Bearer for access tokens, Basic ``user:app password``, nothing through the proxy."""
    kind = mode(env)
    if kind == "basic":
        return Basic(env.username)
    return Bearer() if kind == "bearer" else NoAuth()


def repo_path(env: ProviderEnv) -> str | None:
    """``/repositories/{workspace}/{repo_slug}``, None when nothing names the repository."""
    settings = BitbucketSettings.of(env)
    workspace, slug = settings.workspace, settings.repo_slug
    if not (workspace and slug) and env.ci.repository and "/" in env.ci.repository:
        workspace, _, slug = env.ci.repository.partition("/")
    if not (workspace and slug):
        return None
    return f"/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"


def commit_sha(env: ProviderEnv, *candidates: str | None) -> str | None:
    """The first commit given, else the step's (``BITBUCKET_COMMIT``, expanded to the full SHA by detection)."""
    return next((c for c in candidates if c), None) or env.ci.head_sha or env.ci.commit_sha


def ident(text: str, prefix: str = "ci-sidecar-", limit: int = KEY_CHARS) -> str:
    """A stable id made of ``text``: readable where it can be, a hash keeps distinct texts apart within ``limit``."""
    slug = _UNSAFE.sub("-", text).strip("-").lower() or "run"
    whole = prefix + slug
    if len(whole) <= limit and slug == text:
        return whole
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{prefix}{slug[: limit - len(prefix) - 9]}-{digest}"


def web_origin(env: ProviderEnv) -> str | None:
    """``https://bitbucket.org/ws/slug`` of the step's repository (``BITBUCKET_GIT_HTTP_ORIGIN``), else None."""
    origin = BitbucketSettings.of(env).http_origin
    return origin.rstrip("/") if origin and origin.startswith(("https://", "http://")) else None
