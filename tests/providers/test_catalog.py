"""The provider catalog is the one place provider facts live: configuration, credentials and the session's
environment filter follow each line."""

from __future__ import annotations

import pytest

from ci_sidecar.config import ConfigError, load_config, scm_hosts
from ci_sidecar.credentials import find_credentials
from ci_sidecar.providers import REGISTRY
from ci_sidecar.providers.catalog import CATALOG, ci_names, code_host_names
from ci_sidecar.protocol.records import CIContext
from ci_sidecar.providers.base import ProviderEnv
from ci_sidecar.providers.github.settings import GitHubSettings
from ci_sidecar.service.session_context import SessionContext, trim_env

CI_LINES = [spec for spec in CATALOG if spec.role == "ci"]


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_every_line_is_configurable_in_its_role(spec, tmp_path) -> None:
    """A CI line is accepted as ``provider`` and gets a ``[providers.<name>]`` table; a code host as ``scm_provider``;
    the object store and the notification channels are neither (they have tables of their own)."""
    session = {"provider": spec.name, "providers": {spec.name: {"base_url": "https://ci.example/api"}}}
    if spec.role in ("store", "notify"):
        with pytest.raises(ConfigError):
            load_config(env={}, cwd=str(tmp_path), session_config=session)
        return
    config = load_config(env={}, cwd=str(tmp_path), session_config=session).config
    assert spec.name == config.provider
    if spec.code_host:
        assert spec.name == scm_hosts(config)["ci.example"]
    if spec.code_host or spec.role == "local":
        scm = load_config(env={}, cwd=str(tmp_path), session_config={"scm_provider": spec.name}).config.scm_provider
        assert spec.name == scm
    else:
        with pytest.raises(ConfigError):
            load_config(env={}, cwd=str(tmp_path), session_config={"scm_provider": spec.name})


@pytest.mark.parametrize("spec", CI_LINES, ids=lambda s: s.name)
def test_standard_token_variables_are_found_and_bound(spec, tmp_path) -> None:
    """Each CI's first standard token variable is found, kept by the session filter, and bound to the CI's own
    URL variable, else its public API (a self-hosted CI without either leaves the token unbound)."""
    cred = spec.credentials
    env = {cred.env[0]: "tok-123"}
    if cred.username_env:
        env[cred.username_env] = "robot"
    if cred.url_env:
        env[cred.url_env[0]] = "https://ci.example/api"
    config = load_config(env={}, cwd=str(tmp_path)).config
    found = find_credentials(spec.name, env, config, None)
    assert [f"env:{cred.env[0]}"] == [c.source for c in found]
    expected = "https://ci.example/api" if cred.url_env else cred.default_url
    assert expected == found[0].base_url
    assert env == trim_env({**env, "UNRELATED": "x"}, config)


def test_registry_and_names_follow_the_catalog() -> None:
    """Implemented lines are the registry; every line but the object store and the notification channels is a
    session's possible CI."""
    assert {s.name: s.impl for s in CATALOG if s.impl} == REGISTRY
    assert tuple(s.name for s in CATALOG if s.role not in ("store", "notify")) == ci_names()
    assert set(code_host_names()) <= set(ci_names())


def test_a_providers_own_knobs_are_configurable_and_reach_its_settings(tmp_path) -> None:
    """``[providers.github] max_annotations`` (a knob GitHub's settings declare) is accepted, typed, merged
    across layers and journaled with the writes; a knob no provider declares names the known ones."""
    (tmp_path / "ci-sidecar.toml").write_text('[providers.github]\nmax_annotations = 5\nbase_url = "https://ghe.example/api/v3"\n')
    loaded = load_config(env={"CI_SIDECAR_GITHUB_WORKSPACE": "/w"}, cwd=str(tmp_path))
    section = loaded.config.providers["github"]
    assert {"max_annotations": 5, "workspace": "/w"} == section.options
    ctx = SessionContext(session_id="s", ci=CIContext(provider="github", sources={}), config=loaded.config,
                         cwd=str(tmp_path), output_root=str(tmp_path), env={"GITHUB_STEP_SUMMARY": "/s.md"})
    settings = GitHubSettings.of(ProviderEnv(ci=ctx.ci, config=ctx.provider_config("github")))
    assert (5, "/w", "/s.md", "https://ghe.example/api/v3") == (
        settings.max_annotations, settings.workspace, settings.step_summary_path, settings.base_url)
    with pytest.raises(ConfigError) as err:
        load_config(env={}, cwd=str(tmp_path), session_config={"providers": {"github": {"max_annotation": 5}}})
    assert "providers.github.max_annotation" == err.value.key and "max_annotations" in err.value.reason
    with pytest.raises(ConfigError) as err:  # what the job tells the provider is never configuration
        load_config(env={}, cwd=str(tmp_path), session_config={"providers": {"github": {"step_summary_path": "/x"}}})
    assert "providers.github.step_summary_path" == err.value.key
