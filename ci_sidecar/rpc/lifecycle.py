"""Handlers of the lifecycle and daemon methods: initialize, shutdown, status, stop, discover, debug sleep."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import msgspec
import trio

from ci_sidecar import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, __version__
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import (
    InitializeParams,
    InitializeResult,
    InstanceStatus,
    NoParams,
    RaiseParams,
    ServerInfo,
    SleepParams,
    SleepResult,
    StatusResult,
)
from ci_sidecar.protocol.openrpc import openrpc_document
from ci_sidecar.protocol.records import Capabilities, CIContext, DeliverySummary

from .session import Call, Handler, runs_inline

__all__ = ["lifecycle_handlers"]

log = logging.getLogger("ci_sidecar.rpc")

_PID_POLL_S = 1.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


async def _watch_process(call: Call, pid: int) -> None:
    """LSP: when the client's process dies, a stdio daemon exits and a socket session ends."""
    session = call.session
    while not session.exit_received:
        await trio.sleep(_PID_POLL_S)
        if not _pid_alive(pid):
            log.info("session %s: client process %d is gone", session.id, pid)
            if session.transport == "stdio":
                session.daemon.request_stop(0 if session.shutdown_received else 1)
            session.end()
            return


async def initialize(call: Call, p: InitializeParams) -> InitializeResult:
    session = call.session
    if p.protocolVersion not in SUPPORTED_PROTOCOL_VERSIONS:
        raise E.InvalidRequest(
            f"protocolVersion {p.protocolVersion} is not supported", supported=list(SUPPORTED_PROTOCOL_VERSIONS)
        )
    session.client_name = p.clientInfo.name if p.clientInfo else None
    session.cwd = p.cwd
    session.env = p.env
    session.config = p.config
    ci = CIContext(provider="local", sources={})
    caps = Capabilities(methods=session.daemon.served_methods())
    for service in session.daemon.services:
        hook = getattr(service, "session_started", None)
        if hook is not None:
            ci, caps = await hook(session, ci, caps)
    session.ci = ci
    if p.processId is not None:
        if _pid_alive(p.processId):
            session.process_id = p.processId
            session.start_background(_watch_process, call, p.processId)
        else:
            # under systemd's ProtectProc the client's pid may be invisible: don't end the session for it
            log.info("session %s: processId %d not visible; not watching it", session.id, p.processId)
    session.state = "ready"
    log.info("session %s initialized (client %s, %s)", session.id, session.client_name, session.transport)
    return InitializeResult(
        serverInfo=ServerInfo(name="ci-sidecar", version=__version__), protocolVersion=PROTOCOL_VERSION, ci=ci, capabilities=caps
    )


async def shutdown(call: Call, p: NoParams) -> DeliverySummary:
    session = call.session
    session.shutdown_received = True
    summary = DeliverySummary(pending=0, failed=0)
    for service in session.daemon.services:
        flush = getattr(service, "flush_session", None)
        if flush is not None:
            s = await flush(session)
            summary.pending += s.pending
            summary.failed += s.failed
            summary.last_error = s.last_error or summary.last_error
            summary.undelivered = summary.undelivered + s.undelivered
            summary.kept_in = s.kept_in or summary.kept_in
    return summary


@runs_inline
async def status(call: Call, p: NoParams) -> StatusResult:
    daemon = call.daemon
    extra = daemon.status()
    return StatusResult(
        version=__version__,
        protocolVersion=PROTOCOL_VERSION,
        pid=os.getpid(),
        uptime=round(time.monotonic() - daemon.started, 3),
        transport=daemon.transport,
        sessions=sum(1 for s in daemon.sessions if not s.ended),
        runs=extra.get("runs", 0),
        outbox=extra.get("outbox", {"pending": 0, "failed": 0}),
        providers=extra.get("providers", {}),
        counters=dict(daemon.counters),
        state_dir=daemon.config.state_dir,
        instance_dir=extra.get("instance_dir"),
        instances=msgspec.convert(extra.get("instances", []), list[InstanceStatus]),
        groups=extra.get("groups", {}),
    )


async def stop(call: Call, p: NoParams) -> None:
    # the stop sequence lets this reply go out first: it drains in-flight requests
    call.daemon.request_stop(0)
    return None


@runs_inline
async def discover(call: Call, p: NoParams) -> dict[str, Any]:
    return openrpc_document(call.daemon.served_methods())


async def debug_sleep(call: Call, p: SleepParams) -> SleepResult:
    start = time.monotonic()
    if p.print_stdout:
        print("stray output from a handler", flush=True)  # must land on stderr, never in the protocol
    await call.progress("begin", title="sleeping", message=f"sleeping {p.seconds} s", percentage=0)
    await call.log(3, f"sidecar/debug/sleep: sleeping {p.seconds} s")
    steps = max(1, min(10, int(p.seconds / 0.1)))
    for i in range(steps):
        await trio.sleep(p.seconds / steps)
        await call.progress("report", percentage=int(100 * (i + 1) / steps))
    await call.progress("end", message="done")
    return SleepResult(slept=round(time.monotonic() - start, 3))


async def debug_raise(call: Call, p: RaiseParams) -> None:
    raise RuntimeError(p.message)


def lifecycle_handlers() -> dict[str, Handler]:
    return {
        "initialize": initialize,
        "shutdown": shutdown,
        "sidecar/status": status,
        "sidecar/stop": stop,
        "rpc.discover": discover,
        "sidecar/debug/sleep": debug_sleep,
        "sidecar/debug/raise": debug_raise,
    }
