"""The generated units pass systemd's own checks (no booted systemd needed) and say what we mean."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ci_sidecar.units import (
    SYSTEM_SOCKET_PATH,
    install_units,
    quote_exec_args,
    render_templates,
    render_units,
)

REPO = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.requires_tool("systemd-analyze", "apt-get install systemd")
# A real executable, so verify does not complain that ExecStart's binary is missing.
REAL_EXEC_START = quote_exec_args([sys.executable, "-m", "ci_sidecar"])
MAX_EXPOSURE = 2.0


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values...]}}`` (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def verify(paths: list[Path], *, user: bool = False, env: dict[str, str] | None = None) -> str:
    """Everything ``systemd-analyze verify`` printed: it exits 0 on unknown keys and bad values."""
    proc = analyze(*(["--user"] if user else []), "verify", "--man=no", *map(str, paths), env=env)
    return f"rc={proc.returncode}\n{proc.stdout}{proc.stderr}" if proc.returncode or proc.stdout or proc.stderr else ""


def exposure(service: Path) -> float:
    proc = analyze("security", "--offline=true", str(service))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


@pytest.fixture
def user_env(short_tmp: Path) -> dict[str, str]:
    """An environment for ``systemd-analyze --user`` with its own runtime dir and home."""
    runtime = short_tmp / "run"
    runtime.mkdir(mode=0o700)
    home = short_tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    return {**env, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(home)}


@pytest.fixture
def system_units(tmp_path: Path) -> dict[str, Path]:
    paths = install_units(tmp_path, user_mode=False, prefix=None, exec_start=REAL_EXEC_START)
    return {p.name: p for p in paths}


# --- systemd's checks -------------------------------------------------------------------------


@needs_analyze
def test_system_units_verify_without_a_single_message(system_units, tmp_path):
    assert set(system_units) == {"ci-sidecar.service", "ci-sidecar.socket"}
    assert all(p.parent == tmp_path / "etc/systemd/system" for p in system_units.values())
    assert verify([system_units["ci-sidecar.socket"], system_units["ci-sidecar.service"]]) == ""


@needs_analyze
def test_verify_check_catches_typos_and_bad_values(system_units, tmp_path):
    """Guards the check above: systemd-analyze exits 0 here, only its output tells."""
    service = system_units["ci-sidecar.service"]
    bad = service.read_text().replace("ProtectSystem=", "ProtectSytem=").replace("WatchdogSec=30s", "WatchdogSec=thirty")
    service.write_text(bad)
    output = verify([system_units["ci-sidecar.socket"], service])
    assert "ProtectSytem" in output and "thirty" in output


@needs_analyze
def test_system_service_exposure_is_at_most_2(system_units):
    score = exposure(system_units["ci-sidecar.service"])
    assert score <= MAX_EXPOSURE


@needs_analyze
def test_user_units_verify_without_a_single_message(tmp_path, user_env):
    paths = install_units(tmp_path, user_mode=True, prefix=None, exec_start=REAL_EXEC_START, env={})
    assert {p.parent for p in paths} == {tmp_path / ".config/systemd/user"}
    assert verify(sorted(paths, key=lambda p: p.suffix != ".socket"), user=True, env=user_env) == ""


@needs_analyze
def test_exec_start_quoting_survives_spaces_and_percent_signs(tmp_path):
    prefix = tmp_path / "opt dir" / "50% venv"
    entry = prefix / "bin" / "ci-sidecar"
    entry.parent.mkdir(parents=True)
    entry.write_text("#!/bin/sh\n")
    entry.chmod(0o755)
    paths = install_units(tmp_path / "root", user_mode=False, prefix=str(prefix))
    # verify resolves the binary, so a mis-split path would show up as "not executable"
    assert verify(paths) == ""
    service = parse_unit(paths[0].read_text())["Service"]
    assert service["ExecStart"] == [f'"{str(entry).replace("%", "%%")}" serve --socket {SYSTEM_SOCKET_PATH} --system']


# --- what the units say -----------------------------------------------------------------------


def test_service_is_notify_with_watchdog_restart_and_systemd_directories():
    service = parse_unit(render_units(exec_start="/x/ci-sidecar", user_mode=False)["ci-sidecar.service"])["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert service["WatchdogSec"] == ["30s"]
    assert service["ExecStart"] == [f"/x/ci-sidecar serve --socket {SYSTEM_SOCKET_PATH} --system"]
    for key in ("StateDirectory", "CacheDirectory", "LogsDirectory"):
        assert service[key] == ["ci-sidecar"]
    assert service["EnvironmentFile"] == ["-/etc/ci-sidecar/env"]
    assert service["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"], "providers must stay reachable"
    assert "PrivateNetwork" not in service and "IPAddressDeny" not in service
    assert service["ProtectHome"] == ["read-only"], "jobs' files under /home must stay readable"


def test_services_allow_enough_descriptors_for_their_connections():
    """Both services raise the open-files limit (soft and hard) far above the 1,024 default."""
    for user_mode in (False, True):
        service = parse_unit(render_units(exec_start="/x", user_mode=user_mode)["ci-sidecar.service"])["Service"]
        assert ["65536"] == service["LimitNOFILE"]


def test_stopping_the_service_cannot_delete_the_activated_socket():
    units = {n: parse_unit(t) for n, t in render_units(exec_start="/x", user_mode=False).items()}
    service = units["ci-sidecar.service"]["Service"]
    socket_path = units["ci-sidecar.socket"]["Socket"]["ListenStream"][0]
    preserved = service.get("RuntimeDirectoryPreserve", ["no"])[-1] in ("yes", "restart")
    for name in " ".join(service.get("RuntimeDirectory", [])).split():
        assert preserved or not socket_path.startswith(f"/run/{name}/"), "RuntimeDirectory= would remove the socket"
    assert socket_path == SYSTEM_SOCKET_PATH
    assert f"--socket {socket_path} " in service["ExecStart"][0] + " ", "daemon and socket unit must agree"


def test_socket_lets_the_ci_group_connect():
    socket_unit = parse_unit(render_units(exec_start="/x", user_mode=False, system_group="testers")["ci-sidecar.socket"])
    assert socket_unit["Socket"]["SocketMode"] == ["0660"]
    assert socket_unit["Socket"]["SocketGroup"] == ["testers"]
    assert socket_unit["Socket"]["Accept"] == ["no"]
    assert socket_unit["Install"]["WantedBy"] == ["sockets.target"]


def test_user_units_use_the_runtime_dir_and_only_the_user_may_connect():
    units = {n: parse_unit(t) for n, t in render_units(exec_start="/x", user_mode=True).items()}
    assert units["ci-sidecar.socket"]["Socket"]["ListenStream"] == ["%t/ci-sidecar/ci-sidecar.sock"]
    assert units["ci-sidecar.socket"]["Socket"]["SocketMode"] == ["0600"]
    service = units["ci-sidecar.service"]["Service"]
    assert service["ExecStart"] == ["/x serve --socket %t/ci-sidecar/ci-sidecar.sock"]
    assert service["Type"] == ["notify"] and service["WatchdogSec"] == ["30s"]
    assert "User" not in service


def test_committed_templates_match_the_renderer():
    for name, text in render_templates().items():
        committed = REPO / "systemd" / name
        assert committed.read_text() == text, (
            f"systemd/{name} is stale; regenerate with: python -c \"from ci_sidecar.units import "
            f"write_templates; write_templates('systemd')\""
        )
    assert "ExecStart=/usr/local/bin/ci-sidecar serve" in (REPO / "systemd/ci-sidecar.service").read_text()


# --- where install_units writes and what ExecStart points at ----------------------------------


def exec_start_of(paths: list[Path]) -> str:
    [service] = [p for p in paths if p.suffix == ".service"]
    return parse_unit(service.read_text())["Service"]["ExecStart"][0]


def test_exec_start_uses_the_ci_sidecar_on_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    entry = bindir / "ci-sidecar"
    entry.write_text("#!/bin/sh\n")
    entry.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    paths = install_units(tmp_path / "root", user_mode=False, prefix=None)
    assert exec_start_of(paths).startswith(f"{entry} serve ")


def test_exec_start_falls_back_to_this_interpreter(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    paths = install_units(tmp_path, user_mode=False, prefix=None)
    assert exec_start_of(paths).startswith(f"{sys.executable} -m ci_sidecar serve ")


def test_exec_start_prefix_and_explicit_command(tmp_path):
    assert exec_start_of(install_units(tmp_path, user_mode=False, prefix="/opt/cis")).startswith(
        "/opt/cis/bin/ci-sidecar serve "
    )
    assert exec_start_of(
        install_units(tmp_path, user_mode=False, prefix="/opt/cis", exec_start="/usr/bin/env ci-sidecar")
    ).startswith("/usr/bin/env ci-sidecar serve ")


def test_user_install_honours_xdg_config_home(tmp_path):
    config = tmp_path / "cfg"
    paths = install_units(tmp_path / "home", user_mode=True, prefix="/p", env={"XDG_CONFIG_HOME": str(config)})
    assert sorted(p.relative_to(config).as_posix() for p in paths) == [
        "systemd/user/ci-sidecar.service",
        "systemd/user/ci-sidecar.socket",
    ]
    # a relative XDG_CONFIG_HOME is invalid per the XDG spec and ignored, as systemd does
    paths = install_units(tmp_path / "home", user_mode=True, prefix="/p", env={"XDG_CONFIG_HOME": "rel"})
    assert {p.parent for p in paths} == {tmp_path / "home/.config/systemd/user"}


def test_reinstall_replaces_units_world_readable(tmp_path):
    first = install_units(tmp_path, user_mode=False, prefix="/old")
    second = install_units(tmp_path, user_mode=False, prefix="/new")
    assert first == second
    assert exec_start_of(second).startswith("/new/bin/ci-sidecar ")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in second)
    assert sorted(p.name for p in (tmp_path / "etc/systemd/system").iterdir()) == [
        "ci-sidecar.service",
        "ci-sidecar.socket",
    ]
