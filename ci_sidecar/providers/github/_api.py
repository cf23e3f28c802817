"""What every GitHub module shares: the API's constants and limits, its text rules, token kinds, the
settings read from the session, and the one place an ``HttpLayer`` for the REST API is described."""

from __future__ import annotations

import re
from urllib.parse import quote

from .._http import (
    DEFAULT_PACING,
    HttpConfig,
    HttpError,
    HttpLayer,
    Response,
    Rules,
    retry_after_seconds,
    retry_undecodable,
)
from ..base import Outcome, ProviderEnv
from .settings import GitHubSettings

__all__ = ["DEFAULT_API_URL", "API_VERSION", "bmp_safe", "token_kind", "not_accessible", "repo_path",
           "rest_layer", "RULES", "rest_config", "max_annotations", "step_summary_path", "surrogate_safe"]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"

SUMMARY_BYTES = 65535
COMMENT_CHARS = 65536
ANNOTATIONS_PER_REQUEST = 50
DEFAULT_MAX_ANNOTATIONS = 1000
STATUS_DESCRIPTION_CHARS = 140
ANNOTATION_TEXT_BYTES = 64000  # "64 KB" in the docs; EM keeps 64000 to be safe
ANNOTATION_TITLE_CHARS = 255
STEP_SUMMARY_BYTES = 1024 * 1024 - 1  # an oversized step summary is dropped whole by the runner
MAX_SUMMARY_FAILURES = 1000  # failures rendered in a summary (the ladder shortens further)

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: the report renderer's own astral icons get BMP look-alikes instead of an escape
_ICONS = {"\U0001f4a5": "\u2757"}  # 💥 → ❗


def surrogate_safe(text: str) -> str:
    """Lone surrogates replaced by U+FFFD, so the text always encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def bmp_safe(text: str) -> str:
    """Characters above U+FFFF escaped as ``\\U0001F600`` (icons of our own get a BMP look-alike); lone
    surrogates become U+FFFD so the text always encodes."""
    return _ASTRAL.sub(lambda m: _ICONS.get(m.group(), f"\\U{ord(m.group()):08X}"), surrogate_safe(text))


def not_accessible(err: HttpError) -> bool:
    """403 meaning "this token may not do this" (as opposed to a rate limit, which is a retry)."""
    if err.status != 403 or err.outcome.kind != "refused":
        return False
    text = err.provider_message.lower()
    return "not accessible" in text or "github app" in text or "permission" in text


def token_kind(token: str | None) -> str:
    """From GitHub's documented token prefixes: ``pat`` cannot create check runs; ``app`` can."""
    if not token:
        return "none"
    if token.startswith(("ghp_", "github_pat_", "gho_", "ghu_")):
        return "pat"
    if token.startswith(("ghs_", "v1.")):
        return "app"
    return "unknown"


def repo_path(repository: str | None) -> str | None:
    """``/repos/{owner}/{repo}`` for ``owner/repo`` (each part quoted); None for anything else."""
    if not repository or repository.count("/") != 1:
        return None
    owner, repo = repository.split("/")
    if not owner or not repo:
        return None
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"


#: When a secondary rate limit names no wait at all, GitHub's docs say to wait at least a minute.
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0


def _rate_limit_403(resp: Response, message: str, now: float | None) -> Outcome | None:
    """GitHub answers its primary and secondary rate limits with 403 (not only 429): a retry, after
    ``Retry-After``, the reset time, or a minute."""
    if resp.status != 403:
        return None
    lowered = message.lower()
    limited = ("rate limit" in lowered or "abuse" in lowered
               or resp.headers.get("x-ratelimit-remaining", "").strip() == "0" or "retry-after" in resp.headers)
    if not limited:
        return None
    wait = retry_after_seconds(resp.headers, now=now)
    return Outcome.retry(f"rate limited (HTTP 403): {message}", status=403,
                         retry_after=SECONDARY_LIMIT_DEFAULT_WAIT if wait is None else wait)


_REPO_IN_URL = re.compile(r"/repos/([^/?#]+)/([^/?#]+)")


def _permissions(resp: Response) -> str:
    """``x-accepted-github-permissions: checks=write; pull_requests=write`` as ``checks: write`` or ..."""
    raw = resp.headers.get("x-accepted-github-permissions", "")
    wanted = [p.strip().replace("=", ": ") for p in raw.split(";") if "=" in p]
    return " or ".join(f"`{w}`" for w in wanted)


def explain(resp: Response, message: str) -> str | None:
    """GitHub's refusal with what to change (token kind, the workflow's ``permissions:``, fork PRs), or None."""
    lowered = message.lower()
    found = _REPO_IN_URL.search(resp.url)
    repo = f"{found.group(1)}/{found.group(2)}" if found else "the repository"
    if resp.status == 401:
        return (f"{message}: the token is invalid, expired or revoked (an Actions GITHUB_TOKEN expires when its job "
                "ends); check which token the session sends")
    if resp.status == 403 and "must authenticate via a github app" in lowered:
        return (f"{message}: check runs need a GitHub App installation token or the Actions GITHUB_TOKEN; a personal "
                "access token can write commit statuses and comments, not check runs")
    if resp.status == 403 and "not accessible by integration" in lowered:
        needed = _permissions(resp)
        return (f"{message}: the token lacks a permission{f' (GitHub accepts {needed})' if needed else ''}; in a "
                f"workflow, grant it in the job's `permissions:`{f' ({needed})' if needed else ''}. A pull request "
                "from a fork, and Dependabot, only get a read-only GITHUB_TOKEN: publish from a `workflow_run` "
                "workflow instead (docs/github.md)")
    if resp.status == 404:
        return (f"{message}: {repo} does not exist or this token cannot see it (GitHub answers 404, not 403, for a "
                "private repository without access); check GITHUB_REPOSITORY and the token's repository access "
                "(a fine-grained token lists its repositories, an App must be installed on it; in a workflow "
                "`permissions: contents: read`)")
    if resp.status == 422 and "no commit found" in lowered:
        return (f"{message}: {repo} on GitHub does not have this commit (not pushed yet, or a local or merge "
                "SHA); checks and statuses go on a pushed commit, the head SHA of a pull request")
    return None


def _classify(resp: Response, message: str, now: float | None) -> Outcome | None:
    """Rate limits retry (403 too); refusals a person can act on say what to change."""
    limited = _rate_limit_403(resp, message, now)
    if limited is not None:
        return limited
    advice = explain(resp, message) if resp.status >= 400 else None
    return Outcome.refused(advice, status=resp.status) if advice else None


#: GitHub's hooks: 403 rate limits retry, refusals explained; an undecodable 2xx is a truncated answer or a
#: passing proxy page
RULES = Rules(classify=_classify, non_json=retry_undecodable)


def rest_layer(*, pacing: tuple[tuple[int, float], ...] = DEFAULT_PACING) -> HttpLayer:
    """The HTTP layer for GitHub's REST API (its media type and API version on every request)."""
    return HttpLayer("github", default_headers={"Accept": "application/vnd.github+json",
                                                "X-GitHub-Api-Version": API_VERSION}, pacing=pacing, rules=RULES)


def rest_config(env: ProviderEnv) -> HttpConfig:
    """``base_url`` from the session, the job's ``GITHUB_API_URL``, or api.github.com."""
    base = env.base_url or GitHubSettings.of(env).api_url or DEFAULT_API_URL
    return HttpConfig.from_env_config(str(base), env.config)


def max_annotations(env: ProviderEnv) -> int:
    """The cap on failure annotations per check run (``max_annotations`` setting)."""
    configured = GitHubSettings.of(env).max_annotations
    return DEFAULT_MAX_ANNOTATIONS if configured is None else configured


def step_summary_path(env: ProviderEnv) -> str | None:
    """``GITHUB_STEP_SUMMARY`` of the job, when the session runs inside GitHub Actions."""
    path = GitHubSettings.of(env).step_summary_path
    return path if path and env.ci.provider == "github" else None
