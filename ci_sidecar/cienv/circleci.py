"""CircleCI: ``CIRCLE_*`` variables.

Docs: https://circleci.com/docs/reference/variables/
Traps handled here:
- ``CIRCLE_PR_NUMBER`` is only set for PRs from forks; otherwise the number is parsed from the
  ``CIRCLE_PULL_REQUEST`` URL (``.../pull/123`` on GitHub, ``.../pull-requests/123`` on Bitbucket).
- CircleCI hosts no code: the code host comes from ``CIRCLE_REPOSITORY_URL``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from ci_sidecar.cienv._fields import Fields, parse_int
from ci_sidecar.cienv._git import Git

__all__ = ["NAME", "is_present", "detect", "pr_number_from_url"]

NAME = "circleci"
_PR_URL = re.compile(r"/(?:pull|pull-requests|merge_requests)/(?P<number>\d+)/?$")


def is_present(env: Mapping[str, str]) -> bool:
    """``CIRCLECI=true`` in every job."""
    return env.get("CIRCLECI", "").strip().lower() == "true"


def pr_number_from_url(url: str) -> int | None:
    """``https://github.com/o/r/pull/123`` -> 123; None when the URL names no PR."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    m = _PR_URL.search(path)
    return int(m["number"]) if m else None


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}" if parts.scheme and parts.netloc else None


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a CircleCI environment."""
    owner, name = f.var("CIRCLE_PROJECT_USERNAME"), f.var("CIRCLE_PROJECT_REPONAME")
    if owner and name:
        f.put("repository", f"{owner}/{name}", "env", "CIRCLE_PROJECT_USERNAME/CIRCLE_PROJECT_REPONAME")
    f.from_env("commit_sha", "CIRCLE_SHA1")
    f.from_env("tag", "CIRCLE_TAG")
    if not f.has("tag"):
        f.from_env("branch", "CIRCLE_BRANCH")

    f.from_env("pr_number", "CIRCLE_PR_NUMBER", convert=parse_int)
    if f.has("pr_number"):
        f.put("is_fork", True, "env", "CIRCLE_PR_NUMBER")  # only exported for forked PRs
    else:
        f.from_env("pr_number", "CIRCLE_PULL_REQUEST", convert=pr_number_from_url)
        if not f.has("pr_number"):
            # CIRCLE_PULL_REQUESTS is a comma-separated list; the first one is the build's own.
            many = (f.var("CIRCLE_PULL_REQUESTS") or "").split(",")[0]
            if (number := pr_number_from_url(many)) is not None:
                f.put("pr_number", number, "env", "CIRCLE_PULL_REQUESTS")
        if f.has("pr_number"):
            f.put("is_fork", False, "derived", "CIRCLE_PR_NUMBER")

    f.from_env("build_number", "CIRCLE_BUILD_NUM")
    f.from_env("build_id", "CIRCLE_WORKFLOW_ID")
    f.from_env("job", "CIRCLE_JOB")
    # CIRCLE_BUILD_URL is the job's page (CircleCI 2.x "builds" are jobs).
    f.from_env("build_url", "CIRCLE_BUILD_URL")
    f.from_env("job_url", "CIRCLE_BUILD_URL")
    build_url = f.var("CIRCLE_BUILD_URL")
    if build_url:
        f.put("server_url", _origin(build_url), "derived", "CIRCLE_BUILD_URL")
    f.add_remote(f.var("CIRCLE_REPOSITORY_URL"), "env", "CIRCLE_REPOSITORY_URL")
    f.add_remote(f.var("CIRCLE_PULL_REQUEST"), "env", "CIRCLE_PULL_REQUEST")
