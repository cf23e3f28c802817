"""TeamCity detection: environment plus the build and configuration properties files."""

from __future__ import annotations

from pathlib import Path

from ci_sidecar.cienv import detect
from ci_sidecar.cienv.teamcity import parse_properties


def write_props(tmp_path: Path, config: str, build_extra: str = "") -> str:
    """Write the two properties files as an agent does (Java escapes in paths) and return the build one."""
    config_file = tmp_path / "config.properties"
    config_file.write_text(config, encoding="latin-1")
    escaped = str(config_file).replace("\\", "\\\\").replace(":", "\\:")
    build_file = tmp_path / "build.properties"
    build_file.write_text(
        "#TeamCity build properties without 'system.' prefix\n"
        f"teamcity.configuration.properties.file={escaped}\n"
        "teamcity.build.id=4711\n"
        "teamcity.buildConfName=Unit tests\n"
        "build.number=99\n" + build_extra,
        encoding="latin-1",
    )
    return str(build_file)


BASE = {"TEAMCITY_VERSION": "2024.03 (build 156364)", "TEAMCITY_PROJECT_NAME": "Widgets",
        "TEAMCITY_BUILDCONF_NAME": "Unit tests", "BUILD_NUMBER": "99", "BUILD_VCS_NUMBER": "c" * 40}


class TestTeamCity:
    def test_branch_build_from_properties(self, tmp_path: Path) -> None:
        """Branch, build id, server URL and repository come from the properties files."""
        props = write_props(tmp_path, "teamcity.build.branch=feature/x\n"
                                      "teamcity.serverUrl=https\\://tc.corp.example\n"
                                      "vcsroot.url=https\\://github.com/octo/widgets.git\n")
        ctx = detect({**BASE, "TEAMCITY_BUILD_PROPERTIES_FILE": props})
        assert (ctx.provider, ctx.branch, ctx.commit_sha, ctx.build_id, ctx.build_number) == (
            "teamcity", "feature/x", "c" * 40, "4711", "99")
        assert ctx.server_url == "https://tc.corp.example"
        assert ctx.build_url == "https://tc.corp.example/viewLog.html?buildId=4711"
        assert ctx.job == "Unit tests"
        assert ctx.sources["branch"].kind == "file"
        assert ctx.scm is not None and (ctx.scm.provider, ctx.scm.repository) == ("github", "octo/widgets")
        assert ctx.repository == "octo/widgets"

    def test_pull_request_feature(self, tmp_path: Path) -> None:
        """With the Pull Requests feature the number and branches come from teamcity.pullRequest.*."""
        props = write_props(tmp_path, "teamcity.build.branch=pull/15\n"
                                      "teamcity.pullRequest.number=15\n"
                                      "teamcity.pullRequest.source.branch=topic\n"
                                      "teamcity.pullRequest.target.branch=main\n")
        ctx = detect({**BASE, "TEAMCITY_BUILD_PROPERTIES_FILE": props})
        assert (ctx.pr_number, ctx.branch, ctx.target_branch) == (15, "topic", "main")

    def test_default_branch_placeholder_is_ignored(self, tmp_path: Path) -> None:
        """"<default>" is not a branch name."""
        props = write_props(tmp_path, "teamcity.build.branch=<default>\n")
        assert detect({**BASE, "TEAMCITY_BUILD_PROPERTIES_FILE": props}).branch is None

    def test_missing_properties_file_is_tolerated(self, tmp_path: Path) -> None:
        """An unreadable properties file leaves only the env-derived fields."""
        ctx = detect({**BASE, "TEAMCITY_BUILD_PROPERTIES_FILE": str(tmp_path / "nope")})
        assert (ctx.provider, ctx.commit_sha, ctx.build_number, ctx.build_id) == ("teamcity", "c" * 40, "99", None)


def test_parse_properties_syntax() -> None:
    """Separators, escapes, comments, unicode escapes and continuation lines follow java.util.Properties."""
    text = (
        "# comment\n! also comment\n"
        "a=1\n"
        "b : 2\n"
        "c 3\n"
        "path=C\\:\\\\agent\\\\temp\n"
        "key\\ with\\ spaces=v\n"
        "uni=caf\\u00e9\n"
        "long=one \\\n    two\n"
        "eq==x\n"
        "empty=\n"
    )
    assert parse_properties(text) == {
        "a": "1", "b": "2", "c": "3", "path": "C:\\agent\\temp", "key with spaces": "v",
        "uni": "café", "long": "one two", "eq": "=x", "empty": "",
    }
