"""Credentials: lookup order, systemd credentials, base-URL binding, fingerprints and redaction."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import msgspec
import pytest

from ci_sidecar.config import Config, ProviderConfig
from ci_sidecar.credentials import Secret, find_credentials, fingerprint, redact

TOKEN = "ghp_0123456789abcdefTESTTOKEN"


class TestSecret:
    def test_repr_and_str_are_redacted(self) -> None:
        """Neither repr, str, f-strings nor the Credential's repr show the secret."""
        s = Secret(TOKEN)
        assert repr(s) == "Secret('***')" and str(s) == "Secret('***')" and TOKEN not in f"{s}"
        cred = find_credentials("github", {"GITHUB_TOKEN": TOKEN}, Config(), None)[0]
        assert TOKEN not in repr(cred) and TOKEN not in repr([cred])
        assert cred.secret.reveal() == TOKEN

    def test_cannot_be_serialised(self) -> None:
        """A Credential cannot be JSON-encoded or pickled (so it is never written anywhere by accident)."""
        cred = find_credentials("github", {"GITHUB_TOKEN": TOKEN}, Config(), None)[0]
        with pytest.raises(TypeError):
            msgspec.json.encode(cred)
        with pytest.raises(TypeError):
            pickle.dumps(cred.secret)
        ref = msgspec.json.encode(cred.ref())
        assert TOKEN.encode() not in ref and cred.fingerprint.encode() in ref

    def test_fingerprint(self) -> None:
        """The fingerprint is the first 12 hex digits of the SHA-256."""
        assert fingerprint(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()[:12]


class TestLookup:
    @pytest.mark.parametrize(("provider", "env", "source"), [
        ("github", {"GITHUB_TOKEN": "a"}, "env:GITHUB_TOKEN"),
        ("github", {"GH_TOKEN": "a"}, "env:GH_TOKEN"),
        ("gitlab", {"GITLAB_TOKEN": "a"}, "env:GITLAB_TOKEN"),
        ("gitlab", {"CI_JOB_TOKEN": "a"}, "env:CI_JOB_TOKEN"),
        ("azure", {"AZURE_DEVOPS_TOKEN": "a"}, "env:AZURE_DEVOPS_TOKEN"),
        ("azure", {"SYSTEM_ACCESSTOKEN": "a"}, "env:SYSTEM_ACCESSTOKEN"),
        ("bitbucket", {"BITBUCKET_TOKEN": "a"}, "env:BITBUCKET_TOKEN"),
        ("circleci", {"CIRCLE_TOKEN": "a"}, "env:CIRCLE_TOKEN"),
        ("teamcity", {"TEAMCITY_TOKEN": "a"}, "env:TEAMCITY_TOKEN"),
        ("travis", {"TRAVIS_TOKEN": "a"}, "env:TRAVIS_TOKEN"),
    ])
    def test_standard_names(self, provider: str, env: dict[str, str], source: str) -> None:
        """Each provider's standard variable is found."""
        assert [c.source for c in find_credentials(provider, env, Config(), None)] == [source]

    def test_order_and_dedup(self) -> None:
        """token_env first, then standard names; the same secret twice is listed once."""
        config = Config(providers={"github": ProviderConfig(token_env="MY_GH")})
        env = {"MY_GH": "one", "GITHUB_TOKEN": "two", "GH_TOKEN": "two"}
        assert [c.source for c in find_credentials("github", env, config, None)] == ["env:MY_GH", "env:GITHUB_TOKEN"]

    def test_jenkins_needs_user_and_token(self) -> None:
        """Jenkins tokens are only usable with JENKINS_USER."""
        assert find_credentials("jenkins", {"JENKINS_TOKEN": "t", "JENKINS_URL": "https://j/"}, Config(), None) == []
        (cred,) = find_credentials("jenkins", {"JENKINS_TOKEN": "t", "JENKINS_USER": "bot", "JENKINS_URL": "https://j/"},
                                   Config(), None)
        assert (cred.username, cred.base_url) == ("bot", "https://j/")

    def test_systemd_credentials_directory(self, tmp_path: Path) -> None:
        """$CREDENTIALS_DIRECTORY/<provider>-token (or the configured name) is read, trailing newline stripped."""
        (tmp_path / "github-token").write_text("held\n")
        (tmp_path / "corp-gh").write_text("named")
        creds = find_credentials("github", {}, Config(), str(tmp_path))
        assert [(c.source, c.secret.reveal()) for c in creds] == [("credentials:github-token", "held")]
        config = Config(providers={"github": ProviderConfig(credential="corp-gh")})
        assert [c.source for c in find_credentials("github", {}, config, str(tmp_path))] == [
            "credentials:corp-gh", "credentials:github-token"]

    def test_credential_names_cannot_escape_the_directory(self, tmp_path: Path) -> None:
        """A configured credential name with a path separator is ignored."""
        (tmp_path / "secret").write_text("x")
        sub = tmp_path / "creds"
        sub.mkdir()
        config = Config(providers={"github": ProviderConfig(credential="../secret")})
        assert find_credentials("github", {}, config, str(sub)) == []


class TestBinding:
    def test_default_and_ci_urls(self) -> None:
        """Env tokens bind to the configured URL, else the CI's exported API URL, else the public API."""
        assert find_credentials("github", {"GITHUB_TOKEN": "a"}, Config(), None)[0].base_url == "https://api.github.com"
        env = {"GITHUB_TOKEN": "a", "GITHUB_API_URL": "https://ghe.corp.example/api/v3"}
        assert find_credentials("github", env, Config(), None)[0].base_url == "https://ghe.corp.example/api/v3"
        config = Config(providers={"github": ProviderConfig(base_url="https://cfg.example/api/v3")})
        assert find_credentials("github", env, config, None)[0].base_url == "https://cfg.example/api/v3"
        assert find_credentials("teamcity", {"TEAMCITY_TOKEN": "a"}, Config(), None)[0].base_url is None

    def test_held_credentials_ignore_session_urls(self, tmp_path: Path) -> None:
        """A daemon-held token stays bound to the daemon's URL whatever the session's env or config say."""
        (tmp_path / "github-token").write_text("held")
        session_env = {"GITHUB_API_URL": "https://attacker.example/api/v3"}
        session_cfg = Config(providers={"github": ProviderConfig(base_url="https://attacker.example", credential="x")})
        daemon_cfg = Config(providers={"github": ProviderConfig(base_url="https://ghe.corp.example/api/v3")})
        (cred,) = find_credentials("github", session_env, session_cfg, str(tmp_path), daemon_config=daemon_cfg)
        assert (cred.source, cred.base_url) == ("credentials:github-token", "https://ghe.corp.example/api/v3")
        (cred,) = find_credentials("github", session_env, Config(), str(tmp_path))
        assert cred.base_url == "https://api.github.com"


class TestRedact:
    def test_redacts_plain_encoded_and_overlapping(self) -> None:
        """Every occurrence, the URL-encoded form and the longer of two overlapping secrets are replaced."""
        text = "a=tok/en+1 b=tok%2Fen%2B1 c=tok/en+1-longer"
        assert redact(text, ["tok/en+1", Secret("tok/en+1-longer")]) == "a=*** b=*** c=***"

    def test_empty_secret_is_ignored(self) -> None:
        """An empty secret does not wreck the text."""
        assert redact("hello", [""]) == "hello"


def test_doctor_reports_capability_tiers_without_the_token(capsys) -> None:
    import argparse

    from ci_sidecar.env_cmd import run_doctor

    token = "ghs_" + "t" * 36
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": "a" * 40, "GITHUB_TOKEN": token}
    assert run_doctor(argparse.Namespace(config=None, json=True), env=env, cwd="/") == 0
    out = capsys.readouterr().out
    assert token not in out
    import json

    caps = json.loads(out)["capabilities"]
    assert caps["ci"]["provider"] == "github" and caps["ci"]["test_run"]["kind"] == "native"
    assert caps["ci"]["artifacts"]["kind"] == "none"  # said plainly, not pretended
