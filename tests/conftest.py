"""Shared fixtures: a scrubbed environment (CI runs with CI=true and provider variables set), short
socket paths (sun_path is 108 bytes), and real daemons spawned as subprocesses."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import DaemonProcess, missing, scrubbed_env  # noqa: E402


def _compile_project_once() -> None:
    """The tests spawn hundreds of daemons and CLI processes, each importing ~100 project modules. Where
    PYTHONDONTWRITEBYTECODE is set (common in CI images) none of them would find bytecode and each would
    compile those modules from source again (~90 ms a spawn): compile them once per test session."""
    if not sys.dont_write_bytecode:
        return  # the first import writes the bytecode as usual
    import compileall

    import ci_sidecar
    import ci_sidecar_client

    for package in (ci_sidecar, ci_sidecar_client):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=2)


_compile_project_once()


@pytest.fixture(autouse=True)
def _required_tools(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.requires_tool(name, hint)``: skip with the install hint when ``name`` is not on PATH
    (a failure under ``CI_SIDECAR_REQUIRE_ALL=1``)."""
    for mark in request.node.iter_markers("requires_tool"):
        name, hint = mark.args
        if shutil.which(name) is None:
            missing(f"needs `{name}`, which is not installed", hint)

from ci_sidecar.providers.catalog import env_prefixes  # noqa: E402


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir under /tmp with a short path, for Unix sockets."""
    d = tempfile.mkdtemp(prefix="cs", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for a spawned daemon: no CI variables, private state/config/runtime dirs."""
    return scrubbed_env(tmp_path)


@pytest.fixture
def daemon(short_tmp: Path, env: dict[str, str]) -> Iterator[DaemonProcess]:
    """A socket daemon with debug methods, stopped after the test."""
    d = DaemonProcess.start(short_tmp / "d.sock", env, extra=["--debug-methods"])
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(autouse=True)
def _no_ci_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process code must not see the CI machine's own variables either; clients send this
    environment to daemons, so their local output goes to a temp dir, not the checkout."""
    monkeypatch.setenv("CI_SIDECAR_OUTPUT_DIR", str(tmp_path / "ci-sidecar-out"))
    for name in list(os.environ):
        if name in ("CI", "CI_SIDECAR_SOCKET", "CI_SIDECAR_RUN_ID") or (
                name.startswith(env_prefixes()) and not name.startswith("CI_SIDECAR_")):
            monkeypatch.delenv(name, raising=False)
