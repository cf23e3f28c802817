"""Clients that send bytes msgspec cannot decode, never read their replies or batch too much: each
gets a clear error or slows only itself, and the daemon keeps serving everyone else."""

from __future__ import annotations

import json
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
