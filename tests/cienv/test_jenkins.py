"""Jenkins detection: core variables, git plugin, multibranch, GHPRB and GitLab plugin variable sets."""

from __future__ import annotations

from ci_sidecar.cienv import detect

BASE = {
    "JENKINS_URL": "https://jenkins.corp.example/",
    "JENKINS_HOME": "/var/jenkins_home",
    "BUILD_ID": "57",
    "BUILD_NUMBER": "57",
    "BUILD_TAG": "jenkins-app-main-57",
    "JOB_NAME": "app/main",
    "BUILD_URL": "https://jenkins.corp.example/job/app/job/main/57/",
    "JOB_URL": "https://jenkins.corp.example/job/app/job/main/",
    "GIT_COMMIT": "f" * 40,
    "GIT_URL": "https://github.com/octo/app.git",
}


class TestJenkins:
    def test_freestyle_branch_strips_remote_prefix(self) -> None:
        """The git plugin's GIT_BRANCH=origin/feature/x is the branch feature/x."""
        env = {**BASE, "GIT_BRANCH": "origin/feature/x"}
        ctx = detect(env)
        assert (ctx.provider, ctx.branch, ctx.commit_sha, ctx.build_number) == ("jenkins", "feature/x", "f" * 40, "57")
        assert (ctx.build_url, ctx.job_url, ctx.job) == (BASE["BUILD_URL"], BASE["JOB_URL"], "app/main")

    def test_scm_differs_from_ci(self) -> None:
        """Jenkins building a GitHub repository: ci jenkins, scm github, repository from GIT_URL."""
        ctx = detect({**BASE, "BRANCH_NAME": "main"})
        assert ctx.scm is not None
        assert (ctx.scm.provider, ctx.scm.repository, ctx.scm.server_url) == ("github", "octo/app", "https://github.com")
        assert ctx.repository == "octo/app" and ctx.sources["repository"].name == "GIT_URL"

    def test_multibranch_pr_uses_change_vars_not_branch_name(self) -> None:
        """Multibranch PR builds: CHANGE_ID is the PR, CHANGE_BRANCH the source (BRANCH_NAME is PR-12)."""
        env = {**BASE, "BRANCH_NAME": "PR-12", "CHANGE_ID": "12", "CHANGE_BRANCH": "feature/y", "CHANGE_TARGET": "main",
               "CHANGE_URL": "https://github.com/octo/app/pull/12"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch, ctx.is_fork) == (12, "feature/y", "main", False)

    def test_multibranch_fork_pr(self) -> None:
        """CHANGE_FORK names the fork owner on fork PRs."""
        env = {**BASE, "BRANCH_NAME": "PR-13", "CHANGE_ID": "13", "CHANGE_BRANCH": "patch", "CHANGE_FORK": "stranger"}
        assert detect(env).is_fork is True

    def test_multibranch_tag(self) -> None:
        """TAG_NAME marks a tag build; BRANCH_NAME (the tag) is not reported as a branch."""
        ctx = detect({**BASE, "BRANCH_NAME": "v3.1", "TAG_NAME": "v3.1"})
        assert (ctx.tag, ctx.branch) == ("v3.1", None)

    def test_ghprb(self) -> None:
        """GHPRB: number, source/target branches, head commit and GitHub Enterprise host from its variables."""
        env = {**BASE, "GIT_URL": "", "GIT_COMMIT": "1" * 40, "ghprbPullId": "44", "ghprbSourceBranch": "topic",
               "ghprbTargetBranch": "develop", "ghprbActualCommit": "2" * 40, "ghprbGhRepository": "team/svc",
               "ghprbPullLink": "https://ghe.corp.example/team/svc/pull/44"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch) == (44, "topic", "develop")
        assert (ctx.commit_sha, ctx.head_sha, ctx.repository) == ("1" * 40, "2" * 40, "team/svc")
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.server_url) == ("github", "https://ghe.corp.example")

    def test_gitlab_plugin_uses_iid(self) -> None:
        """GitLab plugin: gitlabMergeRequestIid (not the global Id) and the self-managed GitLab host."""
        env = {**BASE, "GIT_URL": "", "gitlabActionType": "MERGE", "gitlabMergeRequestId": "99001",
               "gitlabMergeRequestIid": "8", "gitlabSourceBranch": "feat", "gitlabTargetBranch": "main",
               "gitlabMergeRequestLastCommit": "4" * 40,
               "gitlabSourceRepoHttpUrl": "https://code.corp.example/grp/svc.git",
               "gitlabTargetRepoHttpUrl": "https://code.corp.example/grp/svc.git"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch, ctx.head_sha, ctx.event) == (
            8, "feat", "main", "4" * 40, "MERGE")
        assert ctx.is_fork is False
        assert ctx.scm is not None
        assert (ctx.scm.provider, ctx.scm.repository, ctx.scm.server_url) == ("gitlab", "grp/svc", "https://code.corp.example")

    def test_jenkins_url_alone_is_not_jenkins(self) -> None:
        """JENKINS_URL without BUILD_ID (e.g. a variable in another CI) does not select Jenkins."""
        assert detect({"JENKINS_URL": "https://jenkins.corp.example/"}).provider == "local"

    def test_credentials_in_urls_are_dropped(self) -> None:
        """Tokens embedded in JENKINS_URL/BUILD_URL/GIT_URL never reach the context."""
        env = {**BASE, "JENKINS_URL": "https://bot:s3cr3tT0ken@jenkins.corp.example/",
               "BUILD_URL": "https://bot:s3cr3tT0ken@jenkins.corp.example/job/app/57/",
               "GIT_URL": "https://x-access-token:ghs_s3cr3tT0ken@github.com/octo/app.git"}
        ctx = detect(env)
        assert "s3cr3tT0ken" not in repr(ctx)
        assert ctx.server_url == "https://jenkins.corp.example/"
        assert ctx.scm is not None and ctx.scm.repository == "octo/app"


class TestNested:
    def test_jenkins_agent_inside_azure_is_jenkins(self) -> None:
        """A Jenkins build on an agent started by an Azure job resolves to Jenkins, with Jenkins' values."""
        env = {**BASE, "TF_BUILD": "True", "BUILD_BUILDID": "300", "BUILD_SOURCEBRANCH": "refs/heads/azure-branch",
               "BUILD_SOURCEVERSION": "9" * 40, "GIT_BRANCH": "origin/main"}
        ctx = detect(env)
        assert (ctx.provider, ctx.build_id, ctx.branch, ctx.commit_sha) == ("jenkins", "57", "main", "f" * 40)

    def test_teamcity_agent_inside_github_is_teamcity(self) -> None:
        """TeamCity variables win over an enclosing GitHub Actions job's."""
        env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "1" * 40, "CI": "true",
               "TEAMCITY_VERSION": "2024.03", "BUILD_NUMBER": "12", "BUILD_VCS_NUMBER": "2" * 40}
        ctx = detect(env)
        assert (ctx.provider, ctx.commit_sha, ctx.build_number) == ("teamcity", "2" * 40, "12")
