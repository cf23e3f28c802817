"""Streaming a test runner's results into one run: join or create it, send results in pipelined batches,
upload artifacts, complete it when this process created it.

Runner-neutral (the pytest plugin is one user) and standard-library only, Python >= 3.9.
"""

import base64
import hashlib
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before 3.11
from typing import Any, Dict, List, Optional

from ._client import Client, ConnectionLost, DaemonNotFound, RpcError

__all__ = ["RunReporter", "ReportingError", "describe_wait"]

log = logging.getLogger("ci_sidecar_client.reporting")

_STREAM_CHUNK = 4 * 1024 * 1024
_PATH_NOT_ALLOWED = -31005


class ReportingError(Exception):
    """Reporting to the daemon failed (daemon missing or gone, a request refused)."""


def describe_wait(client: Client, run_id: str, left_s: float) -> Optional[str]:
    """One line saying which provider writes of ``run_id`` are still awaited and why, or None.

    For the moment a wait for delivery gets long: a user watching a quiet terminal should know what
    is being waited for (an unreachable provider retries for up to a minute).
    """
    try:
        run = client.request("get_test_run_status", {"test_run_id": run_id}, timeout=5)
    except Exception:  # noqa: BLE001 - a description is best effort
        return None
    delivery = run.get("delivery") or {}
    if not delivery.get("pending"):
        return None
    targets = sorted({"%s %s" % (t["provider"], t.get("note") or t["kind"]) for t in run.get("targets", [])
                      if (t.get("delivery") or {}).get("state") == "pending"})
    line = "waiting up to %.0f s for %d provider write(s)%s to be delivered" % (
        left_s, delivery["pending"], " (%s)" % ", ".join(targets) if targets else "")
    if delivery.get("last_error"):
        line += ": %s" % delivery["last_error"]
    return line


class RunReporter:
    """One run fed by one process. Thread-safe :meth:`add`; everything else from one thread.

    Results are buffered and sent as ``report_results`` batches of ``batch_size`` results, or after
    ``interval`` seconds, or before ``max_batch_bytes`` of text would be exceeded. Batches are pipelined
    (the daemon applies requests naming one run in arrival order), so a slow daemon never stalls tests;
    the first failure is kept in :attr:`problem` and stops further sending.
    """

    def __init__(self, client: Client, run: Dict[str, Any], *, joined: bool, batch_size: int = 100,
                 interval: float = 1.0, max_batch_bytes: int = 4 * 1024 * 1024) -> None:
        self.client = client
        self.run = run
        self.run_id: str = run["id"]
        #: True when the run belongs to someone else (``CI_SIDECAR_RUN_ID``): it is never completed here
        self.joined = joined
        self.batch_size = batch_size
        self.interval = interval
        self.max_batch_bytes = max_batch_bytes
        #: results the daemon accepted
        self.sent = 0
        #: the first thing that went wrong, if anything
        self.problem: Optional[BaseException] = None
        self._buffer: List[Dict[str, Any]] = []
        self._buffer_bytes = 0
        # re-entrant: an answer that arrives before add_done_callback runs its callback on this thread
        self._lock = threading.RLock()
        self._inflight: List["Future[Any]"] = []
        self._timer: Optional[threading.Timer] = None
        self._last_flush = time.monotonic()
        self._daemon_log: Any = None

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, *, socket_path: Optional[str] = None, run_id: Optional[str] = None, run_name: str = "tests",
             client_name: str = "ci-sidecar-client-python", spawn_env: Optional[Dict[str, str]] = None,
             **kwargs: Any) -> "RunReporter":
        """Connect to ``socket_path`` (else spawn ``ci-sidecar serve --stdio``), then join ``run_id`` or
        create a run named ``run_name``. Raises :class:`ReportingError` with a sentence for the user."""
        client: Optional[Client] = None
        # a spawned daemon's log goes to a temp file (not the test output), quoted if it fails to start
        daemon_log = None if socket_path else tempfile.TemporaryFile()
        try:
            if socket_path:
                client = Client.connect(socket_path, client_name=client_name)
            else:
                client = Client.spawn(env=spawn_env, stderr=daemon_log, client_name=client_name)
            if run_id:
                run = client.request("get_test_run_status", {"test_run_id": run_id}, timeout=30)
                if run.get("status") == "finished":
                    raise ReportingError("run %s (CI_SIDECAR_RUN_ID) is already finished" % run_id)
                reporter = cls(client, run, joined=True, **kwargs)
            else:
                run = client.request("create_test_run", {"name": run_name}, timeout=30)
                reporter = cls(client, run, joined=False, **kwargs)
            reporter._daemon_log = daemon_log
            return reporter
        except ReportingError:
            if client is not None:
                client.close(timeout=5)
            _close_quietly(daemon_log)
            raise
        except (DaemonNotFound, ConnectionLost, RpcError, OSError, FutureTimeout) as exc:
            if client is not None:
                client.close(timeout=5)
            what = "run %s" % run_id if run_id else "a run"
            tail = _tail(daemon_log)
            _close_quietly(daemon_log)
            raise ReportingError("cannot report to %s: %s%s" % (what, exc, tail)) from exc

    # --- results ------------------------------------------------------------------------------

    def add(self, result: Dict[str, Any]) -> None:
        """Queue one TestResult (a dict in the wire shape); sends a batch when one is due."""
        size = sum(len(v) for v in result.values() if isinstance(v, str))
        with self._lock:
            if self._buffer and self._buffer_bytes + size > self.max_batch_bytes:
                self._flush_locked()
            self._buffer.append(result)
            self._buffer_bytes += size
            if len(self._buffer) >= self.batch_size or time.monotonic() - self._last_flush >= self.interval:
                self._flush_locked()
            elif self._timer is None:
                # a long test after this one must not hold its result back
                self._timer = threading.Timer(self.interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Send whatever is buffered now (without waiting for the answer)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = time.monotonic()
        batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
        if not batch or self.problem is not None:
            return
        try:
            fut = self.client.send_request("report_results", {"test_run_id": self.run_id, "results": batch})
        except (ConnectionLost, OSError) as exc:
            self.problem = exc
            return
        fut.add_done_callback(self._on_answer)
        self._inflight = [f for f in self._inflight if not f.done()]
        self._inflight.append(fut)

    def _on_answer(self, fut: "Future[Any]") -> None:
        exc = fut.exception()
        if exc is not None:
            log.debug("report_results failed: %s", exc)
            if self.problem is None:
                self.problem = exc
            return
        with self._lock:
            self.sent += int((fut.result() or {}).get("accepted", 0))

    def drain(self, timeout: float = 60.0) -> None:
        """Flush and wait until every batch sent so far is answered."""
        self.flush()
        deadline = time.monotonic() + timeout
        with self._lock:
            inflight = list(self._inflight)
        for fut in inflight:
            try:
                fut.result(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - recorded once, reported by the caller
                if self.problem is None:
                    self.problem = exc

    # --- artifacts ----------------------------------------------------------------------------

    def upload(self, path: str, name: str, metadata: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Upload one file as artifact ``name``: by path when the daemon may read it, else streamed."""
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise ReportingError("no such file: %s" % path)
        params = {"test_run_id": self.run_id, "path": path, "name": name, "metadata": metadata or {}}
        try:
            return self.client.request("upload_artifact", params, timeout=120)
        except RpcError as exc:
            if exc.code != _PATH_NOT_ALLOWED:
                raise
        # outside the daemon's source roots (or another machine's filesystem): send the bytes
        return self._stream(path, name, metadata or {})

    def _stream(self, path: str, name: str, metadata: Dict[str, Any]) -> Dict[str, Any]:
        size = os.path.getsize(path)
        opened = self.client.request("open_artifact_stream", {
            "test_run_id": self.run_id, "name": name, "metadata": metadata, "size": size}, timeout=60)
        digest = hashlib.sha256()
        offset = 0
        with open(path, "rb") as f:
            while True:
                chunk = f.read(_STREAM_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                self.client.request("write_artifact_stream", {
                    "test_run_id": self.run_id, "handle": opened["handle"], "offset": offset,
                    "chunk_base64": base64.b64encode(chunk).decode("ascii")}, timeout=120)
                offset += len(chunk)
        return self.client.request("close_artifact_stream", {
            "test_run_id": self.run_id, "handle": opened["handle"], "sha256": digest.hexdigest()}, timeout=120)

    # --- the end ------------------------------------------------------------------------------

    def finish(self, conclusion: Optional[str], wait_s: float = 30.0, say: Optional[Any] = None,
               notice_after: float = 2.0) -> Optional[Dict[str, Any]]:
        """Drain, then complete the run with ``conclusion`` unless it was joined; the final TestRun
        (None for a joined run). Raises what went wrong while reporting. When the wait for delivery
        lasts longer than ``notice_after`` seconds, ``say(line)`` is told what is being waited for."""
        self.drain()
        if self.problem is not None:
            raise ReportingError(str(self.problem)) from self.problem
        if self.joined:
            return None
        params: Dict[str, Any] = {"test_run_id": self.run_id, "wait": True, "wait_s": wait_s}
        if conclusion:
            params["conclusion"] = conclusion
        try:
            fut = self.client.send_request("complete_test_run", params)
            deadline = time.monotonic() + wait_s + 30
            if say is not None:
                try:
                    fut.result(notice_after)
                except FutureTimeout:
                    line = describe_wait(self.client, self.run_id, wait_s - notice_after)
                    if line:
                        say("ci-sidecar: " + line)
            run = fut.result(max(0.0, deadline - time.monotonic()))
        except (ConnectionLost, RpcError, FutureTimeout) as exc:
            raise ReportingError("cannot complete run %s: %s" % (self.run_id, exc)) from exc
        self.run = run
        return run

    def close(self) -> None:
        """End the session (a spawned daemon exits; the run's output stays on disk)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        try:
            self.client.close(timeout=30)
        finally:
            _close_quietly(self._daemon_log)


def _tail(log_file: Any, limit: int = 600) -> str:
    """The end of a spawned daemon's log, as ``" (daemon said: ...)"``, or ""."""
    if log_file is None:
        return ""
    try:
        log_file.seek(0, os.SEEK_END)
        size = log_file.tell()
        log_file.seek(max(0, size - limit))
        text = log_file.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""
    return " (daemon said: %s)" % text.replace("\n", " | ") if text else ""


def _close_quietly(f: Any) -> None:
    if f is not None:
        try:
            f.close()
        except OSError:
            pass
