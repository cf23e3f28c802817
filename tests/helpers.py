"""Test helpers: spawning real daemons, a raw LSP-framed socket for malformed-input tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

from ci_sidecar_client import Client

from ci_sidecar.providers.catalog import env_prefixes

#: every CI's variables (from the provider catalog) and ours
CI_PREFIXES = ("CI_",) + env_prefixes()
CI_NAMES = {"CI", "JOB_NAME", "BUILD_NUMBER", "BUILD_URL", "BUILD_ID", "JOB_URL", "NOTIFY_SOCKET",
            "LISTEN_FDS", "LISTEN_PID", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "CACHE_DIRECTORY",
            "CREDENTIALS_DIRECTORY", "WATCHDOG_USEC", "WATCHDOG_PID"}


def missing(what: str, hint: str) -> None:
    """A test cannot run here for want of an optional tool: skip, saying how to install it. CI sets
    ``CI_SIDECAR_REQUIRE_ALL=1`` (``.ci/run``), which makes the same thing a failure."""
    message = f"{what}: {hint}"
    if os.environ.get("CI_SIDECAR_REQUIRE_ALL") == "1":
        pytest.fail(message + " (CI_SIDECAR_REQUIRE_ALL=1: nothing may be skipped)", pytrace=False)
    pytest.skip(message + " (skipped; CI_SIDECAR_REQUIRE_ALL=1 makes this a failure)")


def scrubbed_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any CI/provider variables, with private dirs."""
    env = {k: v for k, v in os.environ.items() if k not in CI_NAMES and not k.startswith(CI_PREFIXES)}
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        d = tmp / name.lower()
        d.mkdir(mode=0o700, exist_ok=True)
        env[name] = str(d)
    env["CI_SIDECAR_STATE_DIR"] = str(tmp / "state")
    env["CI_SIDECAR_OUTPUT_DIR"] = str(tmp / "ci-sidecar-out")  # never the checkout
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def daemon_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ci_sidecar", *args]


@dataclass
class DaemonProcess:
    """A ``ci-sidecar serve --socket`` subprocess."""

    path: Path
    proc: subprocess.Popen
    env: dict[str, str]
    log_path: Path
    clients: list[Client] = field(default_factory=list)

    @classmethod
    def start(cls, path: Path, env: dict[str, str], extra: list[str] | None = None,
              wait: bool = True, preexec_fn: Any = None) -> "DaemonProcess":
        log_path = path.parent.parent / (path.name + ".log") if not path.parent.exists() else path.with_suffix(".log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(daemon_argv("serve", "--socket", str(path), *(extra or [])),
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_fn)
        log.close()
        d = cls(path, proc, env, log_path)
        if wait:
            d.wait_ready()
        return d

    def wait_ready(self, timeout: float = 30.0) -> None:  # generous: a loaded machine starts Python slowly
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: {self.log()}")
            if self.path.exists():
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(str(self.path))
                        return
                    except OSError:
                        pass
            time.sleep(0.02)
        raise RuntimeError(f"daemon not ready: {self.log()}")

    def client(self, **kwargs: Any) -> Client:
        c = Client.connect(str(self.path), **kwargs)
        self.clients.append(c)
        return c

    def open_fds(self) -> int:
        """Descriptors the daemon holds now."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:  # generous: a clean stop writes a snapshot, slow under load
        for c in self.clients:
            try:
                c.close(timeout=2)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class RawConnection:
    """A bare socket speaking LSP framing, for sending whatever bytes a test wants."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: Any) -> None:
        body = json.dumps(message).encode()
        self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any = None, rid: Any = 1) -> Any:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.receive()

    def initialize(self) -> Any:
        return self.request("initialize", {"processId": None}, rid="init")

    def receive(self) -> Any:
        """Next message, or None when the daemon closed the connection."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        header, _, rest = self.buf.partition(b"\r\n\r\n")
        length = int(header.split(b":")[1])
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        self.buf = rest[length:]
        return json.loads(rest[:length])

    def receive_reply(self) -> Any:
        """Next answer, skipping notifications (e.g. a warning about an unknown field)."""
        while True:
            message = self.receive()
            if not (isinstance(message, dict) and "method" in message and "id" not in message):
                return message

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self) -> None:
        self.sock.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_on_terminal(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run a command with its stderr on a pseudo-terminal (as a user at a terminal sees it); returns its exit
    status and everything it wrote there."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        proc.wait(10)
    finally:
        os.close(master)
    return proc.returncode, seen.decode(errors="replace")


@contextmanager
def main_taken(root: Path) -> Iterator[None]:
    """Hold a state root's main instance, as a long-lived daemon would (daemons started meanwhile get
    instances of their own, and nothing here adopts anything)."""
    import fcntl

    (root / "private").mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "private" / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)
