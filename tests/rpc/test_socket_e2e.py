"""The Unix-socket transport: permissions, peer uid, single instance, stale sockets, bad clients."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_sidecar_client import Client, RpcError
from helpers import DaemonProcess, RawConnection, daemon_argv


def test_socket_and_directory_modes(short_tmp: Path, env: dict[str, str]) -> None:
    sock_dir = short_tmp / "priv"
    d = DaemonProcess.start(sock_dir / "s.sock", env)
    try:
        assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(d.path).st_mode) == 0o600
    finally:
        d.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a client as another uid")
def test_peer_with_another_uid_is_refused(daemon: DaemonProcess) -> None:
    # root ignores file modes, so loosen them: only the SO_PEERCRED check is left to refuse the peer
    os.chmod(daemon.path.parent, 0o777)
    os.chmod(daemon.path, 0o777)
    # fork (not exec: the interpreter under /root is not readable by another uid) and drop to nobody
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only socket calls, then _exit
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(str(daemon.path))
            data = b""  # the daemon answers a refused peer at once, then closes
            while chunk := s.recv(65536):
                data += chunk
            os.write(wfd, data or b"<closed>")
        except BaseException as exc:  # noqa: BLE001
            os.write(wfd, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    out = b""
    while chunk := os.read(rfd, 65536):
        out += chunk
    os.close(rfd)
    os.waitpid(pid, 0)
    assert b"not allowed" in out and b'"result"' not in out, out
    # the daemon's own uid still gets in
    assert daemon.client().request("sidecar/status")["counters"]["refused_peers"] == 1


def test_second_daemon_on_same_path_fails_clearly(daemon: DaemonProcess, env: dict[str, str]) -> None:
    out = subprocess.run(daemon_argv("serve", "--socket", str(daemon.path)), env=env, capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2 and "already serving" in out.stderr and str(daemon.proc.pid) in out.stderr
    assert daemon.client().request("sidecar/status")["sessions"] == 1  # the first one is unharmed


def test_stale_socket_is_recovered(short_tmp: Path, env: dict[str, str]) -> None:
    path = short_tmp / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # a socket file nobody serves, as left by kill -9
    d = DaemonProcess.start(path, env)
    try:
        assert d.client().request("sidecar/status")["transport"] == "socket"
    finally:
        d.stop()


def test_socket_after_kill_9_is_recovered(short_tmp: Path, env: dict[str, str]) -> None:
    path = short_tmp / "k.sock"
    d = DaemonProcess.start(path, env)
    d.proc.kill()
    d.proc.wait()
    d2 = DaemonProcess.start(path, env)
    try:
        assert d2.client().request("sidecar/status")["sessions"] == 1
    finally:
        d2.stop()


def test_overlong_path_rejected_clearly(env: dict[str, str]) -> None:
    path = "/tmp/" + "x" * 120 + ".sock"
    out = subprocess.run(daemon_argv("serve", "--socket", path), env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "limit is 107" in out.stderr


def test_default_socket_path_from_env(short_tmp: Path, env: dict[str, str]) -> None:
    path = short_tmp / "envsock.sock"
    env = dict(env, CI_SIDECAR_SOCKET=str(path))
    proc = subprocess.Popen(daemon_argv("serve", "--socket"), env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        out = subprocess.run(daemon_argv("call", "sidecar/status"), env=env, capture_output=True, text=True,
                             timeout=20)
        assert out.returncode == 0, out.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_clients_never_affect_others(daemon: DaemonProcess) -> None:
    good = daemon.client()
    garbage = RawConnection(daemon.path)
    garbage.send_raw(b"garbage\r\n\r\n")
    assert garbage.receive()["error"]["code"] == -32700
    assert garbage.closed_by_peer()

    half = RawConnection(daemon.path)
    half.send_raw(b"Content-Length: 100\r\n\r\n{\"jsonrpc\"")  # and never the rest

    huge = RawConnection(daemon.path)
    huge.send_raw(b"Content-Length: 104857600\r\n\r\n")
    err = huge.receive()
    assert err["id"] is None and err["error"]["code"] == -32700 and "too large" in err["error"]["data"]["reason"]
    assert huge.closed_by_peer()

    quitter = RawConnection(daemon.path)
    quitter.initialize()
    quitter.send({"jsonrpc": "2.0", "id": 5, "method": "sidecar/debug/sleep", "params": {"seconds": 0.2}})
    quitter.close()  # disconnect mid-request

    assert good.request("sidecar/status")["sessions"] >= 2
    assert good.request("sidecar/debug/sleep", {"seconds": 0})["slept"] >= 0
    for conn in (half, garbage, huge):
        conn.close()
    assert daemon.proc.poll() is None


@pytest.mark.parametrize("how", ["flag", "config"])
def test_body_limit_is_exact_and_configurable(short_tmp: Path, env: dict[str, str], how: str) -> None:
    """The body limit is exact, set by ``--max-body-bytes`` or by the configuration (flags are its top layer)."""
    if how == "config":
        env = {**env, "CI_SIDECAR_MAX_BODY_BYTES": "2000"}
    extra = ["--max-body-bytes", "2000"] if how == "flag" else []
    d = DaemonProcess.start(short_tmp / "l.sock", env, extra=extra)
    try:
        raw = RawConnection(d.path)
        raw.initialize()
        msg = b'{"jsonrpc":"2.0","id":1,"method":"sidecar/status","params":{"pad":"%s"}}'
        pad = 2000 - len(msg % b"")
        raw.send_raw(b"Content-Length: 2000\r\n\r\n" + msg % (b"x" * pad))
        assert "result" in raw.receive_reply()  # after a warning that "pad" is not a field
        raw.send_raw(b"Content-Length: 2001\r\n\r\n" + msg % (b"x" * (pad + 1)))
        assert raw.receive_reply()["error"]["code"] == -32700
        raw.close()
    finally:
        d.stop()


def test_default_16_mib_body_accepted(daemon: DaemonProcess) -> None:
    c = daemon.client()
    pad = "x" * (16 * 1024 * 1024 - 200)
    assert c.request("sidecar/debug/sleep", {"seconds": 0, "pad": pad}, timeout=60)["slept"] >= 0


@pytest.mark.parametrize("seconds, expect", [(0.5, "result"), (30, -32800)])
def test_sigterm_graceful_stop(daemon: DaemonProcess, seconds: float, expect) -> None:
    c = daemon.client()
    fut = c.send_request("sidecar/debug/sleep", {"seconds": seconds})
    time.sleep(0.2)
    t0 = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    if expect == "result":
        assert fut.result(10)["slept"] >= seconds
    else:
        with pytest.raises(RpcError) as e:
            fut.result(10)
        assert e.value.code == expect
    assert daemon.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert not daemon.path.exists()
