"""Every error the protocol can answer with (PROTOCOL.md §Errors), one class per code.

Errors derive from :class:`jsonrpcserver.JsonRpcError`, so handlers raise them the way jsonrpcserver
documents, and the rpc layer turns them into error objects. ``data`` has one shape per code.
"""

from __future__ import annotations

from typing import Any

from jsonrpcserver import JsonRpcError

__all__ = [
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "SERVER_NOT_INITIALIZED",
    "REQUEST_CANCELLED",
    "SidecarError",
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
    "LimitExceeded",
    "NotSupported",
    "RunFinalized",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED = -32800


class SidecarError(JsonRpcError):
    """Base of all protocol errors: ``code``, ``message`` and an optional ``data`` object."""

    code: int = INTERNAL_ERROR
    default_message = "Internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        super().__init__(type(self).code, message or self.default_message, data)
        Exception.__init__(self, self.message)

    def to_object(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


class ParseError(SidecarError):
    code = PARSE_ERROR
    default_message = "Parse error"

    def __init__(self, reason: str) -> None:
        super().__init__("Parse error", {"reason": reason})


class InvalidRequest(SidecarError):
    code = INVALID_REQUEST
    default_message = "Invalid request"

    def __init__(self, reason: str, supported: list[int] | None = None) -> None:
        data: dict[str, Any] = {"reason": reason}
        if supported is not None:
            data["supported"] = supported
        super().__init__("Invalid request: " + reason, data)


class MethodNotFound(SidecarError):
    code = METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"Method not found: {method}", {"method": method})


class InvalidParams(SidecarError):
    code = INVALID_PARAMS

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Invalid params at {path}: {reason}", {"path": path, "reason": reason})


class InternalError(SidecarError):
    """Never carries a traceback: only an incident id that is also in the daemon's log."""

    code = INTERNAL_ERROR

    def __init__(self, incident: str) -> None:
        super().__init__(f"Internal error (incident {incident})", {"incident": incident})


class ServerNotInitialized(SidecarError):
    code = SERVER_NOT_INITIALIZED
    default_message = "Server not initialized: send initialize first"


class RequestCancelled(SidecarError):
    code = REQUEST_CANCELLED
    default_message = "Request cancelled"


class UnknownTestRun(SidecarError):
    code = -31001

    def __init__(self, test_run_id: str) -> None:
        super().__init__(f"Unknown test run: {test_run_id}", {"test_run_id": test_run_id})


class UnknownArtifact(SidecarError):
    code = -31002

    def __init__(self, test_run_id: str, name: str) -> None:
        super().__init__(f"Unknown artifact {name!r} in run {test_run_id}", {"test_run_id": test_run_id, "name": name})


class ProviderRefused(SidecarError):
    code = -31003

    def __init__(self, provider: str, status: int | None, message: str) -> None:
        super().__init__(
            f"{provider} refused the request: {message}",
            {"provider": provider, "status": status, "message": message},
        )


class ProviderUnreachable(SidecarError):
    code = -31004

    def __init__(self, provider: str, attempts: int, last_error: str) -> None:
        super().__init__(
            f"{provider} unreachable after {attempts} attempts: {last_error}",
            {"provider": provider, "attempts": attempts, "last_error": last_error},
        )


class PathNotAllowed(SidecarError):
    code = -31005

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Path not allowed: {path}: {reason}", {"path": path, "reason": reason})


class LimitExceeded(SidecarError):
    code = -31006

    def __init__(self, limit: str | int, actual: int, message: str | None = None) -> None:
        super().__init__(message or f"Limit exceeded: {actual} > {limit}", {"limit": limit, "actual": actual})


class NotSupported(SidecarError):
    code = -31007

    def __init__(self, provider: str, operation: str, tier: str = "none") -> None:
        super().__init__(
            f"{provider} does not support {operation}",
            {"provider": provider, "operation": operation, "tier": tier},
        )


class RunFinalized(SidecarError):
    code = -31008

    def __init__(self, test_run_id: str) -> None:
        super().__init__(f"Test run {test_run_id} is already finalized", {"test_run_id": test_run_id})
