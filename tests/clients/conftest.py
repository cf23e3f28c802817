"""Fixtures for the client suites: one real socket daemon (with --debug-methods) shared by the module,
a scrubbed environment for the sub-processes (node, go, sh) that talk to it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonProcess, scrubbed_env


@pytest.fixture(scope="module")
def client_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No CI variables, private XDG/state dirs (module-scoped so one daemon serves many tests)."""
    tmp = tmp_path_factory.mktemp("clientenv")
    # local run output (ci-sidecar-out) would otherwise land in the client's cwd, i.e. the checkout
    return scrubbed_env(tmp, CI_SIDECAR_OUTPUT_DIR=str(tmp / "out"))


@pytest.fixture(scope="module")
def shared_daemon(client_env: dict[str, str]) -> Iterator[DaemonProcess]:
    """A ``serve --socket --debug-methods`` daemon on a short /tmp path."""
    d = tempfile.mkdtemp(prefix="csc", dir="/tmp")
    daemon = DaemonProcess.start(Path(d) / "d.sock", client_env, extra=["--debug-methods"])
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def served_methods(shared_daemon: DaemonProcess) -> list[str]:
    """``capabilities.methods`` of the shared daemon."""
    from ci_sidecar_client import Client

    with Client.connect(str(shared_daemon.path)) as c:
        return list(c.initialize_result["capabilities"]["methods"])
