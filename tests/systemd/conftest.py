"""Fixtures for the systemd tests: a fake service manager's notify socket and LSP framing helpers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class NotifyReceiver:
    """The service manager's end of ``$NOTIFY_SOCKET``: a bound AF_UNIX datagram socket."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.env_value = env_value  # what goes into $NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        """Every datagram waiting now, parsed into ``{KEY: value}``, without blocking."""
        new = []
        while True:
            try:
                data = self.sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            new.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        self.messages.extend(new)
        return new

    def wait_for(self, key: str, timeout: float) -> dict[str, str]:
        """Block until a datagram carrying ``key`` arrives (keeps all datagrams in ``messages``)."""
        for message in self.messages:
            if key in message:
                return message
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                message = dict(line.split("=", 1) for line in data.decode().splitlines())
                self.messages.append(message)
                if key in message:
                    return message
        except TimeoutError:
            raise AssertionError(f"no {key} within {timeout} s; got {self.messages}") from None
        finally:
            self.sock.setblocking(True)

    def count(self, key: str) -> int:
        return sum(key in message for message in self.messages)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: AF_UNIX paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cis-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_notify_receiver():
    """The :class:`NotifyReceiver` class (conftest modules are not importable by name)."""
    return NotifyReceiver


@pytest.fixture
def notify_receiver(short_tmp: Path) -> Iterator[NotifyReceiver]:
    """A notify socket at a filesystem path."""
    path = short_tmp / "notify"
    receiver = NotifyReceiver(str(path), str(path))
    yield receiver
    receiver.sock.close()


def lsp_request(sock: socket.socket, message: dict, timeout: float = 10.0) -> dict:
    """Send one LSP-framed JSON-RPC message and read one framed reply."""
    body = json.dumps(message).encode()
    sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    sock.settimeout(timeout)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a reply header; got {buffer!r}"
        buffer += chunk
    header, _, rest = buffer.partition(b"\r\n\r\n")
    fields = {}
    for line in header.decode("ascii").split("\r\n"):
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a reply body"
        rest += chunk
    return json.loads(rest[:length])


@pytest.fixture
def lsp():
    """The :func:`lsp_request` helper (conftest modules are not importable by name)."""
    return lsp_request


REPO = Path(__file__).resolve().parents[2]
WATCHDOG_USEC = 200_000  # a ping every 0.1 s


class Activated:
    """A daemon command run under ``systemd-socket-activate`` with a fake service manager around it.

    The activator binds ``socket_path``, waits for the first client, then execs the command in
    place (so its pid is the daemon's) with ``LISTEN_FDS=1`` and only the ``-E`` variables:
    ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and the systemd directories under ``root``.
    ``{socket}`` in the command is replaced by the socket path. With ``run_as`` the daemon runs
    as that uid/gid (``setpriv``, as ``User=`` would), owning the directories, like systemd sets them up.
    """

    def __init__(self, command: list[str], root: Path, receiver: NotifyReceiver, run_as: int | None = None) -> None:
        self.root = root
        self.receiver = receiver
        self.stderr = ""  # the daemon's stderr, once it has exited
        self.socket_path = str(root / "ci-sidecar.sock")
        self.dirs = {
            name: root / sub
            for name, sub in (("STATE_DIRECTORY", "state"), ("CACHE_DIRECTORY", "cache"), ("LOGS_DIRECTORY", "logs"))
        }
        for path in self.dirs.values():
            path.mkdir(exist_ok=True)
            if run_as is not None:
                os.chown(path, run_as, run_as)
        if run_as is not None:
            # the service user must reach the notify socket, as it reaches systemd's
            root.chmod(0o755)
            os.chmod(receiver.env_value, 0o777)
        setenv = {
            "NOTIFY_SOCKET": receiver.env_value,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "PYTHONPATH": str(REPO),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            **{name: str(path) for name, path in self.dirs.items()},
        }
        args = ["systemd-socket-activate", "-l", self.socket_path, "--fdname=rpc"]
        args += [f"-E{name}={value}" for name, value in setenv.items()]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)  # so "the path exists" below means the activator bound it
        command = [arg.replace("{socket}", self.socket_path) for arg in command]
        if run_as is not None:
            command = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups", "--", *command]
        self.proc = subprocess.Popen([*args, *command], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket_path):
            if self.proc.poll() is not None:
                raise AssertionError(f"activator exited: {self.proc.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("systemd-socket-activate never bound its socket")
            time.sleep(0.01)

    def connect(self) -> socket.socket:
        """Connect as a job would (the activator may still be between bind() and listen())."""
        deadline = time.monotonic() + 5
        while True:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(10)
            try:
                client.connect(self.socket_path)
                return client
            except ConnectionRefusedError:
                client.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM the daemon, wait for it, clean up; returns its exit status (see :attr:`stderr`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon ignored SIGTERM for {timeout} s") from None
        finally:
            self.close()
        return self.proc.returncode

    def close(self) -> None:
        """Kill the daemon if it still runs, keep its stderr, remove the (stale) socket file."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)


@pytest.fixture
def activate(short_tmp: Path, notify_receiver: NotifyReceiver) -> Iterator:
    """``activate(command) -> Activated``; everything started is killed at teardown."""
    started: list[Activated] = []

    def start(command: list[str], run_as: int | None = None) -> Activated:
        activated = Activated(command, short_tmp, notify_receiver, run_as)
        started.append(activated)
        return activated

    yield start
    for activated in started:
        activated.close()


def check_activated_daemon(activate, command: list[str], lsp, run_as: int | None = None) -> Activated:
    """The end-to-end scenario shared by the stub and the real daemon; returns the finished run."""
    daemon = activate(command, run_as)
    receiver = daemon.receiver
    receiver.drain()
    receiver.messages.clear()  # a previous activation's datagrams are not this one's
    with daemon.connect() as client:  # the first connection makes the activator exec the daemon
        deadline = time.monotonic() + 20
        while True:  # short waits, so a daemon that dies at start-up fails the test at once
            with contextlib.suppress(AssertionError):
                ready = receiver.wait_for("READY", timeout=0.2)
                break
            if daemon.proc.poll() is not None or time.monotonic() > deadline:
                daemon.close()
                raise AssertionError(f"no READY=1; daemon stderr:\n{daemon.stderr}")
        assert ready["READY"] == "1"
        assert ready.get("MAINPID", str(daemon.proc.pid)) == str(daemon.proc.pid)
        reply = lsp(client, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        assert reply.get("jsonrpc") == "2.0" and reply.get("id") == 1, reply
        assert "serverInfo" in reply.get("result", {}), reply
        assert reply["result"]["serverInfo"].get("name"), f"serverInfo without a name: {reply}"
    # the pings arrive on their own (their cadence is test_notify.py's, on a virtual clock): wait for two
    # rather than counting what came in a fixed time a loaded machine may not give the daemon
    deadline = time.monotonic() + 20
    while receiver.count("WATCHDOG") < 2 and time.monotonic() < deadline and daemon.proc.poll() is None:
        time.sleep(0.02)
        receiver.drain()
    assert receiver.count("WATCHDOG") >= 2, receiver.messages
    assert daemon.terminate() == 0, daemon.stderr
    receiver.wait_for("STOPPING", timeout=5)
    # STOPPING=1 comes after READY=1 and ends the conversation with the service manager
    receiver.drain()
    keys = [key for message in receiver.messages for key in message if key in ("READY", "STOPPING")]
    assert keys == ["READY", "STOPPING"], receiver.messages
    return daemon


@pytest.fixture
def activation_scenario(activate, lsp):
    """``activation_scenario(command, run_as=None) -> Activated``: READY, initialize, WATCHDOG, STOPPING."""
    return lambda command, run_as=None: check_activated_daemon(activate, command, lsp, run_as)


SERVICE_UID = 65534  # "nobody": the service user when the tests run as root (they do in CI)
#: an interpreter the service user can run (.ci/run builds one under /opt: pyenv's lives in 0700 /root)
SERVICE_PYTHON = os.environ.get("CI_SIDECAR_SERVICE_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def service_uid() -> int:
    """An unprivileged uid that can run this interpreter with ci_sidecar and trio, else skip.

    (An interpreter under a 0700 home, as with pyenv in /root, is not usable by another uid.)
    """
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the daemon as another uid")
    probe = subprocess.run(
        ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups", "--",
         SERVICE_PYTHON, "-c", "import trio, msgspec, ci_sidecar.transport.systemd"],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True, text=True,
        timeout=30, check=False,
    )
    if probe.returncode != 0:
        from ci_sidecar.unit_reach import ServiceUser, unreachable_reason
        from helpers import missing

        user = ServiceUser("nobody")
        reason = unreachable_reason(SERVICE_PYTHON, user, private_tmp=False) or (
            probe.stderr.strip().splitlines() or ["it exited %d" % probe.returncode])[-1]
        missing(f"uid {SERVICE_UID} (the service user here) cannot run {SERVICE_PYTHON} with ci-sidecar: {reason}",
                "point CI_SIDECAR_SERVICE_PYTHON at an interpreter every user can run, e.g. "
                "`python3 -m venv /opt/cis-test && /opt/cis-test/bin/pip install . && chmod -R a+rX /opt/cis-test` "
                "(.ci/run builds one)")
    return SERVICE_UID
