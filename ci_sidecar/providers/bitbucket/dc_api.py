"""What the Bitbucket Data Center/Server flavour's modules share: its limits, its REST root, the repository's
project key and slug, credentials (no Pipelines proxy there) and links to the server's web pages.

A base URL is Data Center when its path has a ``/rest`` segment (:func:`._api.data_center`); every request goes
below that REST root: ``/insights/1.0`` (Code Insights), ``/api/latest`` (build statuses, Bitbucket 7.4 and
later; ``/build-status/1.0`` before), ``/api/1.0`` (pull request comments). The limits are the ones Atlassian's
public REST documentation and Code Insights guide state for Data Center.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from .._http import Auth, Basic, Bearer, HttpConfig, NoAuth
from ..base import ProviderEnv
from ._api import data_center
from .settings import BitbucketSettings

__all__ = ["TITLE_CHARS", "DETAILS_CHARS", "MESSAGE_CHARS", "DATA_FIELDS", "ANNOTATIONS_PER_REPORT",
           "ANNOTATIONS_PER_POST", "NO_DOWNLOADS", "NO_CREDENTIAL", "NO_REPOSITORY", "dc_mode", "dc_auth",
           "dc_config", "dc_repo", "repo_rest", "server_url", "commit_page", "pr_page"]

#: a report's ``title`` and ``details``, an annotation's ``message`` (characters)
TITLE_CHARS = 450
DETAILS_CHARS = 2000
MESSAGE_CHARS = 2000
#: ``data`` fields a report may carry on Data Center (Cloud allows 10)
DATA_FIELDS = 6
ANNOTATIONS_PER_REPORT = 1000
#: Data Center documents no smaller per-request bound than the report's 1,000; batches of 100 keep a retried
#: request (and the DELETE of its external ids before it) small
ANNOTATIONS_PER_POST = 100
NO_DOWNLOADS = ("Bitbucket Data Center has no Downloads API: artifacts go to the configured [artifact_store] "
                "(and the local output folder); without one they are in the local output folder only")
NO_CREDENTIAL = ("no Bitbucket Data Center credential: set BITBUCKET_TOKEN (an HTTP access token, sent as Bearer) "
                 "or BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD (Basic: the user's password or token)")
NO_REPOSITORY = ("no Data Center repository: set BITBUCKET_PROJECT_KEY and BITBUCKET_REPO_SLUG (or clone from "
                 "…/scm/<project>/<repo>.git)")

Mode = Literal["bearer", "basic", "none"]


def dc_mode(env: ProviderEnv) -> Mode:
    """A token alone is an HTTP access token (Bearer); with a user name it is a Basic password; else nothing."""
    if env.token:
        return "basic" if env.username else "bearer"
    return "none"


def dc_auth(env: ProviderEnv) -> Auth:
    kind = dc_mode(env)
    return Basic(env.username) if kind == "basic" else Bearer() if kind == "bearer" else NoAuth()


def dc_config(env: ProviderEnv) -> HttpConfig:
    """The HTTP settings with the REST root (``…/rest``) as the base URL."""
    return HttpConfig.from_env_config(data_center(env) or "", env.config)


def dc_repo(env: ProviderEnv) -> tuple[str, str] | None:
    """``(project key, repository slug)``: ``BITBUCKET_PROJECT_KEY``/``BITBUCKET_REPO_SLUG``, else the session's
    ``KEY/slug`` repository (what a ``…/scm/KEY/slug.git`` clone URL names); None when nothing names it."""
    settings = BitbucketSettings.of(env)
    key, slug = settings.project_key, settings.repo_slug
    if not (key and slug) and env.ci.repository and "/" in env.ci.repository:
        key, _, slug = env.ci.repository.partition("/")
    if not (key and slug) or "/" in slug:
        return None
    return key, slug.removesuffix(".git")


def repo_rest(env: ProviderEnv, api: str) -> str | None:
    """``/<api>/projects/{key}/repos/{slug}`` below the REST root (``api``: ``insights/1.0``, ``api/1.0``...)."""
    repo = dc_repo(env)
    if repo is None:
        return None
    return f"/{api}/projects/{quote(repo[0], safe='')}/repos/{quote(repo[1], safe='')}"


def server_url(env: ProviderEnv) -> str | None:
    """The server's web address: the REST root without ``/rest``."""
    root = data_center(env)
    return root.removesuffix("/rest") if root else None


def commit_page(env: ProviderEnv, sha: str) -> str | None:
    """The commit's page on the server (its reports and build statuses show there)."""
    server, repo = server_url(env), dc_repo(env)
    if not (server and repo):
        return None
    return f"{server}/projects/{quote(repo[0], safe='')}/repos/{quote(repo[1], safe='')}/commits/{quote(sha, safe='')}"


def pr_page(env: ProviderEnv, pr: int, comment_id: int | None = None) -> str | None:
    """A pull request's overview page, pointing at one comment when ``comment_id`` is given."""
    server, repo = server_url(env), dc_repo(env)
    if not (server and repo):
        return None
    url = f"{server}/projects/{quote(repo[0], safe='')}/repos/{quote(repo[1], safe='')}/pull-requests/{int(pr)}/overview"
    return f"{url}?commentId={int(comment_id)}" if comment_id is not None else url
