"""Jenkins: core ``BUILD_*``/``JOB_*`` variables, the git plugin, multibranch ``CHANGE_*``, GHPRB and the GitLab plugin.

Docs: https://www.jenkins.io/doc/book/pipeline/jenkinsfile/#using-environment-variables (``/env-vars.html`` on
any Jenkins), https://plugins.jenkins.io/ghprb/, https://plugins.jenkins.io/gitlab-plugin/.
Traps handled here:
- PR builds come from three plugins with different names: multibranch ``CHANGE_ID``/``CHANGE_BRANCH``/
  ``CHANGE_TARGET``/``CHANGE_FORK``, GHPRB ``ghprbPullId``/``ghprbSourceBranch``/``ghprbActualCommit``, and the
  GitLab plugin ``gitlabMergeRequestIid`` (the API number; ``gitlabMergeRequestId`` is the global id).
- ``BRANCH_NAME`` is ``PR-12`` on multibranch PR builds and ``GIT_BRANCH`` is ``origin/main``: the source branch
  comes from the PR variables first, and the remote prefix is stripped.
- Multibranch PR builds (GitHub, GitLab and Bitbucket branch sources) check out, by default, a merge of the PR
  into its target made on the agent: ``GIT_COMMIT`` is that local merge commit, which the code host has never
  seen. When HEAD is that merge, the PR's head commit (where statuses and checks belong) is its second parent.
- ``CHANGE_URL`` names the pull request on the code host (``…/pull/7``, ``…/-/merge_requests/7``,
  ``…/pull-requests/7``) and is the best hint of the repository; ``GIT_URL`` (the clone URL) follows.
"""

from __future__ import annotations

from collections.abc import Mapping

from ci_sidecar.cienv._fields import Fields, parse_int, strip_ref
from ci_sidecar.cienv._git import Git
from ci_sidecar.cienv.scm import host_of, scm_from_remote
from ci_sidecar.protocol.records import ScmContext

__all__ = ["NAME", "is_present", "detect"]

NAME = "jenkins"


def is_present(env: Mapping[str, str]) -> bool:
    """``JENKINS_URL`` and ``BUILD_ID`` are both set in every Jenkins build (either alone is too common)."""
    return bool(env.get("JENKINS_URL", "").strip() and env.get("BUILD_ID", "").strip())


def _local_branch(value: str) -> str | None:
    """``origin/feature/x`` -> ``feature/x``; ``refs/heads/x`` -> ``x``; ``PR-12`` style names are not branches."""
    value = strip_ref(value) or ""
    if value.startswith("refs/remotes/"):
        value = value.split("/", 3)[-1]
    elif value.startswith("origin/"):
        value = value.removeprefix("origin/")
    return value or None


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a Jenkins environment."""
    f.from_env("server_url", "JENKINS_URL")
    f.from_env("build_id", "BUILD_ID")
    f.from_env("build_number", "BUILD_NUMBER")
    f.from_env("job", "JOB_NAME")
    f.from_env("build_url", "BUILD_URL")
    f.from_env("job_url", "JOB_URL")
    f.from_env("event", "gitlabActionType")

    # PR / MR number: multibranch, then GHPRB, then the GitLab plugin.
    f.from_env("pr_number", "CHANGE_ID", "ghprbPullId", "gitlabMergeRequestIid", convert=parse_int)
    is_pr = f.has("pr_number")
    if is_pr:
        f.from_env("branch", "CHANGE_BRANCH", "ghprbSourceBranch", "gitlabSourceBranch")
        f.from_env("target_branch", "CHANGE_TARGET", "ghprbTargetBranch", "gitlabTargetBranch")
        f.from_env("head_sha", "ghprbActualCommit", "gitlabMergeRequestLastCommit")
        name = f.sources["pr_number"].name
        if name == "CHANGE_ID":
            # CHANGE_FORK names the fork's owner and is unset for same-repository PRs.
            f.put("is_fork", f.var("CHANGE_FORK") is not None, "env", "CHANGE_FORK")
        elif name == "gitlabMergeRequestIid":
            src, dst = f.var("gitlabSourceRepoHttpUrl"), f.var("gitlabTargetRepoHttpUrl")
            if src and dst:
                f.put("is_fork", src != dst, "env", "gitlabSourceRepoHttpUrl")
    elif f.var("gitlabSourceBranch") and f.var("gitlabActionType") in {"PUSH", "TAG_PUSH"}:
        f.from_env("branch", "gitlabSourceBranch")

    f.from_env("tag", "TAG_NAME")
    if not f.has("tag") and not f.has("branch"):
        for name in ("BRANCH_NAME", "GIT_LOCAL_BRANCH", "GIT_BRANCH"):
            raw = f.var(name)
            if raw and not (is_pr and name == "BRANCH_NAME"):
                if f.put("branch", _local_branch(raw), "env", name):
                    break

    f.from_env("commit_sha", "GIT_COMMIT", "ghprbActualCommit", "gitlabMergeRequestLastCommit")
    if f.sources.get("pr_number") and f.sources["pr_number"].name == "CHANGE_ID" and not f.has("head_sha"):
        _merge_head(f, git)

    # Repository and code host: the PR plugins name them, else the clone URL of the git plugin.
    ghprb_repo = f.var("ghprbGhRepository")
    if ghprb_repo:
        f.put("repository", ghprb_repo, "env", "ghprbGhRepository")
        link = f.var("ghprbPullLink")
        # GHPRB only builds GitHub PRs, whatever the host is called (GitHub Enterprise).
        scm = scm_from_remote(link, {host_of(link) or "": "github"}) if link else None
        server = scm.server_url if scm is not None else None
        f.set_scm(ScmContext(provider="github", repository=ghprb_repo, server_url=server), "env", "ghprbGhRepository")
    gitlab_url = f.var("gitlabTargetRepoHttpUrl") or f.var("gitlabSourceRepoHttpUrl")
    if gitlab_url:
        scm = scm_from_remote(gitlab_url, {host_of(gitlab_url) or "": "gitlab"})
        if scm is not None:
            f.set_scm(scm, "env", "gitlabTargetRepoHttpUrl")
            f.put("repository", scm.repository, "derived", "gitlabTargetRepoHttpUrl")
    for name in ("CHANGE_URL", "GIT_URL", "GIT_URL_1"):
        f.add_remote(f.var(name), "env", name)


def _merge_head(f: Fields, git: Git) -> None:
    """On a multibranch PR build whose checkout is the agent's merge of the PR (``GIT_COMMIT`` = HEAD, two
    parents: the target, then the PR's head), the PR's head commit is the second parent."""
    commit = f.var("GIT_COMMIT")
    if not commit or git.head() != commit.lower():
        return
    parents = git.parents()
    if parents is not None and len(parents) == 2:
        f.put("head_sha", parents[1], "git", "HEAD^2 (the PR head of the agent's merge commit)")
