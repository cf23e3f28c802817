"""Azure Pipelines: ``TF_BUILD``, ``BUILD_*``, ``SYSTEM_*`` and ``SYSTEM_PULLREQUEST_*`` variables.

Docs: https://learn.microsoft.com/en-us/azure/devops/pipelines/build/variables
Traps handled here:
- PR *number* vs *id*: for GitHub-hosted repositories ``SYSTEM_PULLREQUEST_PULLREQUESTNUMBER`` is the number
  and ``SYSTEM_PULLREQUEST_PULLREQUESTID`` GitHub's internal id; for Azure Repos the id is the number.
- ``BUILD_SOURCEVERSION`` is the merge commit on PR builds; the head is ``SYSTEM_PULLREQUEST_SOURCECOMMITID``.
- ``BUILD_SOURCEBRANCHNAME`` is only the last path segment (``feature/x`` -> ``x``): never used as the branch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from ci_sidecar.cienv._fields import Fields, parse_int, strip_ref, truthy
from ci_sidecar.cienv._git import Git
from ci_sidecar.cienv.scm import host_of, scm_from_remote
from ci_sidecar.protocol.records import ScmContext

__all__ = ["NAME", "is_present", "detect"]

NAME = "azure"
_PULL_REF = re.compile(r"^refs/pull/(?P<number>\d+)/merge$")
_GITHUB_PROVIDERS = {"github", "githubenterprise"}


def is_present(env: Mapping[str, str]) -> bool:
    """``TF_BUILD=True`` on every agent (env-ci also accepts ``BUILD_BUILDURI``)."""
    return truthy(env.get("TF_BUILD")) is True or bool(env.get("BUILD_BUILDURI", "").strip())


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from an Azure Pipelines environment."""
    repo_provider = (f.var("BUILD_REPOSITORY_PROVIDER") or "").lower()
    f.from_env("repository", "BUILD_REPOSITORY_NAME")
    f.from_env("server_url", "SYSTEM_COLLECTIONURI")
    f.from_env("event", "BUILD_REASON")
    f.from_env("commit_sha", "BUILD_SOURCEVERSION")

    if repo_provider in _GITHUB_PROVIDERS:
        # The id of a GitHub PR is GitHub's internal one; only the number addresses the PR.
        f.from_env("pr_number", "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER", convert=parse_int)
    else:
        f.from_env("pr_number", "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER", "SYSTEM_PULLREQUEST_PULLREQUESTID",
                   convert=parse_int)
    source_ref = f.var("BUILD_SOURCEBRANCH")
    if not f.has("pr_number") and source_ref and (m := _PULL_REF.match(source_ref)):
        f.put("pr_number", int(m["number"]), "derived", "BUILD_SOURCEBRANCH")
    if f.has("pr_number") or f.var("BUILD_REASON") == "PullRequest":
        f.from_env("head_sha", "SYSTEM_PULLREQUEST_SOURCECOMMITID")
        f.from_env("branch", "SYSTEM_PULLREQUEST_SOURCEBRANCH", convert=strip_ref)
        f.from_env("target_branch", "SYSTEM_PULLREQUEST_TARGETBRANCH", convert=strip_ref)
        f.from_env("is_fork", "SYSTEM_PULLREQUEST_ISFORK", convert=truthy)
    if source_ref:
        if source_ref.startswith("refs/tags/"):
            f.put("tag", source_ref.removeprefix("refs/tags/"), "env", "BUILD_SOURCEBRANCH")
        elif source_ref.startswith("refs/heads/"):
            f.put("branch", strip_ref(source_ref), "env", "BUILD_SOURCEBRANCH")

    f.from_env("build_id", "BUILD_BUILDID")
    f.from_env("build_number", "BUILD_BUILDNUMBER")
    f.from_env("job", "SYSTEM_JOBDISPLAYNAME", "AGENT_JOBNAME")
    f.from_env("run_attempt", "SYSTEM_JOBATTEMPT", convert=parse_int)
    collection, project, build_id = f.var("SYSTEM_COLLECTIONURI"), f.var("SYSTEM_TEAMPROJECT"), f.var("BUILD_BUILDID")
    if collection and project and build_id:
        base = f"{collection.rstrip('/')}/{quote(project)}/_build/results?buildId={build_id}"
        f.put("build_url", base, "derived", "SYSTEM_COLLECTIONURI/SYSTEM_TEAMPROJECT/_build/results?buildId=BUILD_BUILDID")
        if (job_id := f.var("SYSTEM_JOBID")) is not None:
            f.put("job_url", f"{base}&view=logs&j={job_id}", "derived", "build_url&view=logs&j=SYSTEM_JOBID")

    # Code host: BUILD_REPOSITORY_PROVIDER says which (TfsGit = Azure Repos, GitHub, GitHubEnterprise, Bitbucket).
    uri = f.var("BUILD_REPOSITORY_URI")
    host_provider = {"tfsgit": "azure", "github": "github", "githubenterprise": "github", "bitbucket": "bitbucket"}
    scm_name = host_provider.get(repo_provider)
    if scm_name is not None and scm_name != "azure":
        parsed = scm_from_remote(uri, {host_of(uri) or "": scm_name}) if uri else None
        repository = f.values.get("repository") or (parsed.repository if parsed else None)
        server = parsed.server_url if parsed else None
        f.set_scm(ScmContext(provider=scm_name, repository=repository, server_url=server), "env", "BUILD_REPOSITORY_PROVIDER")
    elif scm_name is None:
        f.add_remote(uri, "env", "BUILD_REPOSITORY_URI")
