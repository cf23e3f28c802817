"""Jenkins detection: core variables, git plugin, multibranch, GHPRB and GitLab plugin variable sets."""

from __future__ import annotations

from ci_sidecar.cienv import detect

from .conftest import git

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


class TestBranchSources:
    """Multibranch PR builds from the GitHub, GitLab and Bitbucket branch sources (CHANGE_* variables)."""

    def test_the_pr_head_of_the_agents_merge_commit_is_its_second_parent(self, make_repo) -> None:  # type: ignore[no-untyped-def]
        """The default "merge with the target" checkout: GIT_COMMIT is a merge the code host never saw; statuses
        belong on the PR head, HEAD^2."""
        repo, _first = make_repo(remote="https://github.com/octo/app.git")
        git(repo, "checkout", "-q", "-b", "feature")
        (repo / "f.txt").write_text("feature\n")
        git(repo, "add", "f.txt")
        git(repo, "commit", "-q", "-m", "feature")
        head = git(repo, "rev-parse", "HEAD")
        git(repo, "checkout", "-q", "main")
        (repo / "m.txt").write_text("main\n")
        git(repo, "add", "m.txt")
        git(repo, "commit", "-q", "-m", "main moved on")
        git(repo, "merge", "-q", "--no-ff", "-m", "Merge commit into main", "feature")
        merge = git(repo, "rev-parse", "HEAD")
        env = {**BASE, "GIT_COMMIT": merge, "BRANCH_NAME": "PR-7", "CHANGE_ID": "7", "CHANGE_BRANCH": "feature",
               "CHANGE_TARGET": "main", "CHANGE_URL": "https://github.com/octo/app/pull/7"}
        ctx = detect(env, str(repo))
        assert (ctx.commit_sha, ctx.head_sha, ctx.pr_number) == (merge, head, 7)
        assert ctx.sources["head_sha"].kind == "git"
        plain = detect({**env, "GIT_COMMIT": head}, str(repo))  # the "head" checkout strategy: nothing to derive
        assert plain.head_sha is None and plain.commit_sha == head

    def test_gitlab_branch_source_merge_request(self) -> None:
        """GitLab branch source: CHANGE_ID is the MR iid, CHANGE_URL names the project (subgroups kept)."""
        env = {**BASE, "GIT_URL": "", "BRANCH_NAME": "MR-8", "CHANGE_ID": "8", "CHANGE_BRANCH": "feat",
               "CHANGE_TARGET": "main", "CHANGE_URL": "https://gitlab.com/grp/sub/svc/-/merge_requests/8"}
        ctx = detect(env)
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.repository) == ("gitlab", "grp/sub/svc")
        assert (ctx.pr_number, ctx.repository) == (8, "grp/sub/svc")

    def test_bitbucket_branch_source_cloud_and_data_center(self) -> None:
        """Bitbucket branch source: Cloud's ``…/pull-requests/9`` and Data Center's ``/projects/P/repos/r/…`` name
        the repository as the clone URL would."""
        cloud = detect({**BASE, "GIT_URL": "", "CHANGE_ID": "9", "CHANGE_URL":
                        "https://bitbucket.org/team/widgets/pull-requests/9"})
        assert cloud.scm is not None and (cloud.scm.provider, cloud.scm.repository) == ("bitbucket", "team/widgets")
        dc = detect({**BASE, "GIT_URL": "https://bitbucket.corp.example/scm/proj/svc.git", "CHANGE_ID": "9",
                     "CHANGE_URL": "https://bitbucket.corp.example/projects/PROJ/repos/svc/pull-requests/9"})
        assert dc.scm is not None
        assert (dc.scm.provider, dc.scm.repository, dc.scm.server_url) == \
            ("bitbucket", "PROJ/svc", "https://bitbucket.corp.example")

    def test_a_fork_pr_keeps_the_base_repository(self) -> None:
        """CHANGE_FORK marks a fork PR; the PR and its statuses still belong to the base repository."""
        ctx = detect({**BASE, "CHANGE_ID": "13", "CHANGE_FORK": "stranger",
                      "CHANGE_URL": "https://github.com/octo/app/pull/13"})
        assert (ctx.is_fork, ctx.repository, ctx.pr_number) == (True, "octo/app", 13)
