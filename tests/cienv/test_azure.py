"""Azure Pipelines detection from recorded variable sets."""

from __future__ import annotations

from ci_sidecar.cienv import detect

BASE = {
    "TF_BUILD": "True",
    "SYSTEM_COLLECTIONURI": "https://dev.azure.com/contoso/",
    "SYSTEM_TEAMPROJECT": "Fabrikam Web",
    "SYSTEM_TEAMPROJECTID": "0000-1111",
    "BUILD_BUILDID": "1234",
    "BUILD_BUILDNUMBER": "20240101.3",
    "BUILD_SOURCEVERSION": "5" * 40,
    "SYSTEM_JOBID": "abcd-ef",
    "SYSTEM_JOBDISPLAYNAME": "Run tests",
    "SYSTEM_JOBATTEMPT": "1",
}
AZURE_REPO = {"BUILD_REPOSITORY_PROVIDER": "TfsGit", "BUILD_REPOSITORY_NAME": "web",
              "BUILD_REPOSITORY_URI": "https://contoso@dev.azure.com/contoso/Fabrikam%20Web/_git/web"}
GITHUB_REPO = {"BUILD_REPOSITORY_PROVIDER": "GitHub", "BUILD_REPOSITORY_NAME": "octo/web",
               "BUILD_REPOSITORY_URI": "https://github.com/octo/web"}


class TestAzure:
    def test_branch_build_keeps_full_branch_name(self) -> None:
        """BUILD_SOURCEBRANCH refs/heads/feature/x is feature/x (BUILD_SOURCEBRANCHNAME would say x)."""
        env = {**BASE, **AZURE_REPO, "BUILD_REASON": "IndividualCI", "BUILD_SOURCEBRANCH": "refs/heads/feature/x",
               "BUILD_SOURCEBRANCHNAME": "x"}
        ctx = detect(env)
        assert (ctx.provider, ctx.branch, ctx.commit_sha, ctx.event, ctx.repository) == (
            "azure", "feature/x", "5" * 40, "IndividualCI", "web")
        assert ctx.build_url == "https://dev.azure.com/contoso/Fabrikam%20Web/_build/results?buildId=1234"
        assert ctx.job_url == ctx.build_url + "&view=logs&j=abcd-ef"
        assert (ctx.build_id, ctx.build_number, ctx.job, ctx.run_attempt) == ("1234", "20240101.3", "Run tests", 1)
        assert ctx.scm is None  # Azure Repos is the CI's own code host

    def test_tag_build(self) -> None:
        """refs/tags/... is a tag build."""
        ctx = detect({**BASE, **AZURE_REPO, "BUILD_SOURCEBRANCH": "refs/tags/v9"})
        assert (ctx.tag, ctx.branch) == ("v9", None)

    def test_azure_repos_pr_uses_pull_request_id(self) -> None:
        """For Azure Repos the PR id is the number; head is the source commit."""
        env = {**BASE, **AZURE_REPO, "BUILD_REASON": "PullRequest", "BUILD_SOURCEBRANCH": "refs/pull/17/merge",
               "SYSTEM_PULLREQUEST_PULLREQUESTID": "17", "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/topic/a",
               "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main", "SYSTEM_PULLREQUEST_SOURCECOMMITID": "6" * 40,
               "SYSTEM_PULLREQUEST_ISFORK": "False"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch, ctx.head_sha, ctx.commit_sha, ctx.is_fork) == (
            17, "topic/a", "main", "6" * 40, "5" * 40, False)

    def test_github_pr_uses_number_not_id(self) -> None:
        """For GitHub-hosted repos the PR id is GitHub's internal id: the number is used, scm is GitHub."""
        env = {**BASE, **GITHUB_REPO, "BUILD_REASON": "PullRequest", "BUILD_SOURCEBRANCH": "refs/pull/42/merge",
               "SYSTEM_PULLREQUEST_PULLREQUESTID": "1712345678", "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": "42",
               "SYSTEM_PULLREQUEST_SOURCEBRANCH": "dependabot/pip/x", "SYSTEM_PULLREQUEST_TARGETBRANCH": "main",
               "SYSTEM_PULLREQUEST_SOURCECOMMITID": "7" * 40, "SYSTEM_PULLREQUEST_ISFORK": "True"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.is_fork) == (42, "dependabot/pip/x", True)
        assert ctx.sources["pr_number"].name == "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER"
        assert ctx.scm is not None
        assert (ctx.scm.provider, ctx.scm.repository, ctx.scm.server_url) == ("github", "octo/web", "https://github.com")

    def test_github_pr_with_only_the_id_reports_no_number(self) -> None:
        """A GitHub PR id alone is never mistaken for the PR number; the merge ref gives it instead."""
        env = {**BASE, **GITHUB_REPO, "BUILD_REASON": "PullRequest", "BUILD_SOURCEBRANCH": "refs/pull/42/merge",
               "SYSTEM_PULLREQUEST_PULLREQUESTID": "1712345678"}
        assert detect(env).pr_number == 42

    def test_rerun_attempt(self) -> None:
        """A re-run job reports SYSTEM_JOBATTEMPT."""
        ctx = detect({**BASE, **AZURE_REPO, "BUILD_SOURCEBRANCH": "refs/heads/main", "SYSTEM_JOBATTEMPT": "2"})
        assert ctx.run_attempt == 2
