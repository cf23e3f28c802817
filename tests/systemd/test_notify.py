"""sd_notify, watchdog and socket activation against real sockets and real child processes."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import trio

from ci_sidecar.transport.systemd import Notifier, listen_fds, run_watchdog, watchdog_interval

REPO = Path(__file__).resolve().parents[2]


# --- Notifier ---------------------------------------------------------------------------------


def test_ready_reaches_the_notify_socket_with_status_and_mainpid(notify_receiver):
    notifier = Notifier.from_env({"NOTIFY_SOCKET": notify_receiver.env_value})
    assert notifier.enabled
    assert notifier.ready("listening on /run/ci-sidecar/ci-sidecar.sock") is True
    [message] = notify_receiver.drain()
    assert message == {
        "READY": "1",
        "STATUS": "listening on /run/ci-sidecar/ci-sidecar.sock",
        "MAINPID": str(os.getpid()),
    }


def test_status_watchdog_and_stopping_each_send_one_datagram(notify_receiver):
    notifier = Notifier(notify_receiver.env_value)
    notifier.status("3 runs open")
    notifier.watchdog()
    notifier.stopping("flushing 2 writes")
    notifier.notify(EXTEND_TIMEOUT_USEC=5_000_000)
    assert notify_receiver.drain() == [
        {"STATUS": "3 runs open"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "flushing 2 writes"},
        {"EXTEND_TIMEOUT_USEC": "5000000"},
    ]


def test_abstract_namespace_address(make_notify_receiver):
    name = f"ci-sidecar-test-{uuid.uuid4().hex}"
    receiver = make_notify_receiver(b"\0" + name.encode(), "@" + name)
    try:
        assert Notifier(receiver.env_value).watchdog() is True
        assert receiver.drain() == [{"WATCHDOG": "1"}]
    finally:
        receiver.sock.close()


def test_a_newline_in_a_status_cannot_forge_another_field(notify_receiver):
    Notifier(notify_receiver.env_value).status("evil\nREADY=1\r\nWATCHDOG=1")
    [message] = notify_receiver.drain()
    assert set(message) == {"STATUS"}
    assert "READY" not in message and "WATCHDOG" not in message


def test_without_notify_socket_every_call_is_a_quiet_no_op(caplog):
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    with caplog.at_level(logging.DEBUG):
        assert notifier.ready("x") is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    assert caplog.records == []


def test_from_env_can_hide_the_socket_from_child_processes(notify_receiver):
    env = {"NOTIFY_SOCKET": notify_receiver.env_value, "OTHER": "kept"}
    notifier = Notifier.from_env(env, unset=True)
    assert env == {"OTHER": "kept"}
    assert notifier.watchdog() is True


def test_send_failure_never_raises_and_warns_once(short_tmp, caplog):
    notifier = Notifier(str(short_tmp / "nobody-listens-here"))
    with caplog.at_level(logging.DEBUG, logger="ci_sidecar.transport.systemd"):
        results = [notifier.ready(), notifier.watchdog(), notifier.watchdog()]
    assert results == [False, False, False]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens-here" in warnings[0].getMessage()


def test_send_resumes_once_the_manager_socket_appears(short_tmp, make_notify_receiver):
    path = short_tmp / "late"
    notifier = Notifier(str(path))
    assert notifier.watchdog() is False
    receiver = make_notify_receiver(str(path), str(path))
    try:
        assert notifier.watchdog() is True
        assert receiver.drain() == [{"WATCHDOG": "1"}]
    finally:
        receiver.sock.close()


def test_unsupported_address_forms_disable_notifications(caplog):
    with caplog.at_level(logging.WARNING):
        notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert notifier.ready() is False
    assert "vsock:2:1234" in caplog.text


# --- watchdog ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.1),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "self"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(env, expected):
    assert watchdog_interval(env) == expected


async def test_run_watchdog_pings_every_interval(notify_receiver, autojump_clock):
    notifier = Notifier(notify_receiver.env_value)
    with trio.move_on_after(20.5):
        await run_watchdog(notifier, 5.0)
    # t = 0, 5, 10, 15, 20 (virtual time)
    assert notify_receiver.drain() == [{"WATCHDOG": "1"}] * 5


async def test_a_wedged_event_loop_stops_pinging(notify_receiver):
    notifier = Notifier(notify_receiver.env_value)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_watchdog, notifier, 0.02)
        await trio.sleep(0.1)
        assert len(notify_receiver.drain()) >= 3
        time.sleep(0.3)  # blocking call: the loop is wedged, ~15 intervals pass
        assert notify_receiver.drain() == [], "pings must come from the event loop"
        await trio.sleep(0.1)
        assert len(notify_receiver.drain()) >= 2, "pinging resumes with the loop"
        nursery.cancel_scope.cancel()


async def test_run_watchdog_rejects_a_useless_interval(notify_receiver):
    with pytest.raises(ValueError):
        await run_watchdog(Notifier(notify_receiver.env_value), 0)


# --- socket activation ------------------------------------------------------------------------

# Runs in a child: puts the passed fds at 3, 4, ... (as a service manager does), sets the
# LISTEN_* variables, calls listen_fds_with_names and reports what it got as JSON on stdout.
CHILD = textwrap.dedent(
    """
    import fcntl, json, os, socket, sys
    from ci_sidecar.transport.systemd import listen_fds_with_names

    spec = json.loads(sys.argv[1])
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in spec["fds"]]
    for target, fd in enumerate(high, start=3):
        os.dup2(fd, target)  # inheritable, like systemd leaves them
        os.close(fd)
    os.environ.pop("LISTEN_PID", None)
    if spec["pid"] == "self":
        os.environ["LISTEN_PID"] = str(os.getpid())
    elif spec["pid"] == "parent":
        os.environ["LISTEN_PID"] = str(os.getppid())
    os.environ["LISTEN_FDS"] = str(len(high))
    if spec.get("names"):
        os.environ["LISTEN_FDNAMES"] = spec["names"]
    got = listen_fds_with_names(os.environ)
    report = {
        "sockets": [[s.fileno(), s.family.name, s.type.name, name] for s, name in got],
        "cloexec": {fd: bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for fd in range(3, 3 + len(high))},
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }
    if got and got[0][0].type == socket.SOCK_STREAM:
        conn, _ = got[0][0].accept()  # the parent connected before we started
        conn.sendall(b"served over fd 3")
        conn.close()
    print(json.dumps(report))
    """
)


def run_child(spec: dict, pass_fds: tuple[int, ...]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    env["PYTHONPATH"] = str(REPO)
    spec = {**spec, "fds": list(pass_fds)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        pass_fds=pass_fds, env=env, capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_listen_fds_takes_inherited_sockets_from_fd_3(short_tmp):
    path = str(short_tmp / "rpc.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)  # queued in the backlog until the child accepts
    try:
        report = run_child({"pid": "self", "names": "rpc:events"}, (listener.fileno(), left.fileno()))
        client.settimeout(5)
        assert client.recv(100) == b"served over fd 3"
    finally:
        for s in (listener, left, right, client):
            s.close()
    assert report["sockets"] == [[3, "AF_UNIX", "SOCK_STREAM", "rpc"], [4, "AF_UNIX", "SOCK_DGRAM", "events"]]
    assert report["cloexec"] == {"3": True, "4": True}
    assert report["env_left"] == []


def test_listen_fds_ignores_sockets_meant_for_another_process():
    left, right = socket.socketpair()
    try:
        report = run_child({"pid": "parent"}, (left.fileno(),))
    finally:
        left.close()
        right.close()
    assert report["sockets"] == []
    assert report["cloexec"] == {"3": False}, "fds that are not ours must be left alone"
    assert report["env_left"] == [], "the variables must not leak to our children either"


def test_listen_fds_without_activation_returns_nothing_and_keeps_env_on_request():
    env = {"PATH": "/usr/bin"}
    assert listen_fds(env) == []
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert listen_fds(env, unset=False) == []
    assert env == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}


@pytest.mark.parametrize("env", [{"LISTEN_PID": "me", "LISTEN_FDS": "1"}, {"LISTEN_PID": "1", "LISTEN_FDS": "x"}])
def test_listen_fds_rejects_garbage(env):
    with pytest.raises(ValueError):
        listen_fds(dict(env))


def test_listen_fds_under_systemd_socket_activate(short_tmp):
    """The real protocol: systemd-socket-activate binds, waits for a client, then execs us."""
    path = str(short_tmp / "act.sock")
    script = textwrap.dedent(
        """
        import json, os
        from ci_sidecar.transport.systemd import listen_fds
        [sock] = listen_fds()
        conn, _ = sock.accept()
        conn.sendall(json.dumps({"pid": os.getpid(), "listening": sock.getsockname()}).encode())
        conn.close()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", path, sys.executable, "-c", script],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "systemd-socket-activate never bound its socket"
            time.sleep(0.01)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(path)
            data = b""
            while chunk := client.recv(4096):
                data += chunk
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    reply = json.loads(data)
    assert reply == {"pid": proc.pid, "listening": path}
