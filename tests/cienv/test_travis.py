"""Travis CI detection from recorded variable sets."""

from __future__ import annotations

from ci_sidecar.cienv import detect

BASE = {
    "CI": "true", "TRAVIS": "true", "CONTINUOUS_INTEGRATION": "true",
    "TRAVIS_REPO_SLUG": "octo/widgets", "TRAVIS_COMMIT": "d" * 40,
    "TRAVIS_BUILD_ID": "123456", "TRAVIS_BUILD_NUMBER": "88", "TRAVIS_JOB_ID": "654321", "TRAVIS_JOB_NUMBER": "88.1",
    "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/octo/widgets/builds/123456",
    "TRAVIS_JOB_WEB_URL": "https://app.travis-ci.com/octo/widgets/jobs/654321",
    "TRAVIS_TAG": "", "TRAVIS_PULL_REQUEST_BRANCH": "", "TRAVIS_PULL_REQUEST_SHA": "", "TRAVIS_PULL_REQUEST_SLUG": "",
}


class TestTravis:
    def test_push_build_with_pull_request_false(self) -> None:
        """TRAVIS_PULL_REQUEST="false" means no PR; TRAVIS_BRANCH is then the built branch."""
        env = {**BASE, "TRAVIS_EVENT_TYPE": "push", "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "false"}
        ctx = detect(env)
        assert (ctx.provider, ctx.pr_number, ctx.branch, ctx.event) == ("travis", None, "main", "push")
        assert (ctx.build_url, ctx.job_url) == (BASE["TRAVIS_BUILD_WEB_URL"], BASE["TRAVIS_JOB_WEB_URL"])
        assert (ctx.build_id, ctx.build_number, ctx.server_url) == ("123456", "88", "https://app.travis-ci.com")

    def test_pull_request_build(self) -> None:
        """On PR builds TRAVIS_BRANCH is the target and the head comes from TRAVIS_PULL_REQUEST_*."""
        env = {**BASE, "TRAVIS_EVENT_TYPE": "pull_request", "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "31",
               "TRAVIS_PULL_REQUEST_BRANCH": "feature", "TRAVIS_PULL_REQUEST_SHA": "e" * 40,
               "TRAVIS_PULL_REQUEST_SLUG": "octo/widgets"}
        ctx = detect(env)
        assert (ctx.pr_number, ctx.branch, ctx.target_branch, ctx.head_sha, ctx.commit_sha, ctx.is_fork) == (
            31, "feature", "main", "e" * 40, "d" * 40, False)

    def test_fork_pull_request(self) -> None:
        """A PR from another slug is a fork PR."""
        env = {**BASE, "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "32", "TRAVIS_PULL_REQUEST_BRANCH": "patch",
               "TRAVIS_PULL_REQUEST_SLUG": "stranger/widgets"}
        assert detect(env).is_fork is True

    def test_tag_build_branch_is_the_tag(self) -> None:
        """On tag builds TRAVIS_BRANCH holds the tag name, so no branch is reported."""
        env = {**BASE, "TRAVIS_BRANCH": "v1.0", "TRAVIS_TAG": "v1.0", "TRAVIS_PULL_REQUEST": "false"}
        ctx = detect(env)
        assert (ctx.tag, ctx.branch) == ("v1.0", None)

    def test_the_code_host_is_named_by_the_web_url(self) -> None:
        """travis-ci.com's build URL names the code host (/github/, /bitbucket/); without one, git decides."""
        env = {**BASE, "TRAVIS_BRANCH": "main", "TRAVIS_PULL_REQUEST": "false",
               "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/github/octo/widgets/builds/123456"}
        scm = detect(env).scm
        assert scm is not None and (scm.provider, scm.repository) == ("github", "octo/widgets")
        env["TRAVIS_BUILD_WEB_URL"] = "https://app.travis-ci.com/bitbucket/octo/widgets/builds/123456"
        assert getattr(detect(env).scm, "provider", None) == "bitbucket"
        env["TRAVIS_BUILD_WEB_URL"] = BASE["TRAVIS_BUILD_WEB_URL"]
        assert detect(env).scm is None
