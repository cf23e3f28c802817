"""The end of ``ci-sidecar exec``: wait for the job's writes up to the flush timeout while showing what is
still pending (a live line on a terminal, a line every 5 s in a CI log), then list exactly what was not
delivered and where it is kept, so whoever reads the job's log knows what the PR is missing and why."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgspec

from ci_sidecar.protocol.records import Undelivered
from ci_sidecar.service.flush import WAITING_PREFIX, describe

__all__ = ["wait_for_delivery", "report_undelivered", "say", "CI_LOG_INTERVAL_S"]

CI_LOG_INTERVAL_S = 5.0
_EXTRA_S = 30.0  # the shutdown answer itself, on top of the flush timeout


def say(msg: str) -> None:
    """One line to the exec process's stderr (exec is a client: it never carries the protocol on its stdout)."""
    sys.stderr.write(f"ci-sidecar: {msg}\n")
    sys.stderr.flush()


class _Display:
    """Shows the daemon's "waiting for ..." notices: redrawn in place on a terminal, else rate limited."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -CI_LOG_INTERVAL_S
        self.drawn = False
        self.lock = threading.Lock()
        self.done = False

    def __call__(self, method: str, params: Any) -> None:
        if method != "window/logMessage" or not isinstance(params, dict):
            return
        message = str(params.get("message", ""))
        if not message.startswith(WAITING_PREFIX):
            return
        with self.lock:
            if self.done:
                return
            if self.tty:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                sys.stderr.write("\r\x1b[2K" + ("ci-sidecar: " + message)[:width])
                sys.stderr.flush()
                self.drawn = True
            elif time.monotonic() - self.last >= CI_LOG_INTERVAL_S:
                say(message)
                self.last = time.monotonic()

    def finish(self) -> None:
        with self.lock:
            self.done = True
            if self.drawn:
                sys.stderr.write("\r\x1b[2K")
                sys.stderr.flush()


def wait_for_delivery(client: Any, flush_s: float, wait: Callable[[Future, float], Any]) -> dict[str, Any]:
    """``shutdown``: the daemon waits up to ``flush_s`` for this session's writes, sending notices meanwhile.
    Returns its delivery summary (counts, the undelivered writes, where they are kept). ``wait(future,
    timeout)`` waits for the answer; whatever it raises (a signal: give up waiting) cancels the request."""
    display = _Display()
    client.on_notification(display)
    fut = client.send_request("shutdown")
    try:
        return wait(fut, flush_s + _EXTRA_S)
    except BaseException:
        try:
            client.cancel(fut)
        except Exception:  # noqa: BLE001 - a lost connection has nothing left to cancel
            pass
        raise
    finally:
        display.finish()


def _root_of(kept_in: str) -> str:
    path = Path(kept_in)
    return str(path.parent.parent) if path.parent.name == "instances" else kept_in


def report_undelivered(delivery: dict[str, Any], *, joined: str | None) -> None:
    """The exact list of what was not delivered (``joined``: the socket of the shared daemon that keeps it)."""
    listed = [msgspec.convert(u, Undelivered) for u in delivery.get("undelivered", [])]
    pending = [u for u in listed if u.state == "pending"]
    failed = [u for u in listed if u.state == "failed"]
    if delivery["pending"]:
        if joined:
            where = f"the daemon at {joined} keeps them and goes on delivering"
        elif delivery.get("kept_in"):
            where = (f"kept in {delivery['kept_in']}; the next ci-sidecar daemon started under "
                     f"{_root_of(delivery['kept_in'])} delivers them")
        else:
            where = "kept in the daemon's state"
        say(f"not delivered in time: {delivery['pending']} write(s); {where}:")
        for u in pending:
            say(f"  pending: {describe(u)}")
        if delivery["pending"] > len(pending):
            say(f"  ... and {delivery['pending'] - len(pending)} more pending")
    if delivery["failed"]:
        say(f"failed for good: {delivery['failed']} write(s):")
        for u in failed:
            say(f"  failed: {describe(u)}")
        if delivery["failed"] > len(failed):
            say(f"  ... and {delivery['failed'] - len(failed)} more failed")
