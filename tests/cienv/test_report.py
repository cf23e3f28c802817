"""``ci-sidecar doctor`` / ``ci-sidecar env``: what they show, and that no token value is ever shown."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ci_sidecar.cienv.report import doctor_report, format_doctor
from ci_sidecar.cli import main
from ci_sidecar.credentials import fingerprint
from ci_sidecar.env_cmd import run_doctor, run_env

GH_TOKEN = "ghp_TESTtokenVALUE0123456789abcdefABCD"
GL_TOKEN = "glpat-TESTtokenVALUE-xyz"
HELD = "held-secret-from-systemd-0000"
JENKINS = {"JENKINS_URL": "https://jenkins.corp.example/", "BUILD_ID": "7", "BUILD_NUMBER": "7",
           "GIT_URL": f"https://x-access-token:{GH_TOKEN}@github.com/octo/app.git", "GIT_BRANCH": "origin/main",
           "GIT_COMMIT": "a" * 40}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A Jenkins build of a GitHub repo with tokens in env, in a clone URL and in a credentials directory."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "gitlab-token").write_text(HELD + "\n")
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    return {**JENKINS, "GITHUB_TOKEN": GH_TOKEN, "GITLAB_TOKEN": GL_TOKEN, "CREDENTIALS_DIRECTORY": str(creds),
            "XDG_CONFIG_HOME": str(xdg)}


def secrets_absent(text: str) -> bool:
    return all(s not in text for s in (GH_TOKEN, GL_TOKEN, HELD))


class TestDoctorReport:
    def test_report_contents(self, env: dict[str, str], tmp_path: Path) -> None:
        """Doctor shows the context with sources, ci/scm providers, credentials by fingerprint, config files."""
        work = tmp_path / "work"
        work.mkdir()
        (work / "ci-sidecar.toml").write_text('comment_mode = "create"\n')
        report = doctor_report(env, str(work))
        assert (report["ci_provider"], report["scm_provider"]) == ("jenkins", "github")
        assert report["context"]["sources"]["branch"] == {"kind": "env", "name": "GIT_BRANCH"}
        creds = {(c["provider"], c["source"]): c for c in report["credentials"]}
        assert creds[("github", "env:GITHUB_TOKEN")]["fingerprint"] == fingerprint(GH_TOKEN)
        assert creds[("github", "env:GITHUB_TOKEN")]["role"] == "scm"
        assert ("gitlab", "credentials:gitlab-token") in creds
        assert report["config_files"] == [str(work / "ci-sidecar.toml")]
        assert report["errors"] == []
        assert secrets_absent(json.dumps(report))

    def test_human_text(self, env: dict[str, str], tmp_path: Path) -> None:
        """The text form names providers, sources and fingerprints, and no secret."""
        text = format_doctor(doctor_report(env, str(tmp_path)))
        assert "CI provider:  jenkins" in text and "Code host:    github" in text
        assert fingerprint(GH_TOKEN) in text and "env:GITHUB_TOKEN" in text
        assert "GIT_BRANCH" in text
        assert secrets_absent(text)

    def test_config_error_is_reported_not_raised(self, env: dict[str, str], tmp_path: Path) -> None:
        """An invalid config file shows up under errors; detection still answers."""
        (tmp_path / "ci-sidecar.toml").write_text("idle_timeout_s = 'soon'\n")
        report = doctor_report(env, str(tmp_path))
        assert report["ci_provider"] == "jenkins"
        assert any("idle_timeout_s" in e for e in report["errors"])

    def test_token_pasted_into_a_context_override_is_redacted(self, env: dict[str, str], tmp_path: Path) -> None:
        """Even a token copied into a config value never comes out."""
        (tmp_path / "ci-sidecar.toml").write_text(f'[context]\njob = "{GH_TOKEN}"\n')
        report = doctor_report(env, str(tmp_path))
        assert report["context"]["job"] == "***"
        assert secrets_absent(format_doctor(report))


class TestCli:
    def test_env_prints_context_json(self, env: dict[str, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """`ci-sidecar env` prints the CIContext as JSON, without secrets."""
        assert run_env(argparse.Namespace(config=None), env=env, cwd=str(tmp_path)) == 0
        out = capsys.readouterr().out
        data = json.loads(out)
        assert (data["provider"], data["branch"], data["scm"]["provider"]) == ("jenkins", "main", "github")
        assert secrets_absent(out)

    def test_env_bad_config_exits_2(self, env: dict[str, str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """`ci-sidecar env --config` with an invalid file fails with the file, key and reason on stderr."""
        bad = tmp_path / "bad.toml"
        bad.write_text("provider = 'drone'\n")
        assert run_env(argparse.Namespace(config=str(bad)), env=env, cwd=str(tmp_path)) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert str(bad) in captured.err and "provider" in captured.err

    @pytest.mark.parametrize("as_json", [True, False])
    def test_doctor_output(self, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           as_json: bool) -> None:
        """`ci-sidecar doctor [--json]` prints the report and no secret."""
        assert run_doctor(argparse.Namespace(config=None, json=as_json), env=env, cwd=str(tmp_path)) == 0
        out = capsys.readouterr().out
        if as_json:
            assert json.loads(out)["ci_provider"] == "jenkins"
        else:
            assert "ci-sidecar doctor" in out
        assert secrets_absent(out)


def test_doctor_shows_where_output_socket_and_state_go(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ci-sidecar doctor` names the output dir, the socket and the state dir a daemon started here would use."""
    env = {"CI_SIDECAR_SOCKET": str(tmp_path / "s.sock"), "CI_SIDECAR_STATE_DIR": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    run_doctor(argparse.Namespace(config=None, json=True), env=env, cwd=str(tmp_path))
    assert json.loads(capsys.readouterr().out)["paths"] == {
        "output_dir": str(tmp_path / "ci-sidecar-out"), "socket": str(tmp_path / "s.sock"),
        "state_dir": str(tmp_path / "state")}
    run_doctor(argparse.Namespace(config=None, json=False), env=env, cwd=str(tmp_path))
    text = capsys.readouterr().out
    assert f"output_dir  {tmp_path / 'ci-sidecar-out'}" in text and f"state_dir   {tmp_path / 'state'}" in text


def test_local_repo_doctor(make_repo: Callable[..., tuple[Path, str]], tmp_path: Path) -> None:
    """Outside CI, doctor reports local with git sources and the remote's code host."""
    repo, head = make_repo(remote="https://gitlab.com/grp/app.git")
    report = doctor_report({"XDG_CONFIG_HOME": str(tmp_path)}, str(repo))
    assert (report["ci_provider"], report["scm_provider"]) == ("local", "gitlab")
    assert report["context"]["commit_sha"] == head
    assert report["credentials"] == []


def test_env_and_doctor_run_from_the_command_line(env: dict[str, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``ci-sidecar env`` and ``ci-sidecar doctor --json`` answer through the console entry point."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert 0 == main(["env"])
    assert "jenkins" == json.loads(capsys.readouterr().out)["provider"]
    main(["doctor", "--json"])
    out = capsys.readouterr().out
    assert "jenkins" == json.loads(out)["ci_provider"]
    assert secrets_absent(out)
