"""JSON-RPC 2.0 envelope: decoding one message body into requests, encoding responses.

Owned here (msgspec) rather than by jsonrpcserver because the spec's batch rules need one error per bad
element and jsonrpcserver answers a partly bad batch with a single error (see RPC-NOTES §2.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
import msgspec
from msgspec import UNSET, UnsetType

from ci_sidecar.protocol.errors import InvalidParams, InvalidRequest, ParseError, WireError

__all__ = ["JSON_ERRORS", "Request", "Invalid", "decode_message", "json_error_reason", "encode_result", "encode_error", "params_error"]

RequestId = int | str | None


class _Envelope(msgspec.Struct):
    method: str
    jsonrpc: str | None = None
    id: int | str | None | UnsetType = UNSET
    params: msgspec.Raw = msgspec.Raw()


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_batch = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode

#: What decoding untrusted JSON may raise besides a validation error: malformed JSON, bytes that are
#: not UTF-8 inside a string (msgspec raises UnicodeDecodeError), nesting deeper than the decoder's
#: recursion limit (RecursionError). All of them are a parse error for the client, never a crash.
JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def json_error_reason(exc: BaseException) -> str:
    """A short reason for -32700 that names the problem without echoing the client's bytes."""
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return str(exc)


@dataclass(slots=True)
class Request:
    """A valid request or notification (``is_notification`` when it has no ``id``)."""

    method: str
    id: RequestId
    params: msgspec.Raw
    is_notification: bool


@dataclass(slots=True)
class Invalid:
    """An element that is not a valid request: answered with ``error`` (unless it was a notification)."""

    id: RequestId
    error: WireError


def _salvage_id(raw: bytes | msgspec.Raw) -> RequestId:
    """Best-effort id of an invalid request, so the client can match the error to its request."""
    try:
        obj = _decode_any(raw)
    except JSON_ERRORS:
        return None
    if isinstance(obj, dict):
        rid = obj.get("id")
        if isinstance(rid, (str, int)) and not isinstance(rid, bool):
            return rid
    return None


def _decode_one(raw: bytes | msgspec.Raw) -> Request | Invalid | None:
    try:
        env = _decode_envelope(raw)
    except msgspec.ValidationError as exc:
        return Invalid(_salvage_id(raw), InvalidRequest(str(exc)))
    if env.jsonrpc != "2.0":
        return Invalid(_salvage_id(raw), InvalidRequest('jsonrpc must be "2.0"'))
    if len(env.params) and bytes(memoryview(env.params)[:1]) not in (b"{", b"["):
        # JSON-RPC: params, when present, is a structured value
        rid = None if env.id is UNSET else env.id
        return Invalid(rid, InvalidRequest("params must be an object or an array"))
    if env.id is UNSET:
        return Request(env.method, None, env.params, True)
    return Request(env.method, env.id, env.params, False)


def decode_message(body: bytes, max_batch: int | None = None) -> tuple[bool, list[Request | Invalid]] | WireError:
    """Split one message body into its elements.

    Returns ``(is_batch, elements)``, or a single error to answer with ``id: null`` (invalid JSON,
    including bytes that are not UTF-8 and nesting too deep; an empty batch or one of more than
    ``max_batch`` elements; a body that is neither an object nor an array).
    """
    try:
        return _decode_message(body, max_batch)
    except JSON_ERRORS as exc:
        return ParseError(json_error_reason(exc))


def _decode_message(body: bytes, max_batch: int | None) -> tuple[bool, list[Request | Invalid]] | WireError:
    stripped = body.lstrip()
    if stripped[:1] == b"[":
        try:
            raws = _decode_batch(body)
        except msgspec.DecodeError as exc:
            return ParseError(str(exc))
        if not raws:
            return InvalidRequest("empty batch")
        if max_batch is not None and len(raws) > max_batch:
            return InvalidRequest(f"batch of {len(raws)} requests; the limit is {max_batch}")
        out: list[Request | Invalid] = []
        for raw in raws:
            if bytes(memoryview(raw)[:1]) != b"{":
                out.append(Invalid(None, InvalidRequest("batch element is not an object")))
            else:
                out.append(_decode_one(raw))
        return True, out
    if stripped[:1] != b"{":
        try:
            _decode_any(body)
        except msgspec.DecodeError as exc:
            return ParseError(str(exc))
        return InvalidRequest("message is not an object or an array")
    try:
        return False, [_decode_one(body)]
    except msgspec.DecodeError as exc:  # malformed JSON (not a validation error)
        return ParseError(str(exc))


_encode = msgspec.json.encode
_id_bytes = _encode


def encode_result(rid: RequestId, result_json: bytes) -> bytes:
    """A success response; ``result_json`` is already encoded."""
    return b'{"jsonrpc":"2.0","id":' + _id_bytes(rid) + b',"result":' + result_json + b"}"


def encode_error(rid: RequestId, error: WireError) -> bytes:
    """An error response."""
    return b'{"jsonrpc":"2.0","id":' + _id_bytes(rid) + b',"error":' + _encode(error.to_object()) + b"}"


_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r"^(?P<reason>.*) - at `(?P<path>[^`]*)`$", re.S)


def params_error(exc: msgspec.ValidationError, prefix: str = "$") -> InvalidParams:
    """Turn msgspec's validation message into -32602 with ``{path, reason}``."""
    text = str(exc)
    m = _AT_PATH.match(text)
    path, reason = (m.group("path"), m.group("reason")) if m else (prefix, text)
    missing = _MISSING.search(reason)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return InvalidParams(path, reason)
