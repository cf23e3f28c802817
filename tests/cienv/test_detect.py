"""Provider choice, configured overrides and URL sanitising in ``ci_sidecar.cienv.detect``."""

from __future__ import annotations

import msgspec
import pytest

from ci_sidecar.cienv import choose_provider, detect, strip_userinfo

GITLAB = {"GITLAB_CI": "true", "CI": "true", "CI_PROJECT_PATH": "grp/app", "CI_COMMIT_SHA": "a" * 40,
          "CI_COMMIT_BRANCH": "main", "CI_SERVER_URL": "https://gitlab.com"}


class TestOverrides:
    def test_fields_are_overridden_with_config_source(self) -> None:
        """Configured context values win over detection and say so in sources (strings are coerced)."""
        ctx = detect(GITLAB, overrides={"pr_number": "12", "branch": "release", "is_fork": True})
        assert (ctx.pr_number, ctx.branch, ctx.is_fork, ctx.repository) == (12, "release", True, "grp/app")
        assert ctx.sources["pr_number"].kind == "config" and ctx.sources["pr_number"].name == "context.pr_number"

    def test_none_clears_a_field(self) -> None:
        """An override of None removes a detected value and its source."""
        ctx = detect(GITLAB, overrides={"branch": None})
        assert ctx.branch is None and "branch" not in ctx.sources

    def test_provider_override_picks_the_detector(self) -> None:
        """provider=gitlab reads GitLab variables even without GITLAB_CI."""
        env = {k: v for k, v in GITLAB.items() if k != "GITLAB_CI"}
        ctx = detect(env, overrides={"provider": "gitlab"})
        assert (ctx.provider, ctx.repository) == ("gitlab", "grp/app")
        assert ctx.sources["provider"].kind == "config"

    def test_scm_provider_override(self) -> None:
        """scm_provider names a code host different from the CI."""
        ctx = detect({"JENKINS_URL": "https://j/", "BUILD_ID": "1"}, overrides={"scm_provider": "gitlab"})
        assert ctx.scm is not None and ctx.scm.provider == "gitlab"
        assert ctx.sources["scm"].kind == "config"

    @pytest.mark.parametrize("overrides", [{"nope": 1}, {"provider": "drone"}, {"pr_number": "twelve"}])
    def test_invalid_overrides_raise(self, overrides: dict[str, object]) -> None:
        """Unknown fields, unknown providers and wrong types are refused with ValueError."""
        with pytest.raises(ValueError):
            detect(GITLAB, overrides=overrides)


class TestChoice:
    @pytest.mark.parametrize(("env", "provider", "marker"), [
        ({"GITHUB_ACTIONS": "true"}, "github", "GITHUB_ACTIONS"),
        ({"GITLAB_CI": "true"}, "gitlab", "GITLAB_CI"),
        ({"JENKINS_URL": "https://j/", "BUILD_ID": "3"}, "jenkins", "JENKINS_URL"),
        ({"TF_BUILD": "True"}, "azure", "TF_BUILD"),
        ({"BUILD_BUILDURI": "vstfs:///Build/Build/1"}, "azure", "BUILD_BUILDURI"),
        ({"CIRCLECI": "true"}, "circleci", "CIRCLECI"),
        ({"TEAMCITY_VERSION": "2024.1"}, "teamcity", "TEAMCITY_VERSION"),
        ({"TRAVIS": "true"}, "travis", "TRAVIS"),
        ({"BITBUCKET_BUILD_NUMBER": "4"}, "bitbucket", "BITBUCKET_BUILD_NUMBER"),
        ({"BITBUCKET_COMMIT": "abc"}, "bitbucket", "BITBUCKET_COMMIT"),
        ({"CI": "true"}, "local", "CI"),
        ({"CI": "false", "TRAVIS": "true"}, "local", "CI"),
        ({}, "local", "no CI variables"),
    ])
    def test_markers(self, env: dict[str, str], provider: str, marker: str) -> None:
        """Each CI is recognised by its own marker variable, and the source names it."""
        name, source = choose_provider(env)
        assert (name, source.name) == (provider, marker)

    def test_wire_encoding_always_has_provider_and_sources(self) -> None:
        """The encoded context carries provider and sources even for local."""
        data = msgspec.json.decode(msgspec.json.encode(detect({})))
        assert data["provider"] == "local" and "provider" in data["sources"]


@pytest.mark.parametrize(("url", "expected"), [
    ("https://user:tok@host.example/x", "https://host.example/x"),
    ("https://host.example/a@b", "https://host.example/a@b"),
    ("https://host.example/", "https://host.example/"),
])
def test_strip_userinfo(url: str, expected: str) -> None:
    """Only the user-info part of a URL is removed."""
    assert strip_userinfo(url) == expected
