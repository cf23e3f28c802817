"""An unreachable provider is never a silent wait: the user is told what is awaited and why, the log says
it at WARNING, and the final line names the reason."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_sidecar_client import Client
from ci_sidecar_client._reporting import RunReporter
from ci_sidecar_client.pytest_plugin import _summary
from helpers import DaemonProcess

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def github_env(port: int) -> dict[str, str]:
    return dict(CI="true", GITHUB_ACTIONS="true", GITHUB_REPOSITORY="octo/widgets", GITHUB_SHA=SHA,
                GITHUB_REF="refs/heads/main", GITHUB_EVENT_NAME="push", GITHUB_RUN_ID="42", GITHUB_RUN_ATTEMPT="1",
                GITHUB_SERVER_URL="https://github.com", GITHUB_API_URL=f"http://127.0.0.1:{port}",
                GITHUB_TOKEN="ghs_unreachabletestnotarealtoken00")


def test_exec_says_what_it_waits_for_and_why(daemon: DaemonProcess, env: dict[str, str], tmp_path: Path,
                                             closed_port: int) -> None:
    """exec with GitHub down: a line while waiting names the write and the refusal; the daemon logs it at WARNING."""
    job_env = dict(env, **github_env(closed_port), CI_SIDECAR_SOCKET=str(daemon.path))
    proc = subprocess.run([sys.executable, "-m", "ci_sidecar", "exec", "--wait-s", "4", "--", "true"], cwd=tmp_path,
                          env=job_env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    waiting = [line for line in proc.stderr.splitlines() if "waiting up to" in line]
    assert len(waiting) == 1, proc.stderr
    assert "(github via check run)" in waiting[0] and "retrying" in waiting[0] and "(--wait-s)" in waiting[0]
    assert "github: " in proc.stderr and "retrying in" in proc.stderr  # relayed as it happened
    (final,) = [line for line in proc.stderr.splitlines() if "undelivered:" in line]
    assert "last error: still retrying: github" in final
    assert any(" WARNING ci_sidecar.delivery" in line and "retry" in line for line in daemon.log().splitlines())
    assert "ghs_unreachabletestnotarealtoken00" not in proc.stderr + daemon.log()



def test_a_signal_during_the_final_wait_lists_what_is_undelivered(daemon: DaemonProcess, env: dict[str, str],
                                                                  tmp_path: Path, closed_port: int) -> None:
    """SIGTERM while exec waits for GitHub: it stops waiting at once, lists the pending write and who keeps it,
    and exits 143."""
    job_env = dict(env, **github_env(closed_port), CI_SIDECAR_SOCKET=str(daemon.path))
    proc = subprocess.Popen([sys.executable, "-m", "ci_sidecar", "exec", "--wait-s", "120", "--", "true"],
                            cwd=tmp_path, env=job_env, stderr=subprocess.PIPE, text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:  # exec explains the wait after 2 s: it is waiting now
        seen.append(line)
        if "waiting up to" in line:
            break
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    proc.stderr.close()
    proc.wait(30)
    assert time.monotonic() - signalled < 20, "exec went on waiting after the signal"
    stderr = "".join(seen) + rest
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "not waiting for deliveries any more" in rest
    assert f"not delivered in time: 1 write(s); the daemon at {daemon.path} keeps them" in rest, stderr
    assert "  pending: github run:" in rest, stderr


def test_the_reporter_says_what_it_waits_for_and_the_summary_says_why(
        daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    """The pytest plugin's reporter explains a long wait for delivery, and its final line gives the reason."""
    for name, value in github_env(closed_port).items():
        monkeypatch.setenv(name, value)  # the client sends its environment: this session is on GitHub
    client = Client.connect(str(daemon.path))
    try:
        run = client.request("create_test_run", {"name": "unreachable"})
        reporter = RunReporter(client, run, joined=False)
        reporter.add({"name": "t", "status": "passed"})
        said: list[str] = []
        done = reporter.finish("success", wait_s=3, say=said.append, notice_after=1)
    finally:
        client.close(timeout=1)
    assert len(said) == 1 and "waiting up to 2 s" in said[0] and "github" in said[0], said
    line = _summary(done)
    assert "provider writes undelivered (still retrying: github: " in line, line
