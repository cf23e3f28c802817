"""No CI (or ``CI=false``, or ``CI=true`` from an unknown CI): everything comes from git in the working tree.

The repository is taken from the ``origin`` remote (else the first remote), the commit from ``HEAD``, the
branch from the checked-out branch and the tag from a tag pointing at ``HEAD``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ci_sidecar.cienv._fields import Fields
from ci_sidecar.cienv._git import Git

__all__ = ["NAME", "is_present", "detect", "fill_from_git"]

NAME = "local"


def is_present(env: Mapping[str, str]) -> bool:
    """``local`` is the fallback and is never detected by itself."""
    return False


def fill_from_git(f: Fields, git: Git) -> None:
    """Fill commit and branch from git when the CI left them empty (any provider)."""
    if not f.has("commit_sha"):
        f.put("commit_sha", git.head(), "git", "rev-parse HEAD")
    if not f.has("branch") and not f.has("tag") and not f.has("pr_number"):
        f.put("branch", git.branch(), "git", "symbolic-ref HEAD")


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from git alone (the repository comes from the remote, during scm detection)."""
    git.prefetch(Git.HEAD, Git.BRANCH, Git.ORIGIN)  # all three are needed here: three git processes at once
    fill_from_git(f, git)
    if not f.has("branch"):
        f.put("tag", git.tag(), "git", "tag --points-at HEAD")
    remote = git.remote_url()
    if remote is not None:
        f.add_remote(remote[1], "git", f"remote.{remote[0]}.url")
