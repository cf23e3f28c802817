"""Every error ci-sidecar raises on purpose, as one tree with one root, and the JSON-RPC codes.

::

    SidecarError                        every error ci-sidecar raises on purpose
    ├── WireError                       answered to the client with its own code and data (docs/protocol.md §Errors)
    │   ├── RequestError                the request cannot be served as sent: final, the client's to fix
    │   │   ├── ParseError              -32700
    │   │   ├── InvalidRequest          -32600
    │   │   ├── MethodNotFound          -32601
    │   │   ├── ServerNotInitialized    -32002
    │   │   ├── BadInput                what the request carries is not acceptable
    │   │   │   ├── InvalidParams       -32602
    │   │   │   ├── PathNotAllowed      -31005
    │   │   │   │   └── PathNotFound    -31005  the file does not exist ("File not found: …")
    │   │   │   └── LimitExceeded       -31006
    │   │   ├── UnknownTestRun          -31001
    │   │   ├── UnknownArtifact         -31002
    │   │   └── RunFinalized            -31008
    │   ├── RequestCancelled            -32800  the client cancelled it
    │   ├── ProviderError               a provider did not take a write
    │   │   ├── ProviderRefused         -31003  final: the provider answered no
    │   │   ├── NotSupported            -31007  final: the provider cannot do it, and no tier is left
    │   │   ├── ProviderUnreachable     -31004  retryable, and the retries ran out
    │   │   └── DeliveryFailed          a write awaited with ``wait: true`` failed: its delivery error's code
    │   └── InternalError               -32603  an incident id, never a traceback
    ├── StateError                      the state directory cannot be used      (state/journal.py)
    │   ├── StateLocked                 another daemon holds it                 (service/store.py)
    │   ├── InstanceBusy                an instance's lock is held by another daemon (state/instances.py)
    │   ├── JournalBroken               a write failed; the tail is unknown     (state/journal.py)
    │   └── JournalGap                  segments needed for recovery are gone   (state/journal.py)
    ├── ConfigError                     a configuration source is invalid; also a ValueError (config_schema.py)
    ├── KnobError                       no knob of that provider, or a wrong value; also a ValueError
    │                                   (providers/settings.py; the configuration turns it into a ConfigError)
    ├── CannotServe                     the daemon cannot start; the CLI prints why (daemon_main.py)
    ├── Interrupted                     a second signal: exec stops waiting for deliveries (exec_signals.py)
    ├── TransportError                  bytes or endpoints the daemon cannot use
    │   ├── FramingError                a peer broke the framing: one -32700 reply (transport/framing.py)
    │   ├── SocketPathError             the socket path is unusable             (transport/unix.py)
    │   ├── AlreadyRunning              another daemon holds the socket         (transport/unix.py)
    │   └── StdioUnavailable            stdio cannot carry the protocol         (transport/stdio.py)
    ├── ExchangeError                   a provider's exchange did not happen or did not succeed; the
    │   │                               delivery layer decides whether and when to try again
    │   ├── HttpError                   its ``outcome`` says whether a retry may help (providers/_http/model.py)
    │   ├── S3Failed                    likewise, with S3's error code          (providers/s3.py)
    │   ├── ConditionFailed             a conditional write lost: read, then try again (providers/s3objects.py)
    │   └── WriteDeferred               held back by the write budget: nothing sent (providers/writes.py)
    └── ContentError                    content the daemon reads or is given is unusable; the caller turns it
        │                               into a wire error or a per-item result
        ├── TooLarge                    past a size limit                       (service/casstore.py)
        ├── NotRegularFile              a directory, FIFO, device or symlink    (service/casstore.py)
        ├── SummaryError                counts that contradict each other       (service/summary.py)
        ├── NotJUnit                    not a JUnit/xUnit document              (reports/_junit_reader.py)
        ├── Refused                     a DTD or entity: parsing stops          (reports/_junit_reader.py)
        ├── SourceChanged               a stored file changed under a write     (providers/github/_zip.py)
        └── StagingError                a name or folder outside the staged tier's folder; also a ValueError
                                        (providers/_staging.py)

Only :class:`WireError` reaches a client as it is: the rpc layer answers any other exception, these
included, with an :class:`InternalError` incident id and keeps the details in the daemon's log. Wire errors
derive from :class:`jsonrpcserver.JsonRpcError`, so handlers raise them the way jsonrpcserver documents.
``data`` has one shape per code.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonrpcserver import JsonRpcError

    from .records import ErrorInfo

__all__ = [
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "SERVER_NOT_INITIALIZED",
    "REQUEST_CANCELLED",
    "SidecarError",
    "WireError",
    "RequestError",
    "BadInput",
    "ProviderError",
    "StateError",
    "TransportError",
    "ExchangeError",
    "ContentError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "ServerNotInitialized",
    "RequestCancelled",
    "UnknownTestRun",
    "UnknownArtifact",
    "ProviderRefused",
    "ProviderUnreachable",
    "PathNotAllowed",
    "PathNotFound",
    "LimitExceeded",
    "NotSupported",
    "RunFinalized",
    "DeliveryFailed",
]



def _json_rpc_error() -> type[Exception]:
    """``jsonrpcserver.JsonRpcError`` without running the package's ``__init__``.

    That ``__init__`` imports jsonschema, asyncio and http.server (about 50 ms of every daemon start-up)
    while the daemon needs this one class. Its two small modules are loaded under their own names, so a
    later ``import jsonrpcserver`` reuses them and both ways give the very same class (only the package
    attribute ``jsonrpcserver.exceptions`` is then unset; ``from jsonrpcserver.exceptions import …`` works).
    """
    if "jsonrpcserver" in sys.modules or "jsonrpcserver.exceptions" in sys.modules:
        from jsonrpcserver.exceptions import JsonRpcError as cls

        return cls
    spec = importlib.util.find_spec("jsonrpcserver")  # locates the package without executing it
    where = list(spec.submodule_search_locations or []) if spec else []
    if not where:
        from jsonrpcserver import JsonRpcError as cls  # an unusual layout: the ordinary import

        return cls
    for name in ("sentinels", "exceptions"):  # exceptions imports NODATA from sentinels
        sub = importlib.util.spec_from_file_location(f"jsonrpcserver.{name}", os.path.join(where[0], f"{name}.py"))
        assert sub is not None and sub.loader is not None
        module = importlib.util.module_from_spec(sub)
        sys.modules[sub.name] = module
        try:
            sub.loader.exec_module(module)
        except BaseException:
            del sys.modules[sub.name]
            raise
    return sys.modules["jsonrpcserver.exceptions"].JsonRpcError


JsonRpcError = _json_rpc_error()  # noqa: F811  (the real class; the import above is for type checkers)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED = -32800


class SidecarError(Exception):
    """Root of every error ci-sidecar raises on purpose (the tree is drawn in this module's docstring)."""


class WireError(SidecarError, JsonRpcError):
    """An error answered to the client as it is: ``code``, ``message`` and an optional ``data`` object."""

    code: int = INTERNAL_ERROR
    default_message = "Internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        JsonRpcError.__init__(self, type(self).code, message or self.default_message, data)
        Exception.__init__(self, self.message)

    def to_object(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


class RequestError(WireError):
    """The request cannot be served as sent: final, the client's to fix."""


class BadInput(RequestError):
    """What the request carries (params, a path, a size) is not acceptable."""


class ProviderError(WireError):
    """A provider did not take a write (refused, unable, or unreachable after the retries)."""


class StateError(SidecarError):
    """The state directory cannot be used (the state layer's errors, and the lock)."""


class TransportError(SidecarError):
    """Bytes or an endpoint the daemon cannot use (framing, a socket path, stdio)."""


class ExchangeError(SidecarError):
    """A provider's exchange did not happen or did not succeed; the delivery layer decides whether and when to
    try again (the provider turns it into an ``Outcome``)."""


class ContentError(SidecarError):
    """Content the daemon reads or is given is unusable; the caller turns it into a wire error or a result."""


class ParseError(RequestError):
    code = PARSE_ERROR
    default_message = "Parse error"

    def __init__(self, reason: str) -> None:
        super().__init__("Parse error", {"reason": reason})


class InvalidRequest(RequestError):
    code = INVALID_REQUEST
    default_message = "Invalid request"

    def __init__(self, reason: str, supported: list[int] | None = None) -> None:
        data: dict[str, Any] = {"reason": reason}
        if supported is not None:
            data["supported"] = supported
        super().__init__("Invalid request: " + reason, data)


class MethodNotFound(RequestError):
    code = METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"Method not found: {method}", {"method": method})


class InvalidParams(BadInput):
    code = INVALID_PARAMS

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Invalid params at {path}: {reason}", {"path": path, "reason": reason})


class InternalError(WireError):
    """Never carries a traceback: only an incident id that is also in the daemon's log."""

    code = INTERNAL_ERROR

    def __init__(self, incident: str) -> None:
        super().__init__(f"Internal error (incident {incident})", {"incident": incident})


class ServerNotInitialized(RequestError):
    code = SERVER_NOT_INITIALIZED
    default_message = "Server not initialized: send initialize first"


class RequestCancelled(WireError):
    code = REQUEST_CANCELLED
    default_message = "Request cancelled"


class UnknownTestRun(RequestError):
    code = -31001

    def __init__(self, test_run_id: str) -> None:
        super().__init__(f"Unknown test run: {test_run_id}", {"test_run_id": test_run_id})


class UnknownArtifact(RequestError):
    code = -31002

    def __init__(self, test_run_id: str, name: str) -> None:
        super().__init__(f"Unknown artifact {name!r} in run {test_run_id}", {"test_run_id": test_run_id, "name": name})


class ProviderRefused(ProviderError):
    code = -31003

    def __init__(self, provider: str, status: int | None, message: str) -> None:
        super().__init__(
            f"{provider} refused the request: {message}",
            {"provider": provider, "status": status, "message": message},
        )


class ProviderUnreachable(ProviderError):
    code = -31004

    def __init__(self, provider: str, attempts: int, last_error: str) -> None:
        super().__init__(
            f"{provider} unreachable after {attempts} attempts: {last_error}",
            {"provider": provider, "attempts": attempts, "last_error": last_error},
        )


class PathNotAllowed(BadInput):
    code = -31005

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Path not allowed: {path}: {reason}", {"path": path, "reason": reason})


class PathNotFound(PathNotAllowed):
    """The same code (clients handle -31005 already), but a missing file is not called forbidden."""

    def __init__(self, path: str, looked_at: str) -> None:
        BadInput.__init__(self, f"File not found: {path}" + (f" (looked for {looked_at})" if looked_at != path else ""),
                          {"path": path, "reason": "no such file"})


class LimitExceeded(BadInput):
    code = -31006

    def __init__(self, limit: str | int, actual: int, message: str | None = None) -> None:
        super().__init__(message or f"Limit exceeded: {actual} > {limit}", {"limit": limit, "actual": actual})


class NotSupported(ProviderError):
    code = -31007

    def __init__(self, provider: str, operation: str, tier: str = "none") -> None:
        super().__init__(
            f"{provider} does not support {operation}",
            {"provider": provider, "operation": operation, "tier": tier},
        )


class RunFinalized(RequestError):
    code = -31008

    def __init__(self, test_run_id: str) -> None:
        super().__init__(f"Test run {test_run_id} is already finalized", {"test_run_id": test_run_id})


class DeliveryFailed(ProviderError):
    """A write awaited with ``wait: true`` failed: answers the delivery error's own code (-31003/-31004/-31007)."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message, error.data)
        self.code = error.code  # after the base, which sets the class default
