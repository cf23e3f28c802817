"""The client: LSP framing over a Unix socket or a spawned daemon's stdio, one reader thread that
routes replies to waiting callers, so any number of threads may have requests in flight at once."""

import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # the builtin TimeoutError only from 3.11
from typing import Any, Callable, Dict, List, Optional, Sequence

from ._methods import Methods

__all__ = ["Client", "RpcError", "ConnectionLost", "DaemonNotFound", "default_socket_path"]

PROTOCOL_VERSION = 1
_MAX_HEADER = 8 * 1024


class RpcError(Exception):
    """A JSON-RPC error answer: ``code``, ``message`` and ``data`` as the daemon sent them."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class ConnectionLost(Exception):
    """The daemon went away (exited, crashed, closed the socket) before answering."""


class DaemonNotFound(Exception):
    """No daemon listens at the socket path, or the ci-sidecar command is not installed."""


def default_socket_path(env: Optional[Dict[str, str]] = None) -> str:
    """``$CI_SIDECAR_SOCKET``, else the daemon's default (``$XDG_RUNTIME_DIR/ci-sidecar/ci-sidecar.sock``)."""
    env = os.environ if env is None else env
    if env.get("CI_SIDECAR_SOCKET"):
        return env["CI_SIDECAR_SOCKET"]
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "ci-sidecar", "ci-sidecar.sock")
    return os.path.join("/tmp", "runtime-%d" % os.getuid(), "ci-sidecar", "ci-sidecar.sock")


def _default_serve_argv() -> List[str]:
    """This interpreter's ``ci_sidecar`` when importable, else ``ci-sidecar`` on PATH (the daemon needs
    Python >= 3.11, so a 3.9 test environment usually has it installed elsewhere, e.g. with pipx)."""
    if importlib.util.find_spec("ci_sidecar") is not None:
        return [sys.executable, "-m", "ci_sidecar", "serve", "--stdio"]
    return [shutil.which("ci-sidecar") or "ci-sidecar", "serve", "--stdio"]


class _Channel:
    """A byte channel: read_exact/readline-ish primitives plus send_all."""

    def __init__(self, rfile: Any, wfile: Any, closer: Callable[[], None]) -> None:
        self._r = rfile
        self._w = wfile
        self._close = closer

    def read_frame(self) -> Optional[bytes]:
        length = None
        seen = 0
        while True:
            line = self._r.readline(_MAX_HEADER)
            if not line:
                if seen:
                    raise ConnectionLost("connection closed inside a header")
                return None
            seen += len(line)
            if seen > _MAX_HEADER:
                raise ConnectionLost("header too large")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise ConnectionLost("frame without Content-Length")
        body = self._r.read(length)
        if body is None or len(body) < length:
            raise ConnectionLost("connection closed inside a message")
        return body

    def send(self, body: bytes) -> None:
        self._w.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self._w.flush()

    def close(self) -> None:
        self._close()


class Client(Methods):
    """A session with the daemon. Use :meth:`connect` or :meth:`spawn`; close with :meth:`close`.

    Every daemon method is a typed method too (``c.create_test_run(name="unit")``, results typed by the
    TypedDicts in ``ci_sidecar_client.types``); :meth:`request` reaches any method by name.

    ``initialize_timeout`` bounds the wait for the answer to ``initialize`` (default: no bound).
    """

    def __init__(self, channel: _Channel, *, process: Optional[subprocess.Popen] = None,
                 initialize: bool = True, client_name: str = "ci-sidecar-client-python",
                 config: Optional[Dict[str, Any]] = None, initialize_timeout: Optional[float] = None) -> None:
        self._ch = channel
        self._process = process
        self._ids = itertools.count(1)
        self._pending: Dict[Any, Future] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._lost: Optional[BaseException] = None
        self.notifications: List[Dict[str, Any]] = []
        self._listeners: List[Callable[[str, Any], None]] = []
        self.initialize_result: Optional[Dict[str, Any]] = None
        #: the run to join: set by ``ci-sidecar exec`` for the commands it wraps
        self.run_id: Optional[str] = os.environ.get("CI_SIDECAR_RUN_ID") or None
        self._reader = threading.Thread(target=self._read_loop, name="ci-sidecar-client-reader", daemon=True)
        self._reader.start()
        if initialize:
            params: Dict[str, Any] = {
                "protocolVersion": PROTOCOL_VERSION,
                "clientInfo": {"name": client_name},
                "processId": os.getpid(),
                "cwd": os.getcwd(),
                "env": dict(os.environ),
            }
            if config:
                params["config"] = config
            try:
                self.initialize_result = self.request("initialize", params, timeout=initialize_timeout)
                self.notify("initialized", {})
            except BaseException:
                self._closed = True
                self._ch.close()  # the reader thread ends with the channel
                raise

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def connect(cls, path: Optional[str] = None, *, timeout: float = 5.0, **kwargs: Any) -> "Client":
        """Connect to a running daemon's Unix socket (default: ``$CI_SIDECAR_SOCKET``)."""
        path = path or default_socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonNotFound(
                "no ci-sidecar daemon at %s (%s); start one with `ci-sidecar serve --socket %s`" % (path, exc.strerror, path)
            ) from None
        sock.settimeout(None)
        rfile = sock.makefile("rb")
        wfile = sock.makefile("wb")

        def close() -> None:
            # shut the socket down first: it wakes a reader blocked in rfile, whose lock close() needs
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            for f in (wfile, rfile):
                try:
                    f.close()
                except OSError:
                    pass
            sock.close()

        return cls(_Channel(rfile, wfile, close), **kwargs)

    @classmethod
    def spawn(cls, argv: Optional[Sequence[str]] = None, *, env: Optional[Dict[str, str]] = None,
              stderr: Any = None, **kwargs: Any) -> "Client":
        """Start ``ci-sidecar serve --stdio`` (or ``argv``) and talk over its stdin/stdout."""
        argv = list(argv or _default_serve_argv())
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                    env=env)
        except FileNotFoundError:
            raise DaemonNotFound("cannot start %s: command not found (install ci-sidecar from a checkout: "
                                 "`pip install .` in a venv, or `pipx install .`)" % argv[0]) from None

        def close() -> None:
            for f in (proc.stdin, proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass

        return cls(_Channel(proc.stdout, proc.stdin, close), process=proc, **kwargs)

    # --- messaging ----------------------------------------------------------------------------

    def on_notification(self, callback: Callable[[str, Any], None]) -> None:
        """Call ``callback(method, params)`` for every server notification ($/progress, window/logMessage)."""
        self._listeners.append(callback)

    def _send(self, message: Dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        with self._write_lock:
            if self._lost is not None:
                raise ConnectionLost(str(self._lost))
            try:
                self._ch.send(body)
            except (OSError, ValueError) as exc:
                raise ConnectionLost("cannot send to the daemon: %s" % exc) from None

    def send_request(self, method: str, params: Any = None) -> "Future[Any]":
        """Send a request without waiting; the Future resolves to the result or raises RpcError."""
        rid = next(self._ids)
        fut: "Future[Any]" = Future()
        with self._lock:
            if self._lost is not None:
                raise ConnectionLost(str(self._lost))
            self._pending[rid] = fut
        message: Dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        fut.request_id = rid  # type: ignore[attr-defined]
        try:
            self._send(message)
        except BaseException:
            with self._lock:
                self._pending.pop(rid, None)
            raise
        return fut

    def request(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Send a request and wait for its result; a JSON-RPC error raises :class:`RpcError`."""
        return self.send_request(method, params).result(timeout)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer)."""
        message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def cancel(self, future: "Future[Any]") -> None:
        """Ask the daemon to cancel the request behind ``future`` (it answers -32800)."""
        self.notify("$/cancelRequest", {"id": future.request_id})  # type: ignore[attr-defined]

    def _read_loop(self) -> None:
        error: BaseException = ConnectionLost("the daemon closed the connection")
        try:
            while True:
                body = self._ch.read_frame()
                if body is None:
                    break
                self._on_body(body)
        except BaseException as exc:  # noqa: BLE001 - any failure ends the session
            error = exc if isinstance(exc, ConnectionLost) else ConnectionLost(str(exc))
        if self._process is not None:
            try:
                code = self._process.wait(timeout=5)
                if not self._closed:
                    error = ConnectionLost("the daemon exited with code %s" % code)
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            self._lost = error
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(str(error)))

    def _on_body(self, body: bytes) -> None:
        msg = json.loads(body)
        for item in msg if isinstance(msg, list) else [msg]:
            if "method" in item and "id" not in item:
                self.notifications.append(item)
                for cb in list(self._listeners):
                    try:
                        cb(item["method"], item.get("params"))
                    except Exception:  # noqa: BLE001 - a callback must not kill the reader
                        pass
                continue
            with self._lock:
                fut = self._pending.pop(item.get("id"), None)
            if fut is None:
                if item.get("id") is None and "error" in item:
                    # an error about the connection itself (framing, refused peer)
                    err = item["error"]
                    with self._lock:
                        self._lost = RpcError(err.get("code"), err.get("message"), err.get("data"))
                continue
            if "error" in item:
                err = item["error"]
                fut.set_exception(RpcError(err.get("code"), err.get("message", ""), err.get("data")))
            else:
                fut.set_result(item.get("result"))

    # --- closing ------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> Optional[Dict[str, Any]]:
        """``shutdown`` (flushing this session's writes), then ``exit``; returns the delivery summary."""
        if self._closed:
            return None
        summary = None
        try:
            if self._lost is None:
                try:
                    summary = self.request("shutdown", timeout=timeout)
                finally:
                    self.notify("exit")  # even when shutdown was refused (e.g. never initialized)
        except (ConnectionLost, RpcError, FutureTimeout):
            pass
        finally:
            self._closed = True
            if self._process is not None:
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
            else:
                # the daemon closes the connection once it has ended the session: wait (briefly) for that
                self._reader.join(timeout=min(timeout, 5.0))
            self._ch.close()
            self._reader.join(timeout=5)
        return summary

    @property
    def returncode(self) -> Optional[int]:
        """Exit code of a spawned daemon once it exited."""
        return None if self._process is None else self._process.poll()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
