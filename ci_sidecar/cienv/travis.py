"""Travis CI: ``TRAVIS_*`` variables.

Docs: https://docs.travis-ci.com/user/environment-variables/#default-environment-variables
Traps handled here:
- ``TRAVIS_PULL_REQUEST`` is the PR number or the string ``"false"``.
- On PR builds ``TRAVIS_BRANCH`` is the *target* branch and ``TRAVIS_COMMIT`` the merge commit; the source is
  ``TRAVIS_PULL_REQUEST_BRANCH`` / ``TRAVIS_PULL_REQUEST_SHA``.
- On tag builds ``TRAVIS_BRANCH`` holds the tag name, so it is not reported as a branch.
- Travis hosts no code: the code host is the first segment of travis-ci.com's web URLs
  (``https://app.travis-ci.com/github/<owner>/<repo>/builds/<id>``, ``/bitbucket/``, ``/gitlab/``), else the
  checkout's git remote (Travis clones from the code host).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from ci_sidecar.cienv._fields import Fields, parse_int
from ci_sidecar.cienv._git import Git
from ci_sidecar.protocol.records import ScmContext

__all__ = ["NAME", "is_present", "detect"]

NAME = "travis"
_HOSTS = {"github": "https://github.com", "bitbucket": "https://bitbucket.org", "gitlab": "https://gitlab.com"}


def is_present(env: Mapping[str, str]) -> bool:
    """``TRAVIS=true`` in every job."""
    return env.get("TRAVIS", "").strip().lower() == "true"


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a Travis CI environment."""
    f.from_env("repository", "TRAVIS_REPO_SLUG")
    f.from_env("commit_sha", "TRAVIS_COMMIT")
    f.from_env("event", "TRAVIS_EVENT_TYPE")
    f.from_env("tag", "TRAVIS_TAG")
    pr = f.var("TRAVIS_PULL_REQUEST")
    if pr is not None and pr.lower() != "false":
        f.from_env("pr_number", "TRAVIS_PULL_REQUEST", convert=parse_int)
    if f.has("pr_number"):
        f.from_env("head_sha", "TRAVIS_PULL_REQUEST_SHA")
        f.from_env("branch", "TRAVIS_PULL_REQUEST_BRANCH")
        f.from_env("target_branch", "TRAVIS_BRANCH")
        slug, repo = f.var("TRAVIS_PULL_REQUEST_SLUG"), f.var("TRAVIS_REPO_SLUG")
        if slug and repo:
            f.put("is_fork", slug != repo, "env", "TRAVIS_PULL_REQUEST_SLUG")
    elif not f.has("tag"):
        f.from_env("branch", "TRAVIS_BRANCH")

    f.from_env("build_id", "TRAVIS_BUILD_ID")
    f.from_env("build_number", "TRAVIS_BUILD_NUMBER")
    f.from_env("job", "TRAVIS_JOB_NAME", "TRAVIS_JOB_NUMBER")
    f.from_env("build_url", "TRAVIS_BUILD_WEB_URL")
    f.from_env("job_url", "TRAVIS_JOB_WEB_URL")
    web = f.var("TRAVIS_BUILD_WEB_URL")
    if web:
        parts = urlsplit(web)
        if parts.scheme and parts.hostname:
            f.put("server_url", f"{parts.scheme}://{parts.hostname}", "derived", "TRAVIS_BUILD_WEB_URL")
        vcs = parts.path.strip("/").split("/")[0]
        if vcs in _HOSTS:
            f.set_scm(ScmContext(provider=vcs, repository=f.var("TRAVIS_REPO_SLUG"), server_url=_HOSTS[vcs]),
                      "derived", "TRAVIS_BUILD_WEB_URL")
