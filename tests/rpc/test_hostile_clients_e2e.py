"""Clients that send bytes msgspec cannot decode, never read their replies or batch too much: each
gets a clear error or slows only itself, and the daemon keeps serving everyone else."""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

from helpers import DaemonProcess, RawConnection


def _frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class TestUndecodableJson:
    def test_invalid_utf8_gets_parse_error_and_the_session_goes_on(self, daemon: DaemonProcess) -> None:
        """A body with bytes that are not UTF-8 is answered -32700 and the same connection still works."""
        raw = RawConnection(daemon.path)
        raw.initialize()
        raw.send_raw(_frame(b'{"jsonrpc":"2.0","id":1,"method":"sidecar/status\xff"}'))
        reply = raw.receive()
        assert -32700 == reply["error"]["code"]
        assert "UTF-8" in reply["error"]["data"]["reason"]
        raw.send_raw(_frame(b'{"jsonrpc":"2.0","id":2,"method":"create_test_run","params":{"name":"\xc3\x28"}}'))
        reply = raw.receive()
        assert (2, -32700) == (reply["id"], reply["error"]["code"])
        assert 3 == raw.request("sidecar/status", rid=3)["id"]
        raw.close()

    def test_deep_nesting_gets_parse_error_and_the_session_goes_on(self, daemon: DaemonProcess) -> None:
        """Nesting deeper than the decoder allows (in the body or in params) is -32700, not a dropped connection."""
        raw = RawConnection(daemon.path)
        raw.initialize()
        raw.send_raw(_frame(b"[" * 200_000 + b"]" * 200_000))
        assert -32700 == raw.receive()["error"]["code"]
        deep = b'{"jsonrpc":"2.0","id":5,"method":"create_test_run","params":{"name":' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
        raw.send_raw(_frame(deep))
        assert -32700 == raw.receive()["error"]["code"]
        assert 6 == raw.request("sidecar/status", rid=6)["id"]
        raw.close()


class TestBatches:
    def test_batch_over_the_limit_is_one_invalid_request(self, daemon: DaemonProcess) -> None:
        """A batch of more elements than the limit is refused whole with -32600 naming the limit; nothing in it runs."""
        raw = RawConnection(daemon.path)
        raw.initialize()
        raw.send([{"jsonrpc": "2.0", "id": i, "method": "create_test_run", "params": {"name": f"b{i}"}}
                  for i in range(6000)])
        reply = raw.receive()
        assert (None, -32600) == (reply["id"], reply["error"]["code"])
        assert "limit is 100" in reply["error"]["data"]["reason"]
        assert [] == raw.request("list_test_runs", {}, rid=7)["result"]["runs"]
        raw.send([{"jsonrpc": "2.0", "id": i, "method": "sidecar/status"} for i in range(100)])
        assert 100 == len(raw.receive())
        raw.close()


class TestUnreadReplies:
    def test_unread_replies_hold_the_reader_back(self, daemon: DaemonProcess) -> None:
        """10,000 big replies a client never reads cost the daemon little memory, and others are still served."""
        raw = RawConnection(daemon.path)
        raw.initialize()
        before = _rss_mib(daemon.proc.pid)
        data = b"".join(_frame(json.dumps({"jsonrpc": "2.0", "id": i, "method": "rpc.discover"}).encode())
                        for i in range(10_000))
        raw.sock.setblocking(False)
        view = memoryview(data)
        deadline = time.monotonic() + 8
        while view and time.monotonic() < deadline:
            try:
                view = view[raw.sock.send(view):]
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(1.0)
        grown = _rss_mib(daemon.proc.pid) - before
        assert grown < 100, f"daemon grew {grown:.0f} MiB holding unread replies"
        assert view, "the daemon read every request without the client reading a reply"
        other = RawConnection(daemon.path)
        other.initialize()
        assert 1 == other.request("sidecar/status", rid=1)["id"]
        raw.sock.close()  # disconnect without reading anything
        time.sleep(0.5)
        assert 2 == other.request("sidecar/status", rid=2)["id"]
        assert _rss_mib(daemon.proc.pid) - before < 100
        other.close()


class TestIdleAndSlowConnections:
    def _daemon(self, short_tmp: Path, env: dict[str, str], quiet_s: str = "", **kwargs: object) -> DaemonProcess:
        """A daemon whose abandon timeout (which bounds the session timeouts) is ``quiet_s``."""
        extra = {"CI_SIDECAR_ABANDON_TIMEOUT_S": quiet_s} if quiet_s else {}
        return DaemonProcess.start(short_tmp / "d.sock", {**env, **extra}, **kwargs)  # type: ignore[arg-type]

    def test_a_header_trickled_too_slowly_is_cut_off(self, short_tmp: Path, env: dict[str, str]) -> None:
        """A header not finished within the header timeout gets -32700 and the connection closes."""
        d = self._daemon(short_tmp, env, quiet_s="1")
        try:
            raw = RawConnection(d.path)
            raw.initialize()
            for byte in b"Content-Len":  # 1 byte every 0.15 s: the header would take 1.65 s
                try:
                    raw.send_raw(bytes([byte]))
                except BrokenPipeError:
                    break
                time.sleep(0.15)
            reply = raw.receive()
            assert -32700 == reply["error"]["code"] and "header" in reply["error"]["data"]["reason"]
            assert raw.closed_by_peer()
            raw.close()
        finally:
            d.stop()

    def test_idle_connections_are_closed(self, short_tmp: Path, env: dict[str, str]) -> None:
        """A connection that never initializes, and a session that goes quiet, are closed after their timeouts;
        a session waiting on a long request is not idle."""
        d = self._daemon(short_tmp, env, quiet_s="1.5")
        try:
            silent = RawConnection(d.path)
            quiet = RawConnection(d.path)
            quiet.initialize()
            waiting = RawConnection(d.path, timeout=10)
            waiting.initialize()
            waiting.send({"jsonrpc": "2.0", "id": 5, "method": "sidecar/debug/sleep", "params": {"seconds": 3}})
            time.sleep(2.5)
            assert silent.closed_by_peer() and quiet.closed_by_peer()
            assert 5 == waiting.receive()["id"]
            for conn in (silent, quiet, waiting):
                conn.close()
        finally:
            d.stop()

    def test_connections_over_the_cap_are_refused_and_descriptors_stay_flat(self, short_tmp: Path,
                                                                            env: dict[str, str]) -> None:
        """Under a 64-descriptor limit the daemon serves 32 connections; one more gets -32600 naming the
        limit; closing one lets the next in; 100 more attempts leave descriptors bounded."""
        d = self._daemon(short_tmp, env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
        try:
            before = d.open_fds()
            held = [RawConnection(d.path) for _ in range(32)]
            for conn in held:
                assert "result" in conn.initialize()
            refused = [socket.socket(socket.AF_UNIX) for _ in range(100)]
            for s in refused:
                s.connect(str(d.path))
            time.sleep(1.0)
            assert d.open_fds() <= before + 32 + 2
            extra = RawConnection(d.path)
            reply = extra.receive()
            assert -32600 == reply["error"]["code"] and "limit is 32" in reply["error"]["data"]["reason"]
            for s in refused:
                s.close()
            extra.close()
            held.pop().close()
            time.sleep(0.3)
            again = RawConnection(d.path)
            assert "result" in again.initialize()
            for conn in [*held, again]:
                conn.close()
        finally:
            d.stop()
