"""Configuration: precedence of every source, error messages naming file/key/reason, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_sidecar import config as config_mod
from ci_sidecar.config import (
    Config,
    ConfigError,
    context_overrides,
    load_config,
    scm_hosts,
    user_config_file,
)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """System file, user config dir (via XDG_CONFIG_HOME), working tree and an explicit --config file."""
    system = tmp_path / "etc" / "ci-sidecar.toml"
    system.parent.mkdir()
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG_PATH", str(system))
    xdg = tmp_path / "xdg"
    (xdg / "ci-sidecar").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    return {"system": system, "xdg": xdg, "user": xdg / "ci-sidecar" / "ci-sidecar.toml", "work": work,
            "pyproject": work / "pyproject.toml", "local": work / "ci-sidecar.toml", "explicit": tmp_path / "x.toml"}


def write_all(layout: dict[str, Path]) -> None:
    """Every file sets comment_mode (to tell who wins) plus one key of its own."""
    layout["system"].write_text('comment_mode = "off"\nabandon_timeout_s = 100\noutput_dir = "/srv/out"\n')
    layout["user"].write_text('comment_mode = "create"\nidle_timeout_s = 30\n')
    layout["pyproject"].write_text('[project]\nname = "x"\n[tool.ci-sidecar]\ncomment-mode = "replace"\nmax-body-bytes = 1024\n')
    layout["local"].write_text('comment_mode = "upsert"\nscm_provider = "gitlab"\n[providers.github]\nbase_url = "https://ghe.local/api/v3"\n')
    layout["explicit"].write_text('comment_mode = "create"\nprovider = "jenkins"\n[providers.github]\ntoken_env = "MY_GH"\n')


class TestPrecedence:
    def test_all_files_in_order(self, layout: dict[str, Path]) -> None:
        """system < user < pyproject < ci-sidecar.toml < --config; each file's own keys survive."""
        write_all(layout)
        loaded = load_config(env={"XDG_CONFIG_HOME": str(layout["xdg"])}, cwd=str(layout["work"]),
                             config_path=str(layout["explicit"]), system_mode=True)
        c = loaded.config
        assert loaded.files == [str(layout[k]) for k in ("system", "user", "pyproject", "local", "explicit")]
        assert c.comment_mode == "create"  # --config wins
        assert (c.abandon_timeout_s, c.output_dir, c.idle_timeout_s, c.max_body_bytes) == (100, "/srv/out", 30, 1024)
        assert (c.scm_provider, c.provider, c.system_mode) == ("gitlab", "jenkins", True)
        # provider sections merge key by key across files
        assert (c.providers["github"].base_url, c.providers["github"].token_env) == ("https://ghe.local/api/v3", "MY_GH")
        assert loaded.origins["comment_mode"] == str(layout["explicit"])

    def test_system_file_only_in_system_mode(self, layout: dict[str, Path]) -> None:
        """/etc is not read by a user daemon."""
        write_all(layout)
        loaded = load_config(env={"XDG_CONFIG_HOME": str(layout["xdg"])}, cwd=str(layout["work"]))
        assert str(layout["system"]) not in loaded.files
        assert loaded.config.abandon_timeout_s == 21600 and loaded.config.system_mode is False

    def test_env_beats_files_and_session_beats_env(self, layout: dict[str, Path]) -> None:
        """CI_SIDECAR_* overrides every file; initialize.config overrides the environment."""
        write_all(layout)
        env = {"XDG_CONFIG_HOME": str(layout["xdg"]), "CI_SIDECAR_COMMENT_MODE": "off",
               "CI_SIDECAR_PROVIDER": "gitlab", "CI_SIDECAR_IDLE_TIMEOUT_S": "2.5",
               "CI_SIDECAR_OUTPUT_DIR": "rel/out", "CI_SIDECAR_GITHUB_BASE_URL": "https://ghe.env/api/v3",
               "CI_SIDECAR_CONTEXT_PR_NUMBER": "12", "CI_SIDECAR_SOURCE_ROOTS": "/a:/b"}
        c = load_config(env=env, cwd=str(layout["work"]), config_path=str(layout["explicit"])).config
        assert (c.comment_mode, c.provider, c.idle_timeout_s) == ("off", "gitlab", 2.5)
        assert c.output_dir == str(layout["work"] / "rel" / "out")
        assert c.providers["github"].base_url == "https://ghe.env/api/v3"
        assert c.providers["github"].token_env == "MY_GH"
        assert (c.context, c.source_roots) == ({"pr_number": 12}, ["/a", "/b"])
        c2 = load_config(env=env, cwd=str(layout["work"]),
                         session_config={"comment_mode": "replace", "context": {"branch": "x"}}).config
        assert c2.comment_mode == "replace"
        assert c2.context == {"pr_number": 12, "branch": "x"}

    def test_defaults_without_any_source(self, tmp_path: Path) -> None:
        """Nothing configured gives the documented defaults."""
        loaded = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=str(tmp_path))
        assert loaded.config == Config()
        assert (loaded.config.max_body_bytes, loaded.config.max_header_bytes) == (16 * 1024 * 1024, 8 * 1024)
        assert (loaded.config.idle_timeout_s, loaded.config.abandon_timeout_s) == (0.0, 21600.0)
        assert loaded.files == []

    def test_pyproject_without_our_table_is_not_read(self, layout: dict[str, Path]) -> None:
        """A pyproject.toml without [tool.ci-sidecar] is not listed as a config file."""
        layout["pyproject"].write_text('[project]\nname = "x"\n')
        loaded = load_config(env={"XDG_CONFIG_HOME": str(layout["xdg"])}, cwd=str(layout["work"]))
        assert loaded.files == []

    def test_relative_paths_are_relative_to_their_file(self, layout: dict[str, Path]) -> None:
        """output_dir in a file is resolved against that file's directory."""
        layout["user"].write_text('output_dir = "out"\nsource_roots = ["src", "/abs"]\n')
        c = load_config(env={"XDG_CONFIG_HOME": str(layout["xdg"])}, cwd=str(layout["work"])).config
        assert c.output_dir == str(layout["user"].parent / "out")
        assert c.source_roots == [str(layout["user"].parent / "src"), "/abs"]

    def test_standard_proxy_variables_are_defaults(self, layout: dict[str, Path]) -> None:
        """HTTPS_PROXY/NO_PROXY/SSL_CERT_FILE apply unless configuration says otherwise."""
        env = {"XDG_CONFIG_HOME": str(layout["xdg"]), "HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost",
               "SSL_CERT_FILE": "/etc/ssl/corp.pem"}
        c = load_config(env=env, cwd=str(layout["work"])).config
        assert (c.proxy, c.no_proxy, c.ca_bundle) == ("http://proxy:3128", "localhost", "/etc/ssl/corp.pem")
        layout["local"].write_text('proxy = "http://other:8080"\n')
        assert load_config(env=env, cwd=str(layout["work"])).config.proxy == "http://other:8080"


class TestErrors:
    @pytest.mark.parametrize(("content", "key", "reason"), [
        ("idle_timeout_s = 'soon'\n", "idle_timeout_s", "Expected `float`"),
        ("idle_timeout_s = -1\n", "idle_timeout_s", ">= 0"),
        ("colour = 'blue'\n", "colour", "unknown key"),
        ("comment_mode = 'shout'\n", "comment_mode", "Invalid enum value"),
        ("[providers.gh]\nbase_url = 'x'\n", "providers.gh", "unknown provider"),
        ("[providers.github]\nbase-url = 1\n", "providers.github.base_url", "Expected `str | null`"),
        ("[providers.github]\ntoken = 'x'\n", "providers.github.token", "unknown key"),
        ("[context]\npr_number = 'seven'\n", "context.pr_number", "Expected `int | null`"),
        ("[context]\nbogus = 1\n", "context.bogus", "not a CI context field"),
    ])
    def test_invalid_file_names_file_key_reason(self, tmp_path: Path, content: str, key: str, reason: str) -> None:
        """The error names the file, the key and why the value is wrong."""
        path = tmp_path / "ci-sidecar.toml"
        path.write_text(content)
        with pytest.raises(ConfigError) as info:
            load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "none")}, cwd=str(tmp_path))
        err = info.value
        assert (err.file, err.key) == (str(path), key)
        assert reason in err.reason
        assert str(path) in str(err) and key in str(err)

    def test_not_toml(self, tmp_path: Path) -> None:
        """A TOML syntax error names the file and the line."""
        path = tmp_path / "ci-sidecar.toml"
        path.write_text("output_dir = \n")
        with pytest.raises(ConfigError, match="not valid TOML.*line 1") as info:
            load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=str(tmp_path))
        assert info.value.file == str(path)

    def test_missing_explicit_config(self, tmp_path: Path) -> None:
        """--config PATH must exist."""
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=str(tmp_path), config_path=str(tmp_path / "no.toml"))

    def test_env_error_names_the_variable(self, tmp_path: Path) -> None:
        """An invalid CI_SIDECAR_* value names the variable."""
        with pytest.raises(ConfigError) as info:
            load_config(env={"CI_SIDECAR_MAX_BODY_BYTES": "lots", "XDG_CONFIG_HOME": str(tmp_path)}, cwd=str(tmp_path))
        assert (info.value.file, info.value.key) == ("environment", "CI_SIDECAR_MAX_BODY_BYTES")

    @pytest.mark.parametrize("key", ["proxy", "ca_bundle", "source_roots", "state_dir", "system_mode"])
    def test_session_cannot_change_daemon_settings(self, tmp_path: Path, key: str) -> None:
        """initialize.config cannot redirect traffic, trust another CA or widen source roots."""
        value: object = ["/"] if key == "source_roots" else (True if key == "system_mode" else "http://evil:1")
        with pytest.raises(ConfigError) as info:
            load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=str(tmp_path), session_config={key: value})
        assert (info.value.file, info.value.key) == ("initialize.config", key)


class TestHelpers:
    def test_context_overrides(self) -> None:
        """provider/scm_provider join the context table as detect() overrides."""
        c = Config(provider="jenkins", scm_provider="github", context={"pr_number": 3})
        assert context_overrides(c) == {"pr_number": 3, "provider": "jenkins", "scm_provider": "github"}

    def test_scm_hosts_from_base_urls(self) -> None:
        """Configured API base URLs make their hosts known code hosts."""
        c = load_config(env={"CI_SIDECAR_GITHUB_BASE_URL": "https://api.code.corp.example",
                             "CI_SIDECAR_GITLAB_BASE_URL": "https://src.corp.example/api/v4",
                             "XDG_CONFIG_HOME": "/nonexistent"}, cwd="/nonexistent").config
        assert scm_hosts(c) == {"api.code.corp.example": "github", "code.corp.example": "github",
                                "src.corp.example": "gitlab"}

    def test_user_config_file_follows_xdg(self, tmp_path: Path) -> None:
        """The user config file lives under $XDG_CONFIG_HOME/ci-sidecar."""
        assert user_config_file({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "ci-sidecar" / "ci-sidecar.toml"


def test_serve_flags_are_the_top_layer_of_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` flags win over the environment and files; what a file says about the daemon (frame limits,
    idle timeout, state dir) is used when no flag says otherwise."""
    from ci_sidecar.cli import build_parser
    from ci_sidecar.daemon_main import config_from_args

    (tmp_path / "ci-sidecar.toml").write_text('max_body_bytes = 4096\nidle_timeout_s = 9\nstate_dir = "st"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CI_SIDECAR_STATE_DIR", raising=False)
    monkeypatch.setenv("CI_SIDECAR_IDLE_TIMEOUT_S", "7")
    loaded = config_from_args(build_parser().parse_args(["serve", "--idle-timeout", "3"]))
    config = loaded.config
    assert (3.0, 4096, str(tmp_path / "st")) == (config.idle_timeout_s, config.max_body_bytes, config.state_dir)
    assert "command line" == loaded.origins["idle_timeout_s"]
    with pytest.raises(ConfigError) as err:
        config_from_args(build_parser().parse_args(["serve", "--idle-timeout", "-1"]))
    assert ("command line", "idle_timeout_s") == (err.value.file, err.value.key)
