"""``ci-sidecar call``, ``ci-sidecar wait`` and ``serve --background``: the shell-script way in.

Each prints one line on failure (never a traceback) and exits non-zero, so ``set -e`` scripts stop
where it went wrong. Every wait has a deadline the user chose (``--timeout``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

__all__ = ["add_call_command", "add_wait_command", "start_in_background", "wait_for_socket"]


def _say(prog: str, msg: str) -> None:
    sys.stderr.write(f"ci-sidecar {prog}: {msg}\n")
    sys.stderr.flush()


def add_call_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="send one request to a running daemon and print the result as JSON")
    p.add_argument("method")
    p.add_argument("params", nargs="?", default=None, help="JSON params, or - to read them from stdin")
    p.add_argument("--socket", metavar="PATH", default=None, help="daemon socket (default: $CI_SIDECAR_SOCKET)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds the whole call may take: connecting, the answer and the session's end")
    p.add_argument("--get", metavar="FIELD",
                   help="print only this field of the result (dotted path, e.g. id or counts.failed), as plain text")
    p.set_defaults(func=_cmd_call)


def add_wait_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wait", help="wait until a daemon accepts connections on its socket")
    p.add_argument("--socket", metavar="PATH", default=None, help="daemon socket (default: $CI_SIDECAR_SOCKET)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p.set_defaults(func=_cmd_wait)


def _pick(result: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(result, dict) and part in result:
            result = result[part]
        elif isinstance(result, list) and part.isdigit() and int(part) < len(result):
            result = result[int(part)]
        else:
            raise KeyError(path)
    return result


def _cmd_call(args: argparse.Namespace) -> int:
    from concurrent.futures import TimeoutError as FutureTimeout

    from ci_sidecar_client import Client, ConnectionLost, DaemonNotFound, RpcError

    params: Any = None
    raw = sys.stdin.read() if args.params == "-" else args.params
    if raw is not None and raw.strip():
        try:
            params = json.loads(raw)
        except json.JSONDecodeError as exc:
            _say("call", f"params are not valid JSON: {exc}")
            return 2
    deadline = time.monotonic() + args.timeout

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    client = None
    stage = "connecting"
    try:
        client = Client.connect(args.socket, timeout=left(), initialize_timeout=left(), client_name="ci-sidecar-call")
        stage = f"waiting for the answer to {args.method}"
        result = client.request(args.method, params, timeout=left())
    except RpcError as exc:
        err: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            err["data"] = exc.data
        sys.stderr.write(json.dumps({"error": err}) + "\n")
        return 1
    except (FutureTimeout, TimeoutError, socket.timeout):
        _say("call", f"timed out after {args.timeout:g} s {stage} (--timeout)")
        return 1
    except (DaemonNotFound, ConnectionLost, OSError) as exc:
        _say("call", str(exc) or type(exc).__name__)
        return 1
    finally:
        if client is not None:
            # the session's end flushes its writes: bounded by what is left of --timeout
            client.close(timeout=max(left(), 0.1))
    if args.get:
        try:
            value = _pick(result, args.get)
        except KeyError:
            _say("call", f"the result of {args.method} has no field {args.get!r}")
            return 1
        sys.stdout.write((value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)) + "\n")
        return 0
    sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


def wait_for_socket(path: str, timeout: float, proc: subprocess.Popen | None = None) -> str | None:
    """Wait until ``path`` accepts a connection; None when it does, else why not (one line)."""
    deadline = time.monotonic() + timeout
    last = "the socket does not exist yet"
    while True:
        if proc is not None and proc.poll() is not None:
            return f"the daemon exited with status {proc.returncode}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                s.connect(path)
                return None
            except FileNotFoundError:
                last = "the socket does not exist yet"
            except OSError as exc:
                last = exc.strerror or str(exc)
        if time.monotonic() >= deadline:
            return f"nothing accepts connections at {path} after {timeout:g} s ({last})"
        time.sleep(0.02)


def _socket_arg(path: str | None) -> str:
    from ci_sidecar import paths

    return path or paths.default_socket_path()


def _cmd_wait(args: argparse.Namespace) -> int:
    path = _socket_arg(args.socket)
    why = wait_for_socket(path, args.timeout)
    if why is not None:
        _say("wait", why)
        return 1
    return 0


def start_in_background(args: argparse.Namespace, argv: list[str]) -> int:
    """``serve --background``: start the same daemon detached, return once its socket accepts.

    The daemon's log goes to ``--log-file``, else ``<socket>.log`` beside the socket (a background
    process must not write into the terminal or the job log of whoever started it).
    """
    if args.stdio:
        _say("serve", "--background needs a socket, not --stdio")
        return 2
    path = os.path.abspath(_socket_arg(args.socket or None))
    log_file = os.path.abspath(args.log_file) if args.log_file else path + ".log"
    if wait_for_socket(path, 0) is None:
        _say("serve", f"a daemon already serves {path} (stop it with `ci-sidecar call sidecar/stop --socket {path}`)")
        return 1
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    child = [a for a in argv if a != "--background"]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ci_sidecar", *child, "--socket", path, "--log-file", log_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    why = wait_for_socket(path, args.ready_timeout, proc)
    if why is not None:
        if proc.poll() is None:
            proc.terminate()
        _say("serve", f"{why}; log: {log_file}" + _tail(log_file))
        return 1
    sys.stderr.write(f"ci-sidecar: serving on {path} (pid {proc.pid}, log {log_file})\n")
    return 0


def _tail(log_file: str, limit: int = 600) -> str:
    try:
        with open(log_file, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - limit))
            lines = fh.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""
