"""The daemon: one trio nursery owning the listeners, sessions, signal handling, idle timer and the
services' background tasks. Sessions share the daemon's state.

Stop sequence (SIGTERM, SIGINT, ``sidecar/stop``, stdio ``exit``): stop accepting, let sessions finish
in-flight requests for a short grace period, cancel what remains (those answer -32800), let services
flush under a deadline, then return the exit code. The whole sequence is bounded to stay under 5 s.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgspec
import trio

from ci_sidecar.config import Config
from ci_sidecar.protocol.errors import InvalidRequest
from ci_sidecar.protocol.methods import METHODS
from ci_sidecar.transport.framing import encode_frame
from ci_sidecar.transport.unix import peer_credentials

from .envelope import encode_error
from .lifecycle import lifecycle_handlers
from .ordering import KeyedGate
from .session import Handler, Session

__all__ = ["Daemon", "Service"]

log = logging.getLogger("ci_sidecar.daemon")

_STOP_BUDGET_S = 4.5
#: notifications the session itself handles (no handler function)
SESSION_NATIVE = frozenset({"initialized", "exit", "$/cancelRequest"})


class Service(Protocol):
    """A layer that serves methods and may run background tasks for the daemon's lifetime."""

    def handlers(self) -> dict[str, Handler]: ...

    async def run(self, task_status: trio.TaskStatus[None]) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


class Daemon:
    """Shared state of all sessions plus the serving loop.

    How it serves (idle timeout, frame limits, state dir) comes from its ``Config``, command-line flags being
    that configuration's top layer; only what no configuration may set is an argument: ``debug_methods``
    (``sidecar/debug/*``, for tests).
    """

    #: how long a disconnected session's in-flight requests may still run
    request_drain_s = 30.0

    def __init__(self, config: Config, services: Iterable[Service] = (), *, debug_methods: bool = False) -> None:
        self.config = config
        self.debug_methods = debug_methods
        #: only our own uid may connect, unless systemd owns the socket (its mode and group decide then)
        self.check_peer_uid = True
        #: the soft open-files limit in force (0: unknown), set by whoever raised it
        self.fd_limit = 0
        self.services = list(services)
        self.handlers: dict[str, Handler] = dict(lifecycle_handlers())
        for service in self.services:
            self.handlers.update(service.handlers())
        unknown = set(self.handlers) - set(METHODS)
        if unknown:
            raise RuntimeError(f"handlers without a method spec: {sorted(unknown)}")
        self.decoders: dict[str, Callable[[bytes], Any]] = {
            name: msgspec.json.Decoder(METHODS[name].params).decode for name in self.handlers
        }
        self.run_gate = KeyedGate()
        self.sessions: set[Session] = set()
        self.counters: Counter[str] = Counter()
        self.started = time.monotonic()
        self.transport = "none"
        self.stopping = False
        self.exit_code = 0
        self._stop = trio.Event()
        self._accept_scope = trio.CancelScope()
        self._last_activity = time.monotonic()
        self._connections = 0  # socket connections open (sessions, and peers being checked or refused)

    # --- bookkeeping ------------------------------------------------------------------------

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def touch(self) -> None:
        """Record activity (pushes the idle timeout back)."""
        self._last_activity = time.monotonic()

    @property
    def max_connections(self) -> int:
        """Socket connections served at once: half the open-files limit, at most 1,024, so
        descriptors stay for the state, deliveries and artifact streams."""
        return max(16, min(1024, (self.fd_limit or 1024) // 2))

    def served_methods(self) -> list[str]:
        """Methods this daemon answers (debug methods only with --debug-methods)."""
        names = set(self.handlers) | SESSION_NATIVE
        return sorted(n for n in names if self.debug_methods or not METHODS[n].debug_only)

    def request_stop(self, exit_code: int | None = None) -> None:
        """Begin the stop sequence (idempotent; the first exit code given wins)."""
        if not self.stopping and exit_code is not None:
            self.exit_code = exit_code
        self.stopping = True
        self._stop.set()

    # --- serving ----------------------------------------------------------------------------

    async def serve(self, accept: Callable[[trio.Nursery], Awaitable[None]] | None,
                    *, on_ready: Callable[[], None] | None = None) -> int:
        """Run services, then ``accept`` (which starts sessions) until a stop is requested."""
        async with trio.open_nursery() as root:
            for service in self.services:
                await root.start(service.run)
            root.start_soon(self._watch_signals)
            if self.config.idle_timeout_s > 0:
                root.start_soon(self._watch_idle)
            async with trio.open_nursery() as sessions:
                self._sessions_nursery = sessions
                if accept is not None:
                    await accept(sessions)
                if on_ready is not None:
                    on_ready()
                await self._stop.wait()
                log.info("stopping: %d session(s) open", len(self.sessions))
                self._accept_scope.cancel()
                with trio.move_on_after(_STOP_BUDGET_S - 1.0) as cs:
                    for session in list(self.sessions):
                        session.end()
                    while self.sessions:
                        await trio.sleep(0.01)
                if cs.cancelled_caught:
                    sessions.cancel_scope.cancel()
            with trio.move_on_after(1.0):
                for service in self.services:
                    await service.close()
            root.cancel_scope.cancel()
        return self.exit_code

    async def run_session(self, stream: Any, *, transport: str, peer: str = "",
                          peer_uid: int | None = None) -> Session:
        session = Session(self, stream, transport=transport, peer=peer, peer_uid=peer_uid)
        self.sessions.add(session)
        self.count("sessions_total")
        self.touch()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.touch()
            for service in self.services:
                ended = getattr(service, "session_ended", None)
                if ended is not None:
                    ended(session)
        return session

    async def serve_stdio(self, stream: Any, *, on_ready: Callable[[], None] | None = None) -> int:
        """Serve one session on stdio; the daemon ends with it (LSP exit codes)."""
        self.transport = "stdio"

        async def accept(nursery: trio.Nursery) -> None:
            async def one() -> None:
                session = await self.run_session(stream, transport="stdio")
                self.request_stop(0 if session.shutdown_received else 1)
            nursery.start_soon(one)

        return await self.serve(accept, on_ready=on_ready)

    async def serve_listeners(self, listeners: list[trio.SocketListener], *,
                              on_ready: Callable[[], None] | None = None) -> int:
        """Serve every connection on the listeners as its own session until stopped."""
        self.transport = "socket"

        async def listen(sessions: trio.Nursery) -> None:
            with self._accept_scope:
                async with trio.open_nursery() as loops:
                    for listener in listeners:
                        loops.start_soon(self._accept_loop, listener, sessions)

        async def accept(sessions: trio.Nursery) -> None:
            sessions.start_soon(listen, sessions)

        return await self.serve(accept, on_ready=on_ready)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while not self.stopping:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: back off instead of dying
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            nursery.start_soon(self._connection, stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self._connections += 1
        try:
            if self._connections > self.max_connections:
                log.warning("refused a connection: %d open, the limit is %d", self._connections - 1,
                            self.max_connections)
                self.count("refused_connections")
                await self._refuse(stream, f"too many connections (the limit is {self.max_connections}); "
                                           "try again later")
                return
            try:
                cred = peer_credentials(stream.socket)
            except OSError:
                cred = None
            if self.check_peer_uid and cred is not None and cred.uid != os.geteuid():
                log.warning("refused connection from uid %d (pid %d): only uid %d may connect",
                            cred.uid, cred.pid, os.geteuid())
                self.count("refused_peers")
                await self._refuse(stream, f"peer uid {cred.uid} is not allowed to connect")
                return
            peer = f"pid={cred.pid} uid={cred.uid}" if cred else ""
            await self.run_session(stream, transport="socket", peer=peer, peer_uid=cred.uid if cred else None)
        finally:
            self._connections -= 1

    @staticmethod
    async def _refuse(stream: trio.SocketStream, reason: str) -> None:
        """Answer one -32600 with ``id: null`` and close (bounded: the peer may not read)."""
        with trio.move_on_after(1.0):
            try:
                await stream.send_all(encode_frame(encode_error(None, InvalidRequest(reason))))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        await stream.aclose()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received %s: stopping", signal.Signals(signum).name)
                self.request_stop(0)

    async def _watch_idle(self) -> None:
        timeout = self.config.idle_timeout_s
        while True:
            await trio.sleep(min(1.0, timeout / 4))
            idle_for = time.monotonic() - self._last_activity
            busy = self.sessions and self.transport != "stdio"
            if not busy and idle_for >= timeout:
                log.info("idle for %.0f s: stopping", idle_for)
                self.request_stop(0)
                return

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for service in self.services:
            out.update(service.status())
        return out
