"""GitLab CI detection from recorded variable sets."""

from __future__ import annotations

from ci_sidecar.cienv import detect

SHA = "a" * 40
BASE = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.com",
    "CI_SERVER_HOST": "gitlab.com",
    "CI_PROJECT_ID": "101",
    "CI_PROJECT_PATH": "grp/sub/app",
    "CI_PROJECT_URL": "https://gitlab.com/grp/sub/app",
    "CI_PIPELINE_ID": "5000",
    "CI_PIPELINE_IID": "77",
    "CI_PIPELINE_URL": "https://gitlab.com/grp/sub/app/-/pipelines/5000",
    "CI_JOB_ID": "900",
    "CI_JOB_NAME": "unit",
    "CI_JOB_URL": "https://gitlab.com/grp/sub/app/-/jobs/900",
    "CI_COMMIT_SHA": SHA,
}


class TestGitLab:
    def test_branch_pipeline(self) -> None:
        """A push pipeline reports branch, pipeline and job."""
        env = {**BASE, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"}
        ctx = detect(env)
        assert (ctx.provider, ctx.repository, ctx.branch, ctx.commit_sha) == ("gitlab", "grp/sub/app", "main", SHA)
        assert (ctx.build_id, ctx.build_number, ctx.job, ctx.event) == ("5000", "77", "unit", "push")
        assert ctx.build_url == BASE["CI_PIPELINE_URL"] and ctx.job_url == BASE["CI_JOB_URL"]
        assert ctx.server_url == "https://gitlab.com" and ctx.scm is None

    def test_tag_pipeline(self) -> None:
        """A tag pipeline reports the tag and no branch (CI_COMMIT_REF_NAME is the tag name)."""
        env = {**BASE, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v2.0.0", "CI_COMMIT_REF_NAME": "v2.0.0"}
        ctx = detect(env)
        assert (ctx.tag, ctx.branch) == ("v2.0.0", None)

    def test_merge_request_uses_iid_not_global_id(self) -> None:
        """The MR number is the project-scoped IID that the API takes, not CI_MERGE_REQUEST_ID."""
        env = {**BASE, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_NAME": "feature/x",
               "CI_MERGE_REQUEST_ID": "987654", "CI_MERGE_REQUEST_IID": "12",
               "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/x", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
               "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": "", "CI_MERGE_REQUEST_PROJECT_ID": "101",
               "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "101"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch, ctx.is_fork) == (12, "feature/x", "main", False)
        assert ctx.head_sha is None  # exported empty outside merged-results pipelines
        assert ctx.sources["pr_number"].name == "CI_MERGE_REQUEST_IID"

    def test_merged_results_pipeline_head_sha(self) -> None:
        """In merged-results pipelines the head is CI_MERGE_REQUEST_SOURCE_BRANCH_SHA."""
        env = {**BASE, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "12",
               "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/x", "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": "b" * 40}
        ctx = detect(env)
        assert (ctx.commit_sha, ctx.head_sha) == (SHA, "b" * 40)

    def test_fork_merge_request(self) -> None:
        """An MR from another project is a fork MR."""
        env = {**BASE, "CI_MERGE_REQUEST_IID": "13", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "patch",
               "CI_MERGE_REQUEST_PROJECT_ID": "101", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "555"}
        assert detect(env).is_fork is True

    def test_self_managed_without_pipeline_url_derives_urls(self) -> None:
        """Without CI_PIPELINE_URL/CI_JOB_URL the URLs are built from CI_PROJECT_URL."""
        env = {k: v for k, v in BASE.items() if k not in {"CI_PIPELINE_URL", "CI_JOB_URL"}}
        env.update(CI_SERVER_URL="https://git.corp.example", CI_PROJECT_URL="https://git.corp.example/grp/sub/app",
                   CI_COMMIT_BRANCH="main")
        ctx = detect(env)
        assert ctx.build_url == "https://git.corp.example/grp/sub/app/-/pipelines/5000"
        assert ctx.job_url == "https://git.corp.example/grp/sub/app/-/jobs/900"
        assert ctx.sources["build_url"].kind == "derived"

    def test_external_pull_request_is_hosted_on_github(self) -> None:
        """External PR pipelines (a mirrored GitHub repo) report the GitHub PR and GitHub as code host."""
        env = {**BASE, "CI_PIPELINE_SOURCE": "external_pull_request", "CI_EXTERNAL_PULL_REQUEST_IID": "45",
               "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME": "feat", "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME": "main",
               "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_SHA": "c" * 40,
               "CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY": "octo/app",
               "CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY": "octo/app"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.head_sha, ctx.is_fork) == (45, "feat", "c" * 40, False)
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.repository) == ("github", "octo/app")
