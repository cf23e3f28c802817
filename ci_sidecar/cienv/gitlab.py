"""GitLab CI/CD: ``CI_*`` predefined variables.

Docs: https://docs.gitlab.com/ci/variables/predefined_variables/
Traps handled here:
- The MR number used by the API is ``CI_MERGE_REQUEST_IID`` (project scoped), never ``CI_MERGE_REQUEST_ID``.
- In merged-results pipelines ``CI_COMMIT_SHA`` is a merge commit; the MR head is
  ``CI_MERGE_REQUEST_SOURCE_BRANCH_SHA`` (exported but empty in plain MR pipelines).
- External pull-request pipelines (a GitHub repository mirrored to GitLab) use ``CI_EXTERNAL_PULL_REQUEST_*``;
  their code host is GitHub.
"""

from __future__ import annotations

from collections.abc import Mapping

from ci_sidecar.cienv._fields import Fields, parse_int
from ci_sidecar.cienv._git import Git
from ci_sidecar.protocol.records import ScmContext

__all__ = ["NAME", "is_present", "detect"]

NAME = "gitlab"


def is_present(env: Mapping[str, str]) -> bool:
    """``GITLAB_CI=true`` is set in every GitLab job."""
    return env.get("GITLAB_CI", "").strip().lower() == "true"


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a GitLab CI environment."""
    f.from_env("repository", "CI_PROJECT_PATH")
    f.from_env("server_url", "CI_SERVER_URL")
    f.from_env("event", "CI_PIPELINE_SOURCE")
    f.from_env("commit_sha", "CI_COMMIT_SHA")
    f.from_env("tag", "CI_COMMIT_TAG")

    if f.var("CI_MERGE_REQUEST_IID"):
        f.from_env("pr_number", "CI_MERGE_REQUEST_IID", convert=parse_int)
        f.from_env("head_sha", "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
        f.from_env("branch", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        f.from_env("target_branch", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
        source_project, project = f.var("CI_MERGE_REQUEST_SOURCE_PROJECT_ID"), f.var("CI_MERGE_REQUEST_PROJECT_ID")
        if source_project and project:
            f.put("is_fork", source_project != project, "env", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    elif f.var("CI_EXTERNAL_PULL_REQUEST_IID"):
        f.from_env("pr_number", "CI_EXTERNAL_PULL_REQUEST_IID", convert=parse_int)
        f.from_env("head_sha", "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_SHA")
        f.from_env("branch", "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME")
        f.from_env("target_branch", "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME")
        source_repo, target_repo = (f.var("CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY"),
                                    f.var("CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY"))
        if source_repo and target_repo:
            f.put("is_fork", source_repo != target_repo, "env", "CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY")
    if not f.has("tag"):
        # CI_COMMIT_BRANCH is unset in MR pipelines; CI_COMMIT_REF_NAME is then the source branch too.
        f.from_env("branch", "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME")

    f.from_env("build_id", "CI_PIPELINE_ID")
    f.from_env("build_number", "CI_PIPELINE_IID")
    f.from_env("job", "CI_JOB_NAME")
    f.from_env("build_url", "CI_PIPELINE_URL")
    f.from_env("job_url", "CI_JOB_URL")
    project_url = f.var("CI_PROJECT_URL")
    if project_url:
        if (pipeline := f.var("CI_PIPELINE_ID")) is not None:
            f.put("build_url", f"{project_url}/-/pipelines/{pipeline}", "derived", "CI_PROJECT_URL/-/pipelines/CI_PIPELINE_ID")
        if (job := f.var("CI_JOB_ID")) is not None:
            f.put("job_url", f"{project_url}/-/jobs/{job}", "derived", "CI_PROJECT_URL/-/jobs/CI_JOB_ID")
    if f.var("CI_EXTERNAL_PULL_REQUEST_IID"):
        # External pull requests exist only for GitHub repositories; the GitHub host itself is not exported.
        target = f.var("CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY")
        f.set_scm(ScmContext(provider="github", repository=target), "env", "CI_EXTERNAL_PULL_REQUEST_IID")
