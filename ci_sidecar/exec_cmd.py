"""``ci-sidecar exec`` — the zero-code way in: wrap any test command in a run.

Joins the daemon at ``$CI_SIDECAR_SOCKET`` or the default socket when one answers (the test machine's
service), else starts a private one (``--private`` always does); creates a run, exports
``CI_SIDECAR_SOCKET`` and ``CI_SIDECAR_RUN_ID`` to the command, runs it with its output passing through,
ingests the JUnit files it wrote, completes the run from its exit status, waits for the writes up to the
flush timeout, prints a summary and what was not delivered, and exits with the command's status.

Nothing the sidecar does keeps the command from running: when no daemon can be started or reached, or the
daemon is lost while the command runs, the command runs (on) anyway, stderr says why, and the exit status
is the command's (``--strict``: a failure).
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
import time
from collections.abc import Awaitable
from functools import partial
from pathlib import Path
from typing import Any, Callable

import trio

from ci_sidecar.exec_signals import Interrupted, SignalGate, child_exit, exit_status
from ci_sidecar_client import Client, ConnectionLost, DaemonNotFound, RpcError

from ci_sidecar.exec_delivery import report_undelivered, say as _say, wait_for_delivery
from ci_sidecar.exec_stream import JobLogPrinter, start_job_log
from ci_sidecar.service.flush import SHUTDOWN_NOTICE_PREFIX

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
    p.add_argument("--wait-s", type=float, default=None,
                   help="how long to wait for deliveries at the end (default: flush_timeout_s, 60 s)")
    p.add_argument("--private", action="store_true",
                   help="always start a daemon of our own (default: join the one at $CI_SIDECAR_SOCKET or the "
                        "default socket when it answers)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 (or the command's failure status) when no daemon could be used; the command "
                        "still runs")
    p.add_argument("--shard", metavar="I/N", type=_shard,
                   help="this is shard I of N (1-based, like GitLab's 3/8) of one logical run: the shards' results "
                        "merge through the object store into one published run (docs/shards.md)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=run_exec)


def _shard(text: str) -> dict[str, int]:
    """``I/N`` → the run's ``group`` (shard numbers count from 0 on the wire)."""
    from ci_sidecar.protocol.methods import MAX_SHARDS

    i, _, n = text.partition("/")
    if not (i.isascii() and n.isascii() and i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n) <= MAX_SHARDS):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N <= {MAX_SHARDS}, got {text!r}")
    return {"shard": int(i) - 1, "total": int(n)}


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
                # --idle-timeout: if exec itself is killed, the daemon ends once its session is gone
                [sys.executable, "-m", "ci_sidecar", "serve", "--socket", self.path, "--role", "exec",
                 "--idle-timeout", str(self.IDLE_EXIT_S)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )

    def connect(self, timeout: float = 15.0, config: dict[str, Any] | None = None) -> Client:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DaemonNotFound(f"the daemon exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                return Client.connect(self.path, client_name="ci-sidecar-exec", config=config)
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



def _notice(line: str | None) -> None:
    if line:
        _say(line + " (--wait-s)")


class _WarningRelay:
    """The daemon's warnings to this session (a provider it cannot reach, retries) reach the user,
    until the summary is out (what the session's end waits for is exec's business, not the user's: exec
    explains that wait itself, so the daemon's notice about it is not repeated)."""

    active = True

    def __call__(self, method: str, params: Any) -> None:
        if self.active and method == "window/logMessage" and isinstance(params, dict) and params.get("type", 4) <= 2:
            message = str(params.get("message"))
            if not message.startswith(SHUTDOWN_NOTICE_PREFIX):
                _say(message)


async def _live_progress(client: Client, run_id: str) -> None:
    """passed/failed/skipped so far, redrawn on one stderr line while the command runs (terminals only)."""
    last = ""
    try:
        while True:
            await trio.sleep(0.5)
            try:
                # the answer only feeds this line: a cancelled wait may leave the request to finish alone
                status = await trio.to_thread.run_sync(partial(
                    client.request, "get_test_run_status", {"test_run_id": run_id}, timeout=5), abandon_on_cancel=True)
                c = status["counts"]
            except Exception:  # noqa: BLE001 - progress is best effort
                return
            line = f"{c['passed']} passed, {c['failed'] + c['errors']} failed, {c['skipped']} skipped so far"
            if line != last:
                sys.stderr.write("\r\x1b[2K" + line)
                sys.stderr.flush()
                last = line
    finally:
        if last:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def _run_command(cmd: list[str], gate: SignalGate, *alongside: Callable[[], Awaitable[None]],
                 env: dict[str, str] | None = None) -> int:
    """Run the command and wait for it in a nursery that forwards signals to it and runs the *alongside* tasks
    (progress line, job-log stream), all cancelled once it has exited; its exit status (127/126 when it
    cannot be started)."""
    try:
        proc = gate.popen(cmd, env=env)
    except FileNotFoundError:
        _say(f"command not found: {cmd[0]}")
        return 127
    except PermissionError:
        _say(f"command not executable: {cmd[0]}")
        return 126

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            for task in (partial(gate.forward, proc), *alongside):
                nursery.start_soon(_best_effort, task)
            returncode = await child_exit(proc)
            nursery.cancel_scope.cancel()
        return returncode

    return exit_status(trio.run(main))


async def _best_effort(task: Callable[[], Awaitable[None]]) -> None:
    """*task*, whose failure is told on stderr and ends only itself: waiting for the command goes on."""
    try:
        await task()
    except Exception as exc:  # noqa: BLE001 - nothing beside the command may cut it loose
        name = getattr(getattr(task, "func", task), "__qualname__", "a task")
        _say(f"{name} stopped while the command runs: {_reason(exc)}")


def run_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        _say("usage: ci-sidecar exec [--junit GLOB] [--name NAME] -- COMMAND ARGS...")
        return 2
    flush_s = _flush_timeout(args)
    with SignalGate(_say) as gate:
        status = _run_exec(args, cmd, gate, flush_s)
    return 128 + gate.signum if gate.signum else status


def _run_exec(args: argparse.Namespace, cmd: list[str], gate: SignalGate, flush_s: float) -> int:
    daemon: PrivateDaemon | None = None
    client: Client | None = None
    try:
        try:
            client, socket_path, daemon = _open_sidecar(args, flush_s, gate)
            relay = _WarningRelay()  # before the run exists: creating it starts the first provider writes
            client.on_notification(relay)
            create: dict[str, Any] = {"name": args.name or shlex.join(cmd)}
            if getattr(args, "shard", None):  # (the demo builds its own arguments)
                create["group"] = args.shard
            try:
                run = client.request("create_test_run", create)
            except RpcError as exc:  # reached, but it would not create this run (a group without a store...)
                return _run_alone(cmd, f"the ci-sidecar daemon refused the run: {_reason(exc)}", args, gate)
            run_id = run["id"]
        except (DaemonNotFound, ConnectionLost, RpcError, OSError) as exc:
            return _run_alone(cmd, f"no ci-sidecar daemon could be started or reached: {_reason(exc)}", args, gate)
        # a CI whose log carries test results (TeamCity) gets them printed as they arrive
        printer = start_job_log((client.initialize_result or {}).get("ci", {}), run, socket_path)
        return _exec_with(client, socket_path, run_id, cmd, args, flush_s, gate, relay, joined=daemon is None,
                          printer=printer)
    finally:
        # the session was shut down (its writes flushed) by _exec_with; what is still pending stays in the
        # daemon's state. The private daemon is stopped first, so the session simply ends.
        if daemon is not None:
            daemon.stop()
        if client is not None:
            client.close(timeout=_CLOSE_TIMEOUT_S)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1] if len(text) > 400 else text


def _flush_timeout(args: argparse.Namespace) -> float:
    """``--wait-s``, else the ``flush_timeout_s`` setting (the same files and variables the session reads)."""
    if getattr(args, "wait_s", None) is not None:
        return float(args.wait_s)
    from ci_sidecar.config import ConfigError, load_config

    try:
        return load_config(env=dict(os.environ), cwd=os.getcwd()).config.flush_timeout_s
    except (ConfigError, OSError):
        return 60.0  # the daemon reports the configuration error itself


def _candidates() -> list[str]:
    """Sockets of running daemons to join: ``$CI_SIDECAR_SOCKET``, then the default socket path."""
    from ci_sidecar.paths import default_socket_path

    out = []
    if os.environ.get("CI_SIDECAR_SOCKET"):
        out.append(os.environ["CI_SIDECAR_SOCKET"])
    default = default_socket_path({k: v for k, v in os.environ.items() if k != "CI_SIDECAR_SOCKET"})
    if default not in out:
        out.append(default)
    return out


def _open_sidecar(args: argparse.Namespace, flush_s: float,
                  gate: SignalGate) -> tuple[Client, str, PrivateDaemon | None]:
    """A session with a running daemon (the test machine's service) or, if none answers or ``--private``,
    with a daemon of our own. Raises what kept both from working."""
    config = _session_config(flush_s)
    if not getattr(args, "private", False):
        for path in _candidates():
            if not os.path.exists(path):
                continue
            try:
                return Client.connect(path, client_name="ci-sidecar-exec", config=config), path, None
            except (DaemonNotFound, ConnectionLost, RpcError, OSError):
                continue  # a stale socket file, or a daemon that refuses us: start our own
    daemon = PrivateDaemon(gate)
    try:
        return daemon.connect(config=config), daemon.path, daemon
    except BaseException:
        daemon.stop()
        raise


def _session_config(flush_s: float) -> dict[str, Any]:
    """exec's session settings: its wait at the end, and that it prints the CI provider's job-log stream itself
    (exec_stream), so the provider need not send it as well."""
    return {"flush_timeout_s": flush_s, "job_log": "client"}


def _run_alone(cmd: list[str], why: str, args: argparse.Namespace, gate: SignalGate) -> int:
    """The command without the sidecar: nothing the sidecar does may keep a test suite from running."""
    strict = getattr(args, "strict", False)
    _say(f"{why}; running the command without it (nothing will be reported)"
         + ("; --strict: exec fails even if the command passes" if strict else ""))
    return _strict_status(_run_command(cmd, gate), args)  # signals reach it as with a daemon


def _strict_status(status: int, args: argparse.Namespace) -> int:
    return (status or 1) if getattr(args, "strict", False) else status


def _exec_with(client: Client, socket_path: str, run_id: str, cmd: list[str], args: argparse.Namespace,
               flush_s: float, gate: SignalGate, relay: _WarningRelay, *, joined: bool,
               printer: JobLogPrinter | None = None) -> int:
    env = dict(os.environ, CI_SIDECAR_SOCKET=socket_path, CI_SIDECAR_RUN_ID=run_id)
    alongside: list[Callable[[], Awaitable[None]]] = []
    if sys.stderr.isatty():
        alongside.append(partial(_live_progress, client, run_id))
    if printer is not None:
        alongside.append(printer.follow)
    status = _run_command(cmd, gate, *alongside, env=env)
    rejoined: Client | None = None
    try:
        try:
            return _report(client, socket_path, joined, run_id, status, args, flush_s, gate, relay, printer)
        except (ConnectionLost, TimeoutError) as exc:
            # a joined daemon (the machine's service) that restarted while the command ran recovered the run
            # from its state: finish it through the new one, once
            rejoined = _rejoin(socket_path, flush_s, relay) if joined else None
            if rejoined is None:
                raise
            _say(f"the ci-sidecar daemon went away while the command ran ({_reason(exc)}); finishing the run "
                 "through the daemon now at that socket")
            return _report(rejoined, socket_path, joined, run_id, status, args, flush_s, gate, relay, printer)
    except (ConnectionLost, TimeoutError) as exc:
        # the command ran; only the reporting is lost (a daemon killed under us keeps its state for the next)
        _say(f"lost the ci-sidecar daemon after the command ran ({_reason(exc)}); what it recorded stays in its "
             f"state for the next daemon; exiting with the command's status {status}")
        return _strict_status(status, args)
    except RpcError as exc:
        _say(f"the ci-sidecar daemon refused to finish the run ({exc.message}); exiting with the command's "
             f"status {status}")
        return _strict_status(status, args)
    finally:
        if rejoined is not None:
            rejoined.close(timeout=_CLOSE_TIMEOUT_S)


def _rejoin(socket_path: str, flush_s: float, relay: _WarningRelay) -> Client | None:
    """A new session with the daemon now at *socket_path*, or None when none answers."""
    try:
        client = Client.connect(socket_path, client_name="ci-sidecar-exec", config=_session_config(flush_s))
    except (DaemonNotFound, ConnectionLost, RpcError, OSError):
        return None
    client.on_notification(relay)
    return client


def _report(client: Client, socket_path: str, joined: bool, run_id: str, status: int, args: argparse.Namespace,
            flush_s: float, gate: SignalGate, relay: _WarningRelay, printer: JobLogPrinter | None = None) -> int:
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
    done = client.request("complete_test_run", {"test_run_id": run_id, "conclusion": conclusion})
    if printer is not None:
        printer.drain()  # the results the JUnit files added, and any the stream had not reached yet
    job_log = _job_log_format((client.initialize_result or {}).get("ci", {}), done["counts"])
    if job_log is not None:  # e.g. GitHub's workflow commands: the annotation tier that needs no token
        rendered = client.request("render_report", {"test_run_id": run_id, "format": job_log})
        sys.stdout.write(Path(rendered["path"]).read_text())
        sys.stdout.flush()
    # the end of the job: wait for this session's writes (the run's final state among them) up to the flush
    # timeout, showing what is pending, then say exactly what was not delivered and where it is kept
    # and, once it lasts _NOTICE_AFTER_S, one line saying what it waits for and why. A signal stops the wait;
    # exec then exits 128+N. This session is shut down: questions go through a session of their own.
    from ci_sidecar_client._reporting import describe_wait

    try:
        delivery = wait_for_delivery(client, flush_s, lambda fut, timeout: gate.result(
            fut, timeout, notice_after=_NOTICE_AFTER_S,
            notice=lambda: _notice(_side_session(socket_path, lambda reader: describe_wait(
                reader, run_id, flush_s - _NOTICE_AFTER_S), None))))
    except Interrupted as exc:
        _say(f"received {exc}: not waiting for deliveries any more")
        delivery = _delivery_now(socket_path, run_id)
    done["delivery"] = delivery
    if printer is not None:
        printer.finish(done)  # after the wait: the artifacts it publishes are staged by now
    args.completed_run = done  # for `ci-sidecar demo`, which must tell "a test failed" from "no run"
    relay.active = False
    _summary(done)
    report_undelivered(delivery, joined=socket_path if joined else None)
    undelivered = delivery["pending"] + delivery["failed"]
    if args.fail_on_undelivered and undelivered:
        return 1
    return status


def _side_session(socket_path: str, ask: Callable[[Client], Any], otherwise: Any) -> Any:
    """``ask(client)`` in a short session of its own (exec's session is shut down while it waits for the
    writes; the daemon is still up), or ``otherwise`` when that fails."""
    try:
        reader = Client.connect(socket_path, client_name="ci-sidecar-exec")
        try:
            return ask(reader)
        finally:
            reader.close(timeout=_CLOSE_TIMEOUT_S)
    except (DaemonNotFound, ConnectionLost, RpcError, OSError) as exc:
        _say(f"could not ask the daemon: {_reason(exc)}")
        return otherwise


def _delivery_now(socket_path: str, run_id: str) -> dict[str, Any]:
    """The run's undelivered writes as they are now."""
    return _side_session(socket_path, lambda reader: reader.request(
        "get_test_run_status", {"test_run_id": run_id}, timeout=10)["delivery"], {"pending": 0, "failed": 0})


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
    left = {(u["provider"], u["target"]): u["state"] for u in run["delivery"].get("undelivered", [])}
    for t in run["targets"]:
        if t["provider"] != "local":
            state = left.get((t["provider"], f"run:{run['id']}"), "delivered")
            note = f" ({t['note']})" if t.get("note") else ""
            _say(f"{t['provider']}: {t['kind']}{note}, {state}")
    d = run["delivery"]
    if d["pending"] or d["failed"]:
        _say(f"undelivered: {d['pending']} pending, {d['failed']} failed" +
             (f" (last error: {d['last_error']})" if d.get("last_error") else ""))
