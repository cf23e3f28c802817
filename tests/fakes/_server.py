"""The fake kit: what every fake provider API needs, so a new fake is only its routes and its state.

A fake is a :class:`FakeServer` subclass: a real HTTP/1.1 server on 127.0.0.1 (``ThreadingHTTPServer`` in a
thread) that records every request, and answers in three steps a subclass fills in:

1. :meth:`FakeServer.gate` — what the vendor checks before anything happens (credentials, the request against
   the official spec via :meth:`FakeServer.check_spec`); an answer here ends the request;
2. a fault, when one is queued (:meth:`FakeServer.inject`) or rolled (``fault_rate`` with seeded, optionally
   per-resource dice): 429 and 5xx answers, a connection reset before the change, or a **lost answer** —
   the change is made and the response is never sent, which is what makes a retry duplicate things; a queued
   ``held`` fault makes the change and holds the answer back (``held`` lists those requests) until
   :meth:`FakeServer.release_held`, so a test can kill its client between the two;
3. :meth:`FakeServer.respond` — the real thing, under the fake's lock.

Spec violations are collected in ``violations`` (the test fails on any it did not announce with
:meth:`FakeServer.expect_violations`). :class:`RateLimit` counts requests per token for ``x-ratelimit-*``
headers, and the ``page_*`` helpers slice a list the way each vendor paginates.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .spec import OpenApiSpec, Route

__all__ = ["FakeServer", "Reply", "Drop", "Recorded", "Fault", "FaultDice", "LoopbackServer", "RateLimit",
           "GENERIC_FAULTS", "WRITES", "page_link", "page_number_header", "page_token", "page_json_next"]

#: what every fake can inject: an answer (429, 5xx), a reset before the change, a lost answer after it
GENERIC_FAULTS = ("429", "500", "502", "503", "reset", "lost")
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class Recorded:
    """One request as the fake saw it (``raw`` only while it is answered, unless the fake keeps bodies)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0  # -1: no answer was sent (reset or lost)
    operation: str | None = None
    raw: bytes = b""
    chunked: bool = False
    params: dict[str, str] = field(default_factory=dict)  # path parameters of the matched spec route


@dataclass
class Reply:
    """An answer: ``body`` is JSON-encoded unless it is ``bytes`` (sent as ``content_type``)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", self.content_type
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        return json.dumps(self.body).encode(), self.content_type or "application/json; charset=utf-8"


class Drop(Exception):
    """Raised by a hook: close the connection without an answer."""


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``kind`` instead of the real thing.

    ``method`` matches the HTTP method or the fake's operation name; ``path`` is a regex searched in the path.
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int = 1
    retry_after: int | None = 7
    #: also send ``Retry-After`` with a 5xx (random faults: a fast test without touching the retry policy)
    retry_after_on_5xx: bool = False
    random: bool = False

    def matches(self, rec: Recorded) -> bool:
        return (self.method is None or self.method in (rec.method, rec.operation)) and (
            self.path is None or re.search(self.path, rec.path) is not None)


class FaultDice:
    """Seeded random faults: one sequence for all requests, or (``per_resource``) decided per resource, where
    the n-th request for one resource gets the same answer however concurrent deliveries interleave — a seed
    then replays through a real daemon."""

    def __init__(self, seed: int, per_resource: bool = False) -> None:
        self.seed = seed
        self.per_resource = per_resource
        self._rng = random.Random(seed)
        self._seen: dict[str, int] = {}

    def roll(self, resource: str, rate: float, kinds: list[str]) -> str | None:
        """The fault kind for this request of ``resource`` (None: answer it properly)."""
        rng = self._rng
        if self.per_resource:
            n = self._seen[resource] = self._seen.get(resource, 0) + 1
            rng = random.Random(f"{self.seed}|{resource}|{n}")
        return rng.choice(kinds) if rng.random() < rate else None


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that takes a client hanging up (a timeout, a closed pool) quietly."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class RateLimit:
    """``x-ratelimit-*`` headers from a per-token request count (the fake does not refuse on its own)."""

    def __init__(self, limit: int = 5000, resource: str = "core") -> None:
        self.limit, self.resource = limit, resource
        self.used: dict[str, int] = {}

    def headers(self, token: str) -> dict[str, str]:
        used = self.used[token] = self.used.get(token, 0) + 1
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(max(0, self.limit - used)),
                "x-ratelimit-used": str(used), "x-ratelimit-reset": str(int(time.time()) + 3600),
                "x-ratelimit-resource": self.resource}


class FakeServer:
    """Start with ``with Fake(...) as fake:``; ``fake.url`` is the base URL to configure."""

    #: fault kinds a random fault is drawn from (``lost`` only where :meth:`lost_allowed`)
    fault_kinds: tuple[str, ...] = ("502", "503", "429", "reset", "lost")

    def __init__(self, *, spec: OpenApiSpec | None = None, prefix: str = "", fault_rate: float = 0.0, seed: int = 1,
                 fault_kinds: tuple[str, ...] | None = None, fault_retry_after: int | None = 0,
                 lost_methods: tuple[str, ...] = WRITES, per_resource_faults: bool = False,
                 keep_bodies: bool = True) -> None:
        self.spec = spec
        self.prefix = prefix.rstrip("/")
        self.fault_rate = fault_rate
        if fault_kinds is not None:
            self.fault_kinds = fault_kinds
        #: ``Retry-After`` of random 429s and 5xx (``None``: no header); a random ``lost`` hits ``lost_methods``
        self.fault_retry_after = fault_retry_after
        self.lost_methods = lost_methods
        self.keep_bodies = keep_bodies
        self._dice = FaultDice(seed, per_resource_faults)
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.expected_violations = 0
        self.faults: list[Fault] = []
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._active = 0  # requests being read or answered
        self._last_activity = time.monotonic()
        #: requests whose change was made and whose answer is held back (a queued ``held`` fault)
        self.held: list[Recorded] = []
        self._released = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Any:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LoopbackServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self.release_held()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The base URL to configure (the origin plus ``prefix``)."""
        return self.origin + self.prefix

    # --- test helpers --------------------------------------------------------------------------------

    def inject(self, kind: str, method: str | None = None, path: str | None = None, times: int = 1,
               retry_after: int | None = 7) -> None:
        """Queue a fault for the next matching requests."""
        with self.lock:
            self.faults.append(Fault(kind, method, path, times, retry_after))

    def release_held(self) -> None:
        """Let held answers go (dropped: the client that waited for them is usually dead by now)."""
        self._released.set()

    def expect_violations(self, n: int = 1) -> None:
        """This test sends ``n`` spec-invalid requests on purpose."""
        self.expected_violations += n

    def violation(self, text: str) -> None:
        """Record a request that breaks the vendor's documented contract."""
        with self.lock:
            self.violations.append(text)

    def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no request has been in progress for ``quiet`` seconds (requests a killed client sent
        before it died are then all counted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = self._active == 0 and time.monotonic() - self._last_activity >= quiet
            if idle:
                return
            time.sleep(0.02)
        raise AssertionError(f"the fake was still busy after {timeout} s")

    def calls(self, method: str | None = None, path: str | None = None,
              operation: str | None = None) -> list[Recorded]:
        """Requests seen, filtered by method, path regex and operation."""
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path)) and (operation is None or r.operation == operation)]

    # --- hooks ---------------------------------------------------------------------------------------

    def headers_for(self, rec: Recorded) -> dict[str, str]:
        """Headers on every answer, faults included (rate-limit counters); called under the lock."""
        return {}

    def gate(self, rec: Recorded) -> Reply | None:
        """Checks before faults and changes (credentials, spec); an answer here ends the request."""
        return None

    def respond(self, rec: Recorded) -> Reply:
        """The real answer; called under the lock."""
        raise NotImplementedError

    def resource(self, rec: Recorded) -> str:
        """What a request is about, for per-resource fault dice."""
        return f"{rec.method} {rec.path}"

    def lost_allowed(self, rec: Recorded) -> bool:
        """Whether a random ``lost`` may hit this request (where a retry could duplicate something)."""
        return rec.method in self.lost_methods

    def error(self, status: int, message: str) -> Reply:
        """The vendor's error body shape."""
        return Reply(status, {"message": message})

    def fault_reply(self, fault: Fault, rec: Recorded) -> Reply:
        """The answer of an injected or rolled fault (``reset`` drops the connection)."""
        if fault.kind == "reset":
            raise Drop
        retry = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "429":
            reply = self.error(429, "Too Many Requests")
            reply.headers.update(retry)
            return reply
        if fault.kind in ("500", "502", "503"):
            reply = self.error(int(fault.kind), "Server Error")
            if fault.retry_after_on_5xx:
                reply.headers.update(retry)
            return reply
        raise AssertionError(f"unknown fault kind {fault.kind!r}")

    # --- helpers for hooks ---------------------------------------------------------------------------

    def check_spec(self, rec: Recorded, path: str) -> tuple[Route, dict[str, str]] | Reply:
        """The request against ``self.spec``: its route and path parameters, or the vendor's 404 (no such
        operation) or 422 (invalid parameters or body) answer, the violation recorded."""
        if self.spec is None:
            return self.error(500, "fake started without a spec")
        matched = self.spec.match(rec.method, path)
        if matched is None:
            self.violation(f"{rec.method} {path}: no such operation in the spec")
            return self.error(404, "Not Found")
        route, params = matched
        rec.operation, rec.params = route.operation_id, params
        errors = self.spec.validate(route, params, rec.query, rec.raw or None)
        if errors:
            self.violation(f"{route.operation_id}: " + "; ".join(errors))
            return self.error(422, "Invalid request.\n\n" + "\n".join(errors))
        return route, params

    def next_fault(self, rec: Recorded) -> Fault | None:
        """A queued fault that matches, else a rolled one (called under the lock)."""
        for fault in self.faults:
            if fault.times > 0 and fault.matches(rec):
                fault.times -= 1
                return fault
        if self.fault_rate:
            kinds = [k for k in self.fault_kinds if k != "lost" or self.lost_allowed(rec)]
            kind = self._dice.roll(self.resource(rec), self.fault_rate, kinds)
            if kind is not None:
                return Fault(kind, retry_after=self.fault_retry_after,
                             retry_after_on_5xx=self.fault_retry_after is not None, random=True)
        return None

    def dispatch(self, rec: Recorded) -> Reply:
        """gate → fault → respond; a lost answer raises :class:`Drop` after the change is made."""
        with self.lock:
            headers = self.headers_for(rec)
        reply = self.gate(rec)
        if reply is None:
            with self.lock:
                fault = self.next_fault(rec)
            if fault is not None and fault.kind not in ("lost", "held"):
                reply = self.fault_reply(fault, rec)
            else:
                with self.lock:
                    reply = self.respond(rec)
                if fault is not None:  # "lost": the change is made, the answer never arrives
                    if fault.kind == "held":  # ... until the test has killed the client that waits for it
                        with self.lock:
                            self.held.append(rec)
                        self._released.wait(60)
                    raise Drop
        reply.headers = {**headers, **reply.headers}
        return reply


class _Handler(BaseHTTPRequestHandler):
    owner: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        return

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_GET

    def _body(self) -> tuple[bytes, bool] | None:
        """The request body; None when the client went away before sending all of it."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks), True
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    return None
                chunks.append(chunk)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return (raw, False) if len(raw) == length else None

    def _serve(self) -> None:
        fake = self.owner
        with fake.lock:
            fake._active += 1
        try:
            self._serve_one()
        finally:
            with fake.lock:
                fake._active -= 1
                fake._last_activity = time.monotonic()

    def _serve_one(self) -> None:
        fake = self.owner
        body_read = self._body()
        if body_read is None:  # a truncated request (the client died mid-send): no server would act on it
            self.close_connection = True
            return
        raw, chunked = body_read
        parts = urlsplit(self.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace") if fake.keep_bodies else None
        rec = Recorded(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), body,
                       {k.lower(): v for k, v in self.headers.items()}, raw=raw, chunked=chunked)
        with fake.lock:
            fake.requests.append(rec)
        try:
            reply = fake.dispatch(rec)
        except Drop:
            rec.status = -1
            self.close_connection = True
            return
        finally:
            if not fake.keep_bodies:
                rec.raw = b""
        rec.status = reply.status
        data, ctype = reply.encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# --- pagination helpers --------------------------------------------------------------------------------


def _window(items: list[Any], query: dict[str, list[str]], *, page_param: str = "page", per_page_param: str =
            "per_page", default: int = 30, cap: int = 100) -> tuple[list[Any], int, int]:
    page = max(1, int((query.get(page_param) or ["1"])[0]))
    per = max(1, min(cap, int((query.get(per_page_param) or [str(default)])[0])))
    return items[(page - 1) * per: page * per], page, per


def page_link(items: list[Any], url: str, query: dict[str, list[str]], **kw: Any) -> tuple[list[Any], dict[str, str]]:
    """One page and its ``Link`` header (``next``/``last`` when there is more, ``first``/``prev`` after the
    first page), GitHub-style."""
    chunk, page, per = _window(items, query, **kw)
    last = max(1, -(-len(items) // per))

    def link(p: int, rel: str) -> str:
        q = {k: v[0] for k, v in query.items()}
        q.update(page=str(p), per_page=str(per))
        return f'<{url}?{urlencode(q)}>; rel="{rel}"'

    rels = ([link(page + 1, "next"), link(last, "last")] if page < last else [])
    rels += ([link(1, "first"), link(page - 1, "prev")] if page > 1 else [])
    return chunk, ({"Link": ", ".join(rels)} if rels else {})


def page_number_header(items: list[Any], query: dict[str, list[str]], header: str = "X-Next-Page",
                       **kw: Any) -> tuple[list[Any], dict[str, str]]:
    """One page and GitLab's ``X-Next-Page`` (empty on the last page) plus ``X-Page``/``X-Total``."""
    chunk, page, per = _window(items, query, **kw)
    more = page * per < len(items)
    return chunk, {header: str(page + 1) if more else "", "X-Page": str(page), "X-Per-Page": str(per),
                   "X-Total": str(len(items))}


def page_token(items: list[Any], query: dict[str, list[str]], header: str = "x-ms-continuationtoken",
               param: str = "continuationToken", size: int = 100) -> tuple[list[Any], dict[str, str]]:
    """One page after the opaque token in ``param`` and the header carrying the next token (Azure DevOps)."""
    start = int((query.get(param) or ["0"])[0] or 0)
    chunk = items[start:start + size]
    return chunk, ({header: str(start + size)} if start + size < len(items) else {})


def page_json_next(items: list[Any], url: str, query: dict[str, list[str]], size: int = 10) -> dict[str, Any]:
    """Bitbucket's page body: ``values``, ``page``, ``size`` and the absolute ``next`` URL when there is more."""
    page = max(1, int((query.get("page") or ["1"])[0]))
    body: dict[str, Any] = {"values": items[(page - 1) * size: page * size], "page": page, "size": len(items),
                            "pagelen": size}
    if page * size < len(items):
        q = {k: v[0] for k, v in query.items()}
        q["page"] = str(page + 1)
        body["next"] = f"{url}?{urlencode(q)}"
    return body
