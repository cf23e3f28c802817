"""`install-units` refuses an installation the service user cannot run; the user units are hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ci_sidecar.unit_reach import ServiceUser, unreachable_reason
from ci_sidecar.units import render_units

ANALYZE = shutil.which("systemd-analyze")
USER_UNIT_MAX_EXPOSURE = 6.5  # what a user manager can apply without user namespaces (docs/systemd.md)


@pytest.fixture
def open_tmp(short_tmp: Path) -> Path:
    """A temp dir every user may search (pytest's own tmp_path sits in a 0700 directory)."""
    short_tmp.chmod(0o755)
    return short_tmp


def _install(root: Path, mode: int, interpreter: str = "/usr/bin/python3") -> Path:
    """A fake installation prefix whose top directory has ``mode``: ``<root>/bin/ci-sidecar``."""
    exe = root / "bin" / "ci-sidecar"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!{interpreter}\nimport sys\n")
    exe.chmod(0o755)
    (root / "bin").chmod(0o755)
    root.chmod(mode)
    return exe


def test_a_0700_directory_on_the_way_is_named(open_tmp: Path) -> None:
    """An entry point under a 0700 directory (a home, /root) is out of the service user's reach, and the reason says where."""
    exe = _install(open_tmp / "home", 0o700)
    why = unreachable_reason(str(exe), ServiceUser("nobody"), private_tmp=False)
    assert why is not None and str(open_tmp / "home") in why and "not searchable by nobody" in why


def test_the_interpreter_of_the_entry_point_is_checked_too(open_tmp: Path) -> None:
    """A reachable script whose #! interpreter lives in a 0700 directory (pyenv under /root) is refused."""
    private = open_tmp / "private"
    (private / "bin").mkdir(parents=True)
    python = private / "bin" / "python3"
    python.symlink_to(sys.executable)
    private.chmod(0o700)
    exe = _install(open_tmp / "opt", 0o755, interpreter=str(python))
    why = unreachable_reason(str(exe), ServiceUser("nobody"), private_tmp=False)
    assert why is not None and str(private) in why


def test_a_reachable_installation_passes(open_tmp: Path) -> None:
    """World-searchable directories and a system interpreter: nothing to complain about."""
    exe = _install(open_tmp / "opt", 0o755, interpreter="/bin/sh")
    assert unreachable_reason(str(exe), ServiceUser("nobody"), private_tmp=False) is None


def test_install_units_refuses_a_venv_under_tmp_unless_forced(tmp_path: Path) -> None:
    """PrivateTmp=yes hides /tmp from the service: install-units exits 1 and says so; --force writes anyway."""
    prefix = tmp_path / "venv"
    _install(prefix, 0o755, interpreter="/bin/sh")
    argv = [sys.executable, "-m", "ci_sidecar", "install-units", "--root", str(tmp_path / "root"), "--prefix", str(prefix)]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "PrivateTmp" in refused.stderr and "/opt/ci-sidecar" in refused.stderr
    assert not (tmp_path / "root").exists()
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0 and "anyway" in forced.stderr
    assert (tmp_path / "root/etc/systemd/system/ci-sidecar.service").exists()


@pytest.mark.requires_tool("systemd-analyze", "apt-get install systemd")
def test_user_units_are_hardened_as_far_as_a_user_manager_allows(short_tmp: Path) -> None:
    """`systemd-analyze --user security` rates the per-user service at most 6.5 (it was 9.1 UNSAFE)."""
    unit = short_tmp / "ci-sidecar.service"
    unit.write_text(render_units(exec_start="/opt/ci-sidecar/bin/ci-sidecar", user_mode=True)["ci-sidecar.service"])
    (short_tmp / "run").mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(short_tmp), "XDG_RUNTIME_DIR": str(short_tmp / "run")}
    proc = subprocess.run([ANALYZE, "--user", "security", "--offline=true", str(unit)], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= USER_UNIT_MAX_EXPOSURE
