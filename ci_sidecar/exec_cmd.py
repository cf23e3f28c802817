"""``ci-sidecar exec`` — the zero-code way in: wrap any test command in a run.

Starts a private daemon (or uses the one at ``$CI_SIDECAR_SOCKET`` when it answers), creates a run,
exports ``CI_SIDECAR_SOCKET`` and ``CI_SIDECAR_RUN_ID`` to the command, runs it with its output passing
through, ingests the JUnit files it wrote, completes the run from its exit status, prints a summary,
and exits with the command's status.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ci_sidecar.exec_signals import Interrupted, SignalGate, exit_status
from ci_sidecar_client import Client, ConnectionLost, DaemonNotFound, RpcError

__all__ = ["add_exec_command", "run_exec"]

_NOTICE_AFTER_S = 2.0  # a wait for delivery longer than this is explained on stderr
_CLOSE_TIMEOUT_S = 2.0  # how long the session's shutdown may take once the run is complete


def add_exec_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exec", help="run a test command inside a run: ingest its JUnit, report, exit with its status")
    p.add_argument("--junit", action="append", default=[], metavar="GLOB",
                   help="JUnit/xUnit files the command writes (repeatable)")
    p.add_argument("--name", help="run name (default: the command line)")
    p.add_argument("--fail-on-undelivered", action="store_true",
                   help="exit 1 when a provider write is still pending or failed at the end")
    p.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for deliveries at the end")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=run_exec)


class PrivateDaemon:
    """A daemon on a short private socket path, stopped when the wrapped command is done.

    It runs in its own session, so the terminal's Ctrl-C reaches exec and the command, not the daemon
    (exec still needs it to complete the run); and it exits by itself shortly after its last session
    ends, so an exec that is killed outright leaves no daemon behind.
    """

    IDLE_EXIT_S = 2.0

    def __init__(self, gate: SignalGate) -> None:
        self.dir = tempfile.mkdtemp(prefix="cis-", dir="/tmp")  # short: sun_path is 108 bytes
        self.path = os.path.join(self.dir, "s.sock")
        # the daemon's log goes to a file, not a pipe: nobody reads a pipe while the command runs, and a
        # full one (64 KiB, a few hundred sessions) would block the daemon's event loop mid-run
        self.log_path = os.path.join(self.dir, "daemon.log")
        with open(self.log_path, "wb") as log:
            self.proc = gate.popen(
                [sys.executable, "-m", "ci_sidecar", "serve", "--socket", self.path,
                 "--idle-timeout", str(self.IDLE_EXIT_S)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )

    def connect(self, timeout: float = 15.0) -> Client:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DaemonNotFound(f"the daemon exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                return Client.connect(self.path, client_name="ci-sidecar-exec")
            except (DaemonNotFound, ConnectionLost, OSError):
                # a daemon dying at start-up resets the connection: the next turn reports its log instead
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - limit))
                return fh.read().decode(errors="replace").strip()
        except OSError:
            return ""


def _say(msg: str) -> None:
    print(f"ci-sidecar: {msg}", file=sys.stderr, flush=True)


def _notice(line: str | None) -> None:
    if line:
        _say(line + " (--wait-s)")


class _WarningRelay:
    """The daemon's warnings to this session (a provider it cannot reach, retries) reach the user,
    until the summary is out (what the session's end waits for is exec's business, not the user's)."""

    active = True

    def __call__(self, method: str, params: Any) -> None:
        if self.active and method == "window/logMessage" and isinstance(params, dict) and params.get("type", 4) <= 2:
            _say(str(params.get("message")))


def _live_progress(client: Client, run_id: str, stop: threading.Event) -> None:
    """passed/failed/skipped so far, redrawn on one stderr line while the command runs (terminals only)."""
    last = ""
    while not stop.wait(0.5):
        try:
            c = client.request("get_test_run_status", {"test_run_id": run_id}, timeout=5)["counts"]
        except Exception:  # noqa: BLE001 - progress is best effort
            return
        line = f"{c['passed']} passed, {c['failed'] + c['errors']} failed, {c['skipped']} skipped so far"
        if line != last:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
            last = line
    if last:
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()


def run_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        _say("usage: ci-sidecar exec [--junit GLOB] [--name NAME] -- COMMAND ARGS...")
        return 2
    with SignalGate(_say) as gate:
        status = _run_exec(args, cmd, gate)
    return 128 + gate.signum if gate.signum else status


def _run_exec(args: argparse.Namespace, cmd: list[str], gate: SignalGate) -> int:
    daemon: PrivateDaemon | None = None
    socket_path = os.environ.get("CI_SIDECAR_SOCKET")
    client: Client | None = None
    if socket_path:
        try:
            client = Client.connect(socket_path, client_name="ci-sidecar-exec")
        except (DaemonNotFound, OSError):
            client = None
    try:
        if client is None:
            daemon = PrivateDaemon(gate)
            socket_path = daemon.path
            client = daemon.connect()
        return _exec_with(client, socket_path, cmd, args, gate)
    except (DaemonNotFound, ConnectionLost, RpcError) as exc:
        _say(str(exc))
        return 1
    finally:
        # deliveries already had --wait-s in complete_test_run; a session shutdown would flush them again
        # (up to 20 s). The private daemon is stopped first (what is still pending stays journaled), so the
        # session simply ends; a shared daemon gets a shutdown with a short deadline.
        if daemon is not None:
            daemon.stop()
        if client is not None:
            client.close(timeout=_CLOSE_TIMEOUT_S)


def _exec_with(client: Client, socket_path: str | None, cmd: list[str], args: argparse.Namespace,
               gate: SignalGate) -> int:
    name = args.name or shlex.join(cmd)
    relay = _WarningRelay()
    client.on_notification(relay)
    run = client.request("create_test_run", {"name": name})
    run_id = run["id"]
    env = dict(os.environ, CI_SIDECAR_SOCKET=socket_path or "", CI_SIDECAR_RUN_ID=run_id)
    stop = threading.Event()
    progress = None
    if sys.stderr.isatty():
        progress = threading.Thread(target=_live_progress, args=(client, run_id, stop), daemon=True)
        progress.start()
    try:
        status = exit_status(gate.wait_child(gate.popen(cmd, env=env)))
    except FileNotFoundError:
        _say(f"command not found: {cmd[0]}")
        status = 127
    except PermissionError:
        _say(f"command not executable: {cmd[0]}")
        status = 126
    finally:
        stop.set()
        if progress is not None:
            progress.join(2)

    errors: list[dict[str, Any]] = []
    for pattern in args.junit:
        try:
            res = client.request("ingest_junit", {"test_run_id": run_id, "path": pattern})
            errors += res["errors"]
            if res["files"] == 0 and res["skipped_files"] == 0:
                _say(f"no JUnit files match {pattern}")
        except RpcError as exc:
            _say(f"could not ingest {pattern}: {exc.message}")
    for err in errors:
        where = f"{err['file']}:{err['line']}" if err.get("line") else err["file"]
        _say(f"JUnit problem in {where}: {err['message']}")

    counts = client.request("get_test_run_status", {"test_run_id": run_id})["counts"]
    if gate.signum:
        conclusion = "cancelled"
    else:
        conclusion = "failure" if status != 0 or counts["failed"] or counts["errors"] else "success"
    from ci_sidecar_client._reporting import describe_wait

    completing = client.send_request("complete_test_run", {"test_run_id": run_id, "conclusion": conclusion,
                                                          "wait": True, "wait_s": args.wait_s})
    try:
        done = gate.result(completing, args.wait_s + 30, notice_after=_NOTICE_AFTER_S,
                           notice=lambda: _notice(describe_wait(client, run_id, args.wait_s - _NOTICE_AFTER_S)))
    except Interrupted as exc:
        # the run is complete once journaled; only the wait for the provider is given up
        _say(f"received {exc} again: not waiting for deliveries (they stay journaled)")
        client.cancel(completing)
        done = client.request("get_test_run_status", {"test_run_id": run_id}, timeout=10)
    job_log = _job_log_format((client.initialize_result or {}).get("ci", {}), done["counts"])
    if job_log is not None:  # e.g. GitHub's workflow commands: the annotation tier that needs no token
        rendered = client.request("render_report", {"test_run_id": run_id, "format": job_log})
        sys.stdout.write(Path(rendered["path"]).read_text())
        sys.stdout.flush()
    args.completed_run = done  # for `ci-sidecar demo`, which must tell "a test failed" from "no run"
    relay.active = False
    _summary(done)
    undelivered = done["delivery"]["pending"] + done["delivery"]["failed"]
    if args.fail_on_undelivered and undelivered:
        return 1
    return status


def _job_log_format(ci: dict[str, Any], counts: dict[str, int]) -> str | None:
    """The report format the session's CI provider wants in the job's log (its ``WritesJobLog`` capability)."""
    import msgspec

    from ci_sidecar.protocol.records import CIContext
    from ci_sidecar.providers import Providers
    from ci_sidecar.providers.base import WritesJobLog

    try:
        context = msgspec.convert(ci, CIContext)
    except msgspec.ValidationError:
        return None
    writer = Providers().capable(context.provider, WritesJobLog)
    return writer.job_log_format(context, counts) if writer is not None else None


def _summary(run: dict[str, Any]) -> None:
    c = run["counts"]
    parts = [f"{c['passed']} passed", f"{c['failed']} failed"]
    if c["errors"]:
        parts.append(f"{c['errors']} errors")
    parts.append(f"{c['skipped']} skipped")
    if c["flaky"]:
        parts.append(f"{c['flaky']} flaky")
    _say(f"run {run['name']!r}: {run['conclusion']}: " + ", ".join(parts))
    out = run.get("output_dir")
    if out:
        _say(f"report: {Path(out) / 'report.html'}")
    for t in run["targets"]:
        state = (t.get("delivery") or {}).get("state")
        if t["provider"] != "local":
            note = f" ({t['note']})" if t.get("note") else ""
            _say(f"{t['provider']}: {t['kind']}{note}, {state or 'not attempted'}")
    d = run["delivery"]
    if d["pending"] or d["failed"]:
        _say(f"undelivered: {d['pending']} pending, {d['failed']} failed" +
             (f" (last error: {d['last_error']})" if d.get("last_error") else ""))
