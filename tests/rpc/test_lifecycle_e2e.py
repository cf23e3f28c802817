"""End-to-end: the real daemon over stdio and a socket, driven by the Python client."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from ci_sidecar_client import Client, ConnectionLost, RpcError
from helpers import DaemonProcess, RawConnection, daemon_argv


def spawn(env: dict[str, str], *extra: str, **kw) -> Client:
    return Client.spawn(daemon_argv("serve", "--stdio", "--debug-methods", *extra), env=env,
                        stderr=subprocess.DEVNULL, **kw)


def test_stdio_initialize_reports_server_and_methods(env: dict[str, str]) -> None:
    c = spawn(env)
    try:
        init = c.initialize_result
        assert init["serverInfo"]["name"] == "ci-sidecar" and init["protocolVersion"] == 1
        assert init["ci"]["provider"] == "local"
        methods = set(init["capabilities"]["methods"])
        assert {"initialize", "shutdown", "exit", "sidecar/status", "rpc.discover", "sidecar/debug/sleep"} <= methods
        doc = c.request("rpc.discover")
        assert {m["name"] for m in doc["methods"]} == methods
        assert doc["openrpc"].startswith("1.")
    finally:
        assert c.close() == {"pending": 0, "failed": 0}
    assert c.returncode == 0  # exit after shutdown


def test_stdio_exit_without_shutdown_is_code_1(env: dict[str, str]) -> None:
    c = spawn(env)
    c.notify("exit")
    assert c._process.wait(5) == 1
    c.close()


def test_request_before_initialize_and_second_initialize(env: dict[str, str]) -> None:
    c = spawn(env, initialize=False)
    try:
        with pytest.raises(RpcError) as e:
            c.request("sidecar/status")
        assert e.value.code == -32002
        c.request("initialize", {"protocolVersion": 1})
        with pytest.raises(RpcError) as e:
            c.request("initialize", {})
        assert e.value.code == -32600
        c.request("shutdown")
        with pytest.raises(RpcError) as e:
            c.request("sidecar/status")
        assert e.value.code == -32600 and "after shutdown" in e.value.message
    finally:
        c.notify("exit")
        assert c._process.wait(5) == 0
        c.close()


def test_unsupported_protocol_version(env: dict[str, str]) -> None:
    c = spawn(env, initialize=False)
    try:
        with pytest.raises(RpcError) as e:
            c.request("initialize", {"protocolVersion": 99})
        assert e.value.code == -32600 and e.value.data["supported"] == [1]
        # the session is still usable with a supported version
        assert c.request("initialize", {"protocolVersion": 1})["protocolVersion"] == 1
    finally:
        c.close()


def test_error_shapes(env: dict[str, str]) -> None:
    c = spawn(env)
    try:
        with pytest.raises(RpcError) as e:
            c.request("no/such/method")
        assert e.value.code == -32601 and e.value.data == {"method": "no/such/method"}
        with pytest.raises(RpcError) as e:
            c.request("sidecar/debug/sleep", {"seconds": "soon"})
        assert e.value.code == -32602 and e.value.data["path"] == "$.seconds"
        # unknown fields are ignored (forward compatibility)
        assert c.request("sidecar/debug/sleep", {"seconds": 0, "future_field": 1})["slept"] >= 0
        with pytest.raises(RpcError) as e:
            c.request("sidecar/debug/raise", {"message": "secret internal detail"})
        assert e.value.code == -32603 and set(e.value.data) == {"incident"}
        assert "secret" not in e.value.message and "Traceback" not in e.value.message
    finally:
        c.close()


def test_debug_methods_need_the_flag(env: dict[str, str]) -> None:
    c = Client.spawn(daemon_argv("serve", "--stdio"), env=env, stderr=subprocess.DEVNULL)
    try:
        assert "sidecar/debug/sleep" not in c.initialize_result["capabilities"]["methods"]
        with pytest.raises(RpcError) as e:
            c.request("sidecar/debug/sleep", {"seconds": 0})
        assert e.value.code == -32601
    finally:
        c.close()


def test_stray_stdout_never_reaches_the_protocol(env: dict[str, str]) -> None:
    c = spawn(env)
    try:
        for _ in range(3):
            assert c.request("sidecar/debug/sleep", {"seconds": 0, "print_stdout": True})["slept"] >= 0
        assert c.request("sidecar/status")["transport"] == "stdio"
    finally:
        c.close()


def test_cancel_answers_32800_quickly(env: dict[str, str]) -> None:
    c = spawn(env)
    try:
        fut = c.send_request("sidecar/debug/sleep", {"seconds": 30})
        time.sleep(0.2)
        t0 = time.monotonic()
        c.cancel(fut)
        with pytest.raises(RpcError) as e:
            fut.result(5)
        assert e.value.code == -32800 and time.monotonic() - t0 < 2
        c.notify("$/cancelRequest", {"id": 424242})  # unknown id: ignored
        assert c.request("sidecar/status")["sessions"] == 1
    finally:
        c.close()


def test_progress_and_log_message(env: dict[str, str]) -> None:
    c = spawn(env)
    seen: list[tuple[str, dict]] = []
    c.on_notification(lambda m, p: seen.append((m, p)))
    try:
        c.request("sidecar/debug/sleep", {"seconds": 0.3, "workDoneToken": "tok-1"})
        kinds = [p["value"]["kind"] for m, p in seen if m == "$/progress" and p["token"] == "tok-1"]
        assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
        assert any(m == "window/logMessage" and "sleeping" in p["message"] for m, p in seen)
    finally:
        c.close()


def test_concurrent_requests_on_one_connection(env: dict[str, str]) -> None:
    c = spawn(env)
    try:
        t0 = time.monotonic()
        futs = [c.send_request("sidecar/debug/sleep", {"seconds": 0.5}) for _ in range(20)]
        wait(futs, 10)
        assert all(f.result()["slept"] >= 0.5 for f in futs)
        assert time.monotonic() - t0 < 3  # they ran concurrently, not 10 s in a row
    finally:
        c.close()


def test_batches_over_the_wire(daemon: DaemonProcess) -> None:
    raw = RawConnection(daemon.path)
    raw.initialize()
    raw.send([
        {"jsonrpc": "2.0", "id": 1, "method": "sidecar/status"},
        {"jsonrpc": "2.0", "method": "initialized"},
        1,
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ])
    reply = raw.receive()
    assert isinstance(reply, list) and len(reply) == 3
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    assert "result" in by_id[1] and by_id[2]["error"]["code"] == -32601
    assert [r["error"]["code"] for r in reply if r["id"] is None] == [-32600]
    raw.send([{"jsonrpc": "2.0", "method": "initialized"}])  # all notifications: no reply at all
    raw.send([])
    assert raw.receive() == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "Invalid request: empty batch", "data": {"reason": "empty batch"}}}
    raw.send_raw(b"Content-Length: 5\r\n\r\n{bad}")
    assert raw.receive()["error"]["code"] == -32700
    assert raw.request("sidecar/status", rid=9)["id"] == 9  # a bad JSON body does not break framing
    raw.close()


def test_socket_exit_ends_only_the_session(daemon: DaemonProcess) -> None:
    a = daemon.client()
    b = daemon.client()
    assert a.request("sidecar/status")["sessions"] == 2
    a.close()
    # the daemon ends a's session once it has read the end of a's stream: wait for that, not for luck
    deadline = time.monotonic() + 30
    while b.request("sidecar/status")["sessions"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.request("sidecar/status")["sessions"] == 1
    assert daemon.proc.poll() is None


def test_sidecar_stop_stops_the_daemon(daemon: DaemonProcess) -> None:
    c = daemon.client()
    assert c.request("sidecar/stop") is None
    assert daemon.proc.wait(5) == 0
    assert not daemon.path.exists()


def test_process_id_watch_stdio(env: dict[str, str]) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    c = spawn(env, initialize=False)
    c.request("initialize", {"processId": parent.pid})
    parent.wait()
    assert c._process.wait(5) == 1  # client process gone, no shutdown: exits like `exit` without shutdown
    c.close()


def test_idle_timeout(short_tmp: Path, env: dict[str, str]) -> None:
    d = DaemonProcess.start(short_tmp / "i.sock", env, extra=["--idle-timeout", "1"])
    t0 = time.monotonic()
    assert d.proc.wait(10) == 0
    assert 0.9 < time.monotonic() - t0 < 6


def test_call_command(daemon: DaemonProcess, env: dict[str, str]) -> None:
    run = lambda *a, **kw: subprocess.run(daemon_argv("call", *a, "--socket", str(daemon.path)),  # noqa: E731
                                          env=env, capture_output=True, text=True, timeout=30, **kw)
    ok = run("sidecar/status")
    assert ok.returncode == 0 and '"version"' in ok.stdout
    piped = run("sidecar/debug/sleep", "-", input='{"seconds": 0}')
    assert piped.returncode == 0 and '"slept"' in piped.stdout
    bad = run("sidecar/debug/sleep", '{"seconds": "x"}')
    assert bad.returncode == 1 and '"code": -32602' in bad.stderr and bad.stdout == ""
    gone = subprocess.run(daemon_argv("call", "sidecar/status", "--socket", "/tmp/nope-cs.sock"), env=env,
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "no ci-sidecar daemon" in gone.stderr


def test_dead_daemon_is_a_clear_error(env: dict[str, str]) -> None:
    c = spawn(env)
    fut = c.send_request("sidecar/debug/sleep", {"seconds": 30})
    c._process.kill()
    with pytest.raises(ConnectionLost, match="exited"):
        fut.result(5)
    c.close()
