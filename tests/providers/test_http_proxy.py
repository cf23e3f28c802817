"""The daemon's ``proxy``/``no_proxy`` settings (from its configuration, else HTTPS_PROXY/NO_PROXY) carry every
provider request through the proxy, except to the hosts ``no_proxy`` names; ``trust_env = false`` connects
directly. Checked through a counting proxy on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.config import load_config
from ci_sidecar.providers._http import HttpConfig, HttpLayer
from ci_sidecar.providers.settings import session_settings
from fakes.github import FakeGitHub
from fakes.proxy import CountingProxy
from fakes.spec import OpenApiSpec
from helpers import DaemonProcess

TOKEN = "ghs_proxyTestT0kenNeverShown"
SHA = "c3" * 20


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    with CountingProxy() as p:
        yield p


@pytest.fixture
def fake(gh_spec: OpenApiSpec) -> Iterator[FakeGitHub]:
    with FakeGitHub(gh_spec, tokens={TOKEN: "app"}) as gh:
        yield gh
    assert len(gh.violations) == gh.expected_violations, gh.violations


async def _get(settings: dict[str, Any], url: str) -> int:
    layer = HttpLayer("test", pacing=())
    try:
        api = layer.session(HttpConfig.from_env_config(url, settings), TOKEN, None)
        return (await api.request("GET", f"/repos/octo/repo/commits/{SHA}/statuses")).status
    finally:
        await layer.aclose()


def _settings(tmp_path: Path, env: dict[str, str], toml: str = "", **extra: Any) -> dict[str, Any]:
    """A write's settings as a session of a daemon with this configuration file and environment builds them."""
    (tmp_path / "ci-sidecar.toml").write_text(toml)
    config = load_config(env=env, cwd=str(tmp_path)).config
    return {**session_settings("github", env={}, credential_urls={}, ca_bundle=config.ca_bundle,
                               proxy=config.proxy, no_proxy=config.no_proxy), **extra}


async def test_the_configured_proxy_carries_provider_requests(tmp_path: Path, proxy: CountingProxy,
                                                              fake: FakeGitHub) -> None:
    """``proxy`` in the configuration file: the request reaches the API through the proxy."""
    settings = _settings(tmp_path, {}, f'proxy = "{proxy.url}"\n')
    assert 200 == await _get(settings, fake.url)
    assert [f"GET {fake.url}/repos/octo/repo/commits/{SHA}/statuses"] == proxy.seen


async def test_https_proxy_and_no_proxy_from_the_environment(tmp_path: Path, proxy: CountingProxy,
                                                             fake: FakeGitHub) -> None:
    """HTTPS_PROXY applies without a configuration file; a NO_PROXY host is reached directly."""
    assert 200 == await _get(_settings(tmp_path, {"HTTPS_PROXY": proxy.url}), fake.url)
    assert 1 == len(proxy.seen)
    assert 200 == await _get(_settings(tmp_path, {"HTTPS_PROXY": proxy.url, "NO_PROXY": "example.com,127.0.0.1"}),
                             fake.url)
    assert 1 == len(proxy.seen) and 2 == len(fake.requests)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "localhost, 127.0.0.1"])
async def test_no_proxy_hosts_are_reached_directly(tmp_path: Path, proxy: CountingProxy, fake: FakeGitHub,
                                                   no_proxy: str) -> None:
    """A host ``no_proxy`` names (or ``*``) is reached around the proxy."""
    settings = _settings(tmp_path, {}, f'proxy = "{proxy.url}"\nno_proxy = "{no_proxy}"\n')
    assert 200 == await _get(settings, fake.url)
    assert [] == proxy.seen and 1 == len(fake.requests)


async def test_a_no_proxy_for_other_hosts_still_proxies_this_one(tmp_path: Path, proxy: CountingProxy,
                                                                 fake: FakeGitHub) -> None:
    """``no_proxy`` naming other hosts leaves this one proxied."""
    settings = _settings(tmp_path, {}, f'proxy = "{proxy.url}"\nno_proxy = ".example.com,github.com,127.0.0.2"\n')
    assert 200 == await _get(settings, fake.url)
    assert 1 == len(proxy.seen)


async def test_trust_env_off_connects_directly(tmp_path: Path, proxy: CountingProxy, fake: FakeGitHub) -> None:
    """``trust_env = false`` (loopback fakes) ignores the proxy."""
    settings = _settings(tmp_path, {}, f'proxy = "{proxy.url}"\n', trust_env=False)
    assert 200 == await _get(settings, fake.url)
    assert [] == proxy.seen


def test_the_daemon_delivers_a_check_run_through_its_proxy(short_tmp: Path, tmp_path: Path, env: dict[str, str],
                                                           proxy: CountingProxy, fake: FakeGitHub) -> None:
    """A daemon with ``proxy`` in its configuration file: exec's check run is delivered, every request of it
    through the proxy."""
    config_dir = Path(env["XDG_CONFIG_HOME"]) / "ci-sidecar"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "ci-sidecar.toml").write_text(f'proxy = "{proxy.url}"\n')
    daemon = DaemonProcess.start(short_tmp / "d.sock", env)
    try:
        job = dict(env, CI="true", GITHUB_ACTIONS="true", GITHUB_REPOSITORY="octo/repo", GITHUB_SHA=SHA,
                   GITHUB_REF="refs/heads/main", GITHUB_EVENT_NAME="push", GITHUB_RUN_ID="42",
                   GITHUB_API_URL=fake.url, GITHUB_TOKEN=TOKEN, CI_SIDECAR_SOCKET=str(daemon.path))
        done = subprocess.run([sys.executable, "-m", "ci_sidecar", "exec", "--wait-s", "30", "--", "true"],
                              cwd=tmp_path, env=job, capture_output=True, text=True, timeout=90)
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr + daemon.log()
    assert "github: native (via check run), delivered" in done.stderr, done.stderr
    assert fake.check_runs(), done.stderr
    assert len(proxy.seen) == len(fake.requests) > 0
    assert TOKEN not in daemon.log()
