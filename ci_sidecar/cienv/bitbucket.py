"""Bitbucket Pipelines: ``BITBUCKET_*`` variables.

Docs: https://support.atlassian.com/bitbucket-cloud/docs/variables-and-secrets/
Trap handled here: ``BITBUCKET_COMMIT`` can be an abbreviated SHA (e.g. on PR pipelines); APIs need the full
one, so it is expanded with git in the clone when the commit is there, and kept as given otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from ci_sidecar.cienv._fields import Fields, parse_int
from ci_sidecar.cienv._git import Git
from ci_sidecar.protocol.records import ScmContext

__all__ = ["NAME", "is_present", "detect"]

log = logging.getLogger(__name__)

NAME = "bitbucket"
CLOUD = "https://bitbucket.org"
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")


def is_present(env: Mapping[str, str]) -> bool:
    """``BITBUCKET_BUILD_NUMBER`` is set in every pipeline step (env-ci's key; ci-info uses ``BITBUCKET_COMMIT``)."""
    return bool(env.get("BITBUCKET_BUILD_NUMBER", "").strip() or env.get("BITBUCKET_COMMIT", "").strip())


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a Bitbucket Pipelines environment."""
    f.from_env("repository", "BITBUCKET_REPO_FULL_NAME")
    if not f.has("repository"):
        ws, slug = f.var("BITBUCKET_WORKSPACE"), f.var("BITBUCKET_REPO_SLUG")
        if ws and slug:
            f.put("repository", f"{ws}/{slug}", "env", "BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG")
    commit = f.var("BITBUCKET_COMMIT")
    if commit and _SHORT_SHA.match(commit):
        full = git.expand(commit)
        if full is None and (clone := f.var("BITBUCKET_CLONE_DIR")) and clone != git.cwd:
            full = Git(clone, timeout=git.timeout).expand(commit)
        if full is not None:
            f.put("commit_sha", full, "git", "rev-parse BITBUCKET_COMMIT")
        else:
            log.info("BITBUCKET_COMMIT %s is abbreviated and git could not expand it", commit)
    f.from_env("commit_sha", "BITBUCKET_COMMIT")
    f.from_env("tag", "BITBUCKET_TAG")
    if not f.has("tag"):
        f.from_env("branch", "BITBUCKET_BRANCH")
    f.from_env("pr_number", "BITBUCKET_PR_ID", convert=parse_int)
    if f.has("pr_number"):
        f.from_env("target_branch", "BITBUCKET_PR_DESTINATION_BRANCH")
    f.from_env("build_number", "BITBUCKET_BUILD_NUMBER")
    f.from_env("build_id", "BITBUCKET_PIPELINE_UUID")
    repo, number = f.values.get("repository"), f.values.get("build_number")
    if not number:
        # BITBUCKET_* variables without a Pipelines build (a Jenkins or Bamboo job naming a Data Center commit):
        # the code host comes from the clone URL (…/scm/PROJ/repo.git), not from an assumed bitbucket.org
        return
    f.put("server_url", CLOUD, "derived", "BITBUCKET_BUILD_NUMBER")  # Pipelines only exists on Bitbucket Cloud
    if repo and number:
        f.put("build_url", f"{CLOUD}/{repo}/pipelines/results/{number}", "derived",
              "bitbucket.org/BITBUCKET_REPO_FULL_NAME/pipelines/results/BITBUCKET_BUILD_NUMBER")
    f.set_scm(ScmContext(provider="bitbucket", repository=repo, server_url=CLOUD), "derived", "BITBUCKET_BUILD_NUMBER")
