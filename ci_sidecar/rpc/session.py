"""One connection = one session: framing, lifecycle gate, concurrent dispatch, cancellation, replies.

The reader decides everything that depends on arrival order (lifecycle state, cancellation scopes,
per-run tickets) synchronously, then runs each request in its own task under a per-session limit.
Replies and server notifications go through one bounded channel to a single writer task.
Nothing raised here may escape the session: one bad client never affects another.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import METHODS, LogMessageParams, MethodSpec
from ci_sidecar.transport.framing import FrameParser, FrameReader, FramingError, encode_frame

from .call import Call, Handler, _as_protocol_error, _incident, runs_inline
from .envelope import (
    JSON_ERRORS,
    Invalid,
    Request,
    decode_message,
    encode_error,
    encode_result,
    json_error_reason,
    params_error,
)
from .ordering import Ticket
from .unknown_fields import finder_for, with_warnings

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["Session", "Call", "Handler", "runs_inline"]  # Call, Handler and runs_inline live in .call

log = logging.getLogger("ci_sidecar.rpc")

_MAX_IN_FLIGHT = 32
_OUTBOX_FRAMES = 256
_OUT_HIGH_WATER = 1 << 20  # queued reply bytes beyond which senders wait for the flush
_STOP_GRACE_S = 3.0
#: requests per JSON-RPC batch: its replies are held until all are ready, so this bounds their memory
MAX_BATCH = 100
#: socket connections only (stdio lives as long as its parent): from a header's first byte to its end,
#: and from connecting to ``initialize`` (both at most the abandon timeout)
HEADER_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 60.0


class _RunKey(msgspec.Struct):
    test_run_id: Any = None


_decode_run_key = msgspec.json.Decoder(_RunKey).decode
_encode = msgspec.json.encode


class Session:
    """A client connection (stdio or one socket connection)."""

    def __init__(self, daemon: SessionHost, stream: trio.abc.HalfCloseableStream | trio.StapledStream,
                 *, transport: str, peer: str = "", peer_uid: int | None = None) -> None:
        self.daemon = daemon
        self.stream = stream
        self.transport = transport
        self.peer = peer
        self.peer_uid = peer_uid  # the connecting user (SO_PEERCRED); None on stdio
        self.id = uuid.uuid4().hex[:12]
        self.warned_fields: set[tuple[str, str]] = set()  # (method, field path) already warned about
        self.state = "new"  # new → ready → shut
        self.shutdown_received = False
        self.exit_received = False
        #: the client is gone or said ``exit``: the session only finishes what it had started
        self.ended = False
        # set by initialize: the client's world, kept in memory only
        self.client_name: str | None = None
        self.env: dict[str, str] | None = None
        self.cwd: str | None = None
        self.config: dict[str, Any] | None = None
        self.ci: Any = None
        self.process_id: int | None = None
        self.context: Any = None  # service-layer per-session object (set by initialize)
        self._inflight: dict[Any, trio.CancelScope] = {}
        self._limiter = trio.CapacityLimiter(_MAX_IN_FLIGHT)
        self._send, self._recv = trio.open_memory_channel[bytes](_OUTBOX_FRAMES)
        self._out: list[bytes] = []  # framed replies waiting for the current flusher
        self._unsent = 0  # bytes queued or being written (backpressure counts both)
        self._gone = False  # a write failed: the peer is gone
        self._flushing = False
        self._flushed = trio.Event()
        self._cancel_reader = trio.CancelScope()
        self._background: list[trio.CancelScope] = []  # watchers that live as long as the session
        self._nursery: trio.Nursery | None = None
        self._reader: FrameReader | None = None
        self._fresh = False  # the message being handled came with a read (not from the buffer)

    # --- outgoing ---------------------------------------------------------------------------

    async def send_raw(self, body: bytes) -> None:
        """Queue one message for the connection and make sure it gets written.

        Whoever finds no write in progress becomes the flusher and writes everything queued, in
        order, in as few syscalls as possible (replies that became ready together go out together).
        Backpressure: while the bytes queued or being written exceed the high-water mark, a sender
        waits before queueing. Requests keep their in-flight slot until their reply is queued, so a
        client that does not read its replies fills its own slots and its reader stops taking new
        messages: memory stays bounded, and only that client slows down.
        """
        while self._unsent > _OUT_HIGH_WATER and self._flushing and not self._gone:
            await self._flushed.wait()
        if self._gone:
            return  # the connection is gone; what it asked for is recorded, the answer has nowhere to go
        frame = encode_frame(body)
        self._out.append(frame)
        self._unsent += len(frame)
        if not self._flushing:
            await self._flush()

    def _hold(self, body: bytes) -> bool:
        """Queue a reply the reader produced itself without writing it yet, when the next request is
        already received: the replies to pipelined requests then go out together, in one write, just
        before the reader waits for input again. False (nothing queued) past the high-water mark."""
        if self._gone or self._reader is None or not self._reader.mid_frame or self._unsent > _OUT_HIGH_WATER:
            return False
        frame = encode_frame(body)
        self._out.append(frame)
        self._unsent += len(frame)
        return True

    async def _flush(self) -> None:
        """Write everything queued, in order; the caller found no write in progress."""
        self._flushing = True
        try:
            while self._out and not self._gone:
                chunk = b"".join(self._out)
                self._out.clear()
                try:
                    await self.stream.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self._gone = True
                    self._cancel_reader.cancel()  # the connection is gone; the work it asked for is recorded
                finally:
                    self._unsent -= len(chunk)
                    self._wake_senders()
        finally:
            if self._gone:
                self._out.clear()
                self._unsent = 0
            self._flushing = False
            self._wake_senders()

    def _wake_senders(self) -> None:
        self._flushed.set()
        self._flushed = trio.Event()

    async def notify(self, method: str, params: Any) -> None:
        """Send a server→client notification."""
        body = b'{"jsonrpc":"2.0","method":' + _encode(method) + b',"params":' + _encode(params) + b"}"
        await self.send_raw(body)

    def log_nowait(self, type_: int, message: str) -> None:
        """``window/logMessage`` from outside a request (e.g. the outbox); dropped if the client lags."""
        params = LogMessageParams(type=type_, message=message)  # type: ignore[arg-type]
        body = b'{"jsonrpc":"2.0","method":"window/logMessage","params":' + _encode(params) + b"}"
        try:
            self._send.send_nowait(body)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _writer(self) -> None:
        """Sends what was queued without waiting (``log_nowait``)."""
        async with self._recv:
            async for body in self._recv:
                await self.send_raw(body)

    # --- main loop --------------------------------------------------------------------------

    def end(self) -> None:
        """Stop reading new messages; in-flight requests still get their answers."""
        self._cancel_reader.cancel()

    async def run(self) -> None:
        """Serve the connection until EOF, ``exit``, a framing error or daemon stop."""
        daemon = self.daemon
        parser = FrameParser(max_header_bytes=daemon.config.max_header_bytes,
                             max_body_bytes=daemon.config.max_body_bytes)
        socket = self.transport == "socket"
        quiet_s = daemon.config.abandon_timeout_s
        reader = self._reader = FrameReader(self.stream, parser, min(HEADER_TIMEOUT_S, quiet_s) if socket else None)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                with self._cancel_reader:
                    try:
                        while True:
                            body = reader.buffered()
                            if body is None:
                                if self._out and not self._flushing:
                                    await self._flush()  # replies held while pipelined requests were read
                                body = await self._receive(reader) if socket else await reader.receive()
                                self._fresh = True
                            if body is None:
                                break
                            daemon.touch()
                            await self._on_message(body, nursery)
                            if self.exit_received:
                                break
                    except FramingError as exc:
                        log.warning("session %s: framing error: %s", self.id, exc.reason)
                        await self.send_raw(encode_error(None, E.ParseError(exc.reason)))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        log.info("session %s: connection lost: %s", self.id, exc)
                self.ended = True  # at once: a status read by another session after this one's exit counts it gone
                if self._out and not self._flushing:
                    await self._flush()
                await self._drain_inflight()
                await self._send.aclose()  # the writer sends what is queued, then ends
                for scope in self._background:
                    scope.cancel()
        except Exception:  # never let one connection take the daemon down
            log.exception("session %s crashed", self.id)
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                try:
                    await self.stream.aclose()
                except Exception:
                    pass

    async def _receive(self, reader: FrameReader) -> bytes | None:
        """The next message of a socket session, or ``None`` at EOF or once the connection sat idle
        (nothing received, no request running) past its limit: HANDSHAKE_TIMEOUT_S until
        ``initialize``, then the abandon timeout (a session may stay quiet as long as a run may)."""
        quiet_s = self.daemon.config.abandon_timeout_s
        while True:
            limit = min(HANDSHAKE_TIMEOUT_S, quiet_s) if self.state == "new" else quiet_s
            with trio.move_on_after(limit):
                return await reader.receive()
            if self._inflight or reader.mid_frame:
                continue  # waiting on the daemon is not idling; a slow header has its own timeout
            log.info("session %s: idle for %g s: closing the connection", self.id, limit)
            self.daemon.count("idle_closed")
            if self._unsent:  # replies the peer does not read: closing wakes their writer
                self._gone = True
                await self.stream.aclose()
            return None

    async def _drain_inflight(self) -> None:
        """Let in-flight requests finish; on daemon stop, cancel what outlives the grace period."""
        if not self._inflight:
            return
        grace = _STOP_GRACE_S if self.daemon.stopping else self.daemon.request_drain_s
        with trio.move_on_after(grace):
            while self._inflight:
                await trio.sleep(0.01)
        for scope in list(self._inflight.values()):
            scope.cancel()
        with trio.move_on_after(1.0):
            while self._inflight:
                await trio.sleep(0.01)

    # --- dispatch ---------------------------------------------------------------------------

    async def _on_message(self, body: bytes, nursery: trio.Nursery) -> None:
        decoded = decode_message(body, MAX_BATCH)
        if isinstance(decoded, E.WireError):
            await self.send_raw(encode_error(None, decoded))
            return
        is_batch, elements = decoded
        if not is_batch:
            await self._start(elements[0], nursery, into=None)
            return
        replies: list[bytes] = []
        pending: list[Any] = []
        for element in elements:
            pending.append(await self._start(element, nursery, into=replies))
        nursery.start_soon(self._finish_batch, [p for p in pending if p is not None], replies)

    async def _finish_batch(self, events: list[trio.Event], replies: list[bytes]) -> None:
        for ev in events:
            await ev.wait()
        if replies:  # an all-notification batch gets no reply at all
            await self.send_raw(b"[" + b",".join(replies) + b"]")

    async def _reply(self, body: bytes, into: list[bytes] | None) -> None:
        if into is None:
            await self.send_raw(body)
        else:
            into.append(body)

    async def _start(self, element: Request | Invalid, nursery: trio.Nursery,
                     into: list[bytes] | None) -> trio.Event | None:
        """Gate one element in arrival order and start it; returns an event set when it replied."""
        if isinstance(element, Invalid):
            await self._reply(encode_error(element.id, element.error), into)
            return None
        req = element
        spec = METHODS.get(req.method)
        handler = self.daemon.handlers.get(req.method)
        if spec is not None and spec.debug_only and not self.daemon.debug_methods:
            spec = handler = None

        if req.is_notification:
            await self._on_notification(req, spec, handler)
            return None

        # lifecycle gate (arrival order)
        refusal: E.WireError | None = None
        if self.state == "new" and req.method != "initialize":
            refusal = E.ServerNotInitialized()
        elif self.state == "ready" and req.method == "initialize":
            refusal = E.InvalidRequest("initialize was already received")
        elif self.state == "shut":
            refusal = E.InvalidRequest("request after shutdown")
        elif spec is None or handler is None or spec.notification:
            refusal = E.MethodNotFound(req.method)
        if refusal is not None:
            self.daemon.count("errors")
            await self._reply(encode_error(req.id, refusal), into)
            return None

        try:
            params = self.daemon.decoders[req.method](req.params or b"{}")
        except msgspec.ValidationError as exc:
            self.daemon.count("errors")
            await self._reply(encode_error(req.id, params_error(exc)), into)
            return None
        except msgspec.DecodeError as exc:
            await self._reply(encode_error(req.id, E.InvalidParams("$", str(exc))), into)
            return None
        except (UnicodeDecodeError, RecursionError) as exc:  # bad bytes or nesting inside params
            self.daemon.count("errors")
            await self._reply(encode_error(req.id, E.ParseError(json_error_reason(exc))), into)
            return None

        warnings = self._unknown_field_warnings(req.method, spec.params, req.params)
        if getattr(handler, "runs_inline", False) and not spec.run_scoped:
            if self._fresh:  # just received: first let other sessions take what arrived in the same step
                self._fresh = False  # (an exit, say), as a task started a step later would
                await trio.lowlevel.checkpoint()
            body = self._run_inline(handler, req, params, warnings)
            if into is not None or not self._hold(body):
                await self._reply(body, into)
            return None
        if req.method == "initialize":
            # run inline: every later message of this session depends on its outcome
            await self._run(spec, handler, req, params, None, into, None, warnings=warnings)
            return None
        if req.method == "shutdown":
            self.state = "shut"

        ticket: Ticket | None = None
        if spec.run_scoped:
            run_id = getattr(params, "test_run_id", None)
            if isinstance(run_id, str):
                ticket = self.daemon.run_gate.ticket(run_id)

        scope = trio.CancelScope()
        self._inflight[req.id] = scope
        done = trio.Event()
        try:
            self._limiter.acquire_on_behalf_of_nowait(done)
        except trio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(done)  # full: the reader waits (backpressure)
        nursery.start_soon(functools.partial(self._run, spec, handler, req, params, scope, into, ticket, done,
                                             warnings=warnings))
        return done

    def _unknown_field_warnings(self, method: str, params_type: type, raw: bytes | None) -> list[str]:
        """Fields of the params the method does not know (typos lose data): said once per session per field,
        in ``window/logMessage`` and in the answer's ``warnings``."""
        if not raw or raw == b"{}":
            return []
        new = []
        for path, hint in finder_for(params_type).find(raw):
            if (method, path) not in self.warned_fields:
                self.warned_fields.add((method, path))
                message = f"{method}: unknown field {path!r} ignored" + (f" (did you mean {hint!r}?)" if hint else "")
                self.log_nowait(2, message)
                new.append(message)
        return new

    async def _run(self, spec: MethodSpec, handler: Handler, req: Request, params: Any,
                   scope: trio.CancelScope | None, into: list[bytes] | None,
                   ticket: Ticket | None, done: trio.Event | None = None, *, warnings: list[str] = ()) -> None:
        token = getattr(params, "workDoneToken", None)
        call = Call(self, req.id, token, ticket)
        body: bytes
        try:
            with scope or trio.CancelScope():
                if ticket is not None:
                    async with ticket:
                        result = await handler(call, params)
                else:
                    result = await handler(call, params)
                body = encode_result(req.id, with_warnings(_encode(result), list(warnings)))
            if scope is not None and scope.cancelled_caught:
                body = encode_error(req.id, E.RequestCancelled())
            self.daemon.count("requests")
        except Exception as exc:
            self.daemon.count("errors")
            body = encode_error(req.id, _as_protocol_error(exc, req.method))
        finally:
            if ticket is not None:
                ticket.release()
            if scope is not None and self._inflight.get(req.id) is scope:
                del self._inflight[req.id]
        try:
            if scope is not None and scope.cancelled_caught and token is not None:
                await call.progress("end", "cancelled")
            await self._reply(body, into)
        finally:
            # the slot is held until the reply is queued: unread replies hold the reader back
            if done is not None:
                self._limiter.release_on_behalf_of(done)
                done.set()

    def _run_inline(self, handler: Handler, req: Request, params: Any, warnings: list[str]) -> bytes:
        """The reply of a :func:`runs_inline` handler, run to its end here (the coroutine never suspends)."""
        coro = handler(Call(self, req.id, None), params)
        try:
            coro.send(None)  # type: ignore[attr-defined]
        except StopIteration as stop:
            try:
                body = encode_result(req.id, with_warnings(_encode(stop.value), list(warnings)))
            except Exception as exc:
                self.daemon.count("errors")
                return encode_error(req.id, _as_protocol_error(exc, req.method))
            self.daemon.count("requests")
            return body
        except Exception as exc:
            self.daemon.count("errors")
            return encode_error(req.id, _as_protocol_error(exc, req.method))
        coro.close()  # type: ignore[attr-defined]
        self.daemon.count("errors")
        return encode_error(req.id, _incident(RuntimeError("a handler marked runs_inline awaited"), req.method))

    async def _on_notification(self, req: Request, spec: MethodSpec | None, handler: Handler | None) -> None:
        method = req.method
        if method == "exit":
            self.exit_received = True
            return
        if self.state == "new":
            return  # LSP: notifications before initialize are dropped (except exit)
        if method == "$/cancelRequest":
            try:
                rid = msgspec.json.decode(req.params or b"{}", type=dict).get("id")
            except JSON_ERRORS:
                return
            scope = self._inflight.get(rid)
            if scope is not None:
                scope.cancel()
            return
        if method == "initialized" or spec is None or handler is None or not spec.notification:
            return  # unknown notifications, and $/… ones, may be ignored
        try:
            params = self.daemon.decoders[method](req.params or b"{}")
            await handler(Call(self, None, None), params)
        except Exception as exc:
            log.warning("notification %s failed: %s", method, exc)

    # --- helpers for handlers ---------------------------------------------------------------

    def start_background(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` until the session ends (e.g. a watcher of the client's process)."""
        if self._nursery is None:
            return

        scope = trio.CancelScope()
        self._background.append(scope)

        async def guarded() -> None:
            with scope:
                await fn(*args)

        self._nursery.start_soon(guarded)
