"""The shell-script way in: ``serve --background``, ``wait`` and ``call`` fail loudly and on time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from helpers import DaemonProcess, daemon_argv


def _run(env: dict[str, str], *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_argv(*args), env=env, capture_output=True, text=True, timeout=timeout, **kw)


def _one_line_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_background_serve_returns_once_the_socket_accepts(short_tmp: Path, env: dict[str, str]) -> None:
    """`serve --background` returns only when calls work, so the next line of a script never races it."""
    sock = str(short_tmp / "bg.sock")
    started = _run(env, "serve", "--socket", sock, "--background")
    try:
        assert started.returncode == 0, started.stderr
        assert "serving on" in started.stderr and started.stdout == ""
        run_id = _run(env, "call", "create_test_run", '{"name": "smoke"}', "--socket", sock, "--get", "id")
        assert run_id.returncode == 0, run_id.stderr
        assert run_id.stdout.strip().startswith("run_") or run_id.stdout.strip()
        status = _run(env, "call", "get_test_run_status", f'{{"test_run_id": "{run_id.stdout.strip()}"}}',
                      "--socket", sock, "--get", "status")
        assert status.stdout.strip() == "running"
        assert (short_tmp / "bg.sock.log").exists()  # the daemon's log is a file, not the terminal
    finally:
        assert _run(env, "call", "sidecar/stop", "--socket", sock).returncode == 0
    assert _run(env, "wait", "--socket", sock, "--timeout", "0.5").returncode != 0


def test_background_serve_that_cannot_start_says_why(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """A second daemon on a taken socket fails with one line and a non-zero status, not silence."""
    again = _run(env, "serve", "--socket", str(daemon.path), "--background", "--ready-timeout", "20")
    _one_line_error(again)
    assert "already serves" in again.stderr


def test_wait_gives_up_with_a_reason(short_tmp: Path, env: dict[str, str]) -> None:
    """`ci-sidecar wait` on a socket nobody serves fails after --timeout, naming the socket."""
    gone = _run(env, "wait", "--socket", str(short_tmp / "none.sock"), "--timeout", "0.3")
    _one_line_error(gone)
    assert "none.sock" in gone.stderr and "0.3 s" in gone.stderr


def test_wait_succeeds_on_a_serving_daemon(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """`ci-sidecar wait` exits 0 as soon as the daemon accepts connections."""
    assert _run(env, "wait", "--socket", str(daemon.path), "--timeout", "5").returncode == 0


def test_call_failures_are_one_line_and_non_zero(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """No daemon, bad params, an unknown field and an RPC error all exit non-zero with one line, no traceback."""
    sock = str(daemon.path)
    _one_line_error(_run(env, "call", "sidecar/status", "--socket", "/tmp/nope-cs.sock"))
    _one_line_error(_run(env, "call", "create_test_run", "{not json", "--socket", sock))
    _one_line_error(_run(env, "call", "sidecar/status", "--socket", sock, "--get", "no.such.field"))
    _one_line_error(_run(env, "call", "complete_test_run", '{"test_run_id": ""}', "--socket", sock))


def test_call_timeout_is_honoured(daemon: DaemonProcess, env: dict[str, str]) -> None:
    """`call --timeout 1` on a request that takes 30 s gives up after about a second and says so."""
    t0 = time.monotonic()
    slow = _run(env, "call", "sidecar/debug/sleep", '{"seconds": 30}', "--socket", str(daemon.path), "--timeout", "1")
    elapsed = time.monotonic() - t0
    _one_line_error(slow)
    assert "timed out after 1 s" in slow.stderr
    assert elapsed < 15  # the session's end is bounded by the same deadline, not another flush wait


def test_a_spawned_stdio_daemon_keeps_info_lines_out_of_the_test_output(env: dict[str, str]) -> None:
    """`serve --stdio` (spawned by a test runner, stderr = its output) logs warnings only, unless asked."""
    from ci_sidecar_client import Client

    quiet = Client.spawn(daemon_argv("serve", "--stdio"), env=env, stderr=subprocess.PIPE)
    quiet.request("create_test_run", {"name": "quiet"})
    quiet.close()
    assert quiet._process.stderr.read() == b""
    quiet._process.stderr.close()
    chatty = Client.spawn(daemon_argv("serve", "--stdio", "--log-level", "INFO"), env=env, stderr=subprocess.PIPE)
    chatty.close()
    assert b" INFO " in chatty._process.stderr.read()
    chatty._process.stderr.close()
