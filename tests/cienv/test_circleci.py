"""CircleCI detection from recorded variable sets."""

from __future__ import annotations

import pytest

from ci_sidecar.cienv import detect
from ci_sidecar.cienv.circleci import pr_number_from_url

BASE = {
    "CI": "true", "CIRCLECI": "true",
    "CIRCLE_PROJECT_USERNAME": "octo", "CIRCLE_PROJECT_REPONAME": "widgets",
    "CIRCLE_REPOSITORY_URL": "git@github.com:octo/widgets.git",
    "CIRCLE_SHA1": "8" * 40, "CIRCLE_BUILD_NUM": "321", "CIRCLE_JOB": "test",
    "CIRCLE_WORKFLOW_ID": "6f0d-wf", "CIRCLE_BUILD_URL": "https://circleci.com/gh/octo/widgets/321",
}


class TestCircleCI:
    def test_branch_build(self) -> None:
        """A branch build: repository from the project variables, scm from the repository URL."""
        ctx = detect({**BASE, "CIRCLE_BRANCH": "main"})
        assert (ctx.provider, ctx.repository, ctx.branch, ctx.commit_sha, ctx.pr_number) == (
            "circleci", "octo/widgets", "main", "8" * 40, None)
        assert (ctx.build_number, ctx.build_id, ctx.job, ctx.build_url) == ("321", "6f0d-wf", "test", BASE["CIRCLE_BUILD_URL"])
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.repository) == ("github", "octo/widgets")

    def test_tag_build(self) -> None:
        """CIRCLE_TAG marks a tag build."""
        ctx = detect({**BASE, "CIRCLE_TAG": "v5"})
        assert (ctx.tag, ctx.branch) == ("v5", None)

    def test_same_repo_pr_number_parsed_from_url(self) -> None:
        """Without CIRCLE_PR_NUMBER (forks only) the number is parsed from CIRCLE_PULL_REQUEST."""
        ctx = detect({**BASE, "CIRCLE_BRANCH": "feature", "CIRCLE_PULL_REQUEST": "https://github.com/octo/widgets/pull/77"})
        assert (ctx.pr_number, ctx.is_fork, ctx.branch) == (77, False, "feature")
        assert ctx.sources["pr_number"].name == "CIRCLE_PULL_REQUEST"

    def test_fork_pr(self) -> None:
        """CIRCLE_PR_NUMBER is only exported for fork PRs."""
        env = {**BASE, "CIRCLE_BRANCH": "pull/78", "CIRCLE_PR_NUMBER": "78", "CIRCLE_PR_USERNAME": "stranger",
               "CIRCLE_PR_REPONAME": "widgets", "CIRCLE_PULL_REQUEST": "https://github.com/octo/widgets/pull/78"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.is_fork) == (78, True)

    def test_pull_requests_list(self) -> None:
        """CIRCLE_PULL_REQUESTS (comma-separated) is used when CIRCLE_PULL_REQUEST is absent."""
        env = {**BASE, "CIRCLE_PULL_REQUESTS": "https://github.com/octo/widgets/pull/5,https://github.com/octo/widgets/pull/6"}
        assert detect(env).pr_number == 5

    def test_bitbucket_hosted(self) -> None:
        """A Bitbucket project: scm bitbucket, PR number from .../pull-requests/N."""
        env = {**BASE, "CIRCLE_REPOSITORY_URL": "git@bitbucket.org:team/widgets.git",
               "CIRCLE_PULL_REQUEST": "https://bitbucket.org/team/widgets/pull-requests/9"}
        ctx = detect(env)
        assert ctx.pr_number == 9
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.repository) == ("bitbucket", "team/widgets")


@pytest.mark.parametrize(("url", "number"), [
    ("https://github.com/o/r/pull/123", 123),
    ("https://github.com/o/r/pull/123/", 123),
    ("https://bitbucket.org/o/r/pull-requests/4", 4),
    ("https://github.com/o/r/tree/pull/x", None),
    ("", None),
])
def test_pr_number_from_url(url: str, number: int | None) -> None:
    """PR numbers are taken only from PR URLs."""
    assert pr_number_from_url(url) == number
