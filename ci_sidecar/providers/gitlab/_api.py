"""What every GitLab module shares: the API's limits, how its errors read, which token a write carries, the
project's path in URLs, and the one place an ``HttpLayer`` for REST v4 is described."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from .._http import Auth, HeaderToken, HttpConfig, HttpError, HttpLayer, NextPageHeader, Response, Rules
from .._http import json_error_message
from ..base import ProviderEnv
from .settings import GitLabSettings

__all__ = ["DEFAULT_API_URL", "TEXT_CHARS", "NOTE_CHARS", "JOB_TOKEN_NOTE", "RULES", "rest_layer", "rest_config",
           "project_path", "token_kind", "auth_for", "auth_for_kind", "JOB_TOKEN_VAR", "transition_from", "error_message"]

DEFAULT_API_URL = "https://gitlab.com/api/v4"
#: a commit status's ``description``, ``target_url``, ``name`` and ``ref`` (varchar(255) columns)
TEXT_CHARS = 255
#: a note's body ("Limited to 1,000,000 characters", doc/api/notes.md)
NOTE_CHARS = 1_000_000
JOB_TOKEN_NOTE = ("CI_JOB_TOKEN cannot set commit statuses or write merge request notes: "
                  "set GITLAB_TOKEN (a project or personal access token with the api scope)")
JOB_TOKEN_VAR = "CI_JOB_TOKEN"

_TRANSITION = re.compile(r"Cannot transition status via :(\w+) from :(\w+)")


def error_message(resp: Response) -> str | None:
    """GitLab's words: ``{"message": "..."}``, ``{"error": "insufficient_scope", "error_description": …}``, ``{"message": {"error": "..."}}`` (rate limits) or a field → errors
    map (validation, e.g. ``{"message": {"description": ["is too long"]}}``), ``{"error": "..."}``."""
    try:
        data = json.loads(resp.body) if resp.body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and data.get("error_description"):  # an OAuth-style refusal (insufficient_scope)
        scope = f" (needs scope {data['scope']})" if data.get("scope") else ""
        return f"{data.get('error') or 'refused'}: {data['error_description']}{scope}"[:2000]
    if isinstance(data, dict) and isinstance(data.get("message"), dict):
        parts = []
        for key, value in data["message"].items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(text if key == "error" else f"{key} {text}")
        return "; ".join(parts)[:2000] or None
    return json_error_message(resp)


#: GitLab's hooks: its error bodies; the defaults otherwise (429 and 5xx retry with Retry-After/RateLimit-Reset)
RULES = Rules(error_message=error_message)


def rest_layer(*, pacing: tuple[tuple[int, float], ...] = ()) -> HttpLayer:
    """The HTTP layer for REST v4: ``PRIVATE-TOKEN`` auth, ``X-Next-Page`` pagination."""
    return HttpLayer("gitlab", auth=HeaderToken("PRIVATE-TOKEN"), pagination=NextPageHeader(), pacing=pacing,
                     rules=RULES)


def rest_config(env: ProviderEnv) -> HttpConfig:
    """``base_url`` from the session (the token's binding), the job's ``CI_API_V4_URL``, or gitlab.com."""
    base = env.base_url or GitLabSettings.of(env).api_url or DEFAULT_API_URL
    return HttpConfig.from_env_config(str(base), env.config)


def token_kind(env: ProviderEnv) -> str:
    """``job`` for the job's ``CI_JOB_TOKEN`` (artifacts and packages only), ``api`` for a personal, project or
    group token, ``none`` without one."""
    if not env.token:
        return "none"
    source = env.credential.source if env.credential is not None else ""
    return "job" if source.endswith(":" + JOB_TOKEN_VAR) else "api"


def auth_for_kind(kind: str) -> Auth:
    """``JOB-TOKEN`` for the job token, ``PRIVATE-TOKEN`` for every other token."""
    return HeaderToken("JOB-TOKEN") if kind == "job" else HeaderToken("PRIVATE-TOKEN")


def auth_for(env: ProviderEnv) -> Auth:
    """How this write's token goes on a request (:func:`auth_for_kind`)."""
    return auth_for_kind(token_kind(env))


def project_path(env: ProviderEnv) -> str | None:
    """``/projects/<id>``: ``CI_PROJECT_ID``, else the URL-encoded ``CI_PROJECT_PATH`` (or the session's
    repository); None when nothing names the project."""
    settings = GitLabSettings.of(env)
    ident = settings.project_id or settings.project_path or env.ci.repository
    return f"/projects/{quote(str(ident), safe='')}" if ident else None


def transition_from(err: HttpError) -> tuple[str, str] | None:
    """``(event, current state)`` of GitLab's 400 "Cannot transition status via :run from :running", else None."""
    if err.status != 400:
        return None
    found = _TRANSITION.search(err.provider_message)
    return (found.group(1), found.group(2)) if found else None
