"""LSP base-protocol framing: ``Content-Length: N\\r\\n\\r\\n`` followed by N bytes of UTF-8 JSON.

The parser is pure (bytes in, frames out) so it can be fuzzed without I/O; :class:`FrameReader` drives it
over any trio ``ReceiveStream``. Any framing error is fatal for the connection: a byte stream whose
framing is broken cannot be resynchronised, so the caller answers once with -32700 and closes.
"""

from __future__ import annotations

import math

import trio

from ci_sidecar.protocol.errors import TransportError

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_BODY_BYTES",
    "FramingError",
    "FrameParser",
    "FrameReader",
    "encode_frame",
]

DEFAULT_MAX_HEADER_BYTES = 8 * 1024
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_HEADER_END = b"\r\n\r\n"
_READ_CHUNK = 64 * 1024
_ACCEPTED_CHARSETS = {"utf-8", "utf8"}


class FramingError(TransportError):
    """The byte stream violates the framing rules; ``reason`` is safe to send to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_frame(body: bytes) -> bytes:
    """Frame one message body (already UTF-8 bytes) for the wire."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _parse_header_block(block: bytes) -> int:
    """Return the Content-Length of a header block (without the final CRLFCRLF)."""
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        raise FramingError("header is not ASCII") from None
    length: int | None = None
    for line in text.split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FramingError("malformed header line")
        key = name.strip().lower()
        value = value.strip()
        if key == "content-length":
            if length is not None:
                raise FramingError("duplicate Content-Length")
            if not value.isdigit() or len(value) > 12:
                raise FramingError("invalid Content-Length")
            length = int(value)
        elif key == "content-type":
            for param in value.split(";")[1:]:
                pname, _, pvalue = param.partition("=")
                if pname.strip().lower() == "charset" and pvalue.strip().strip('"').lower() not in _ACCEPTED_CHARSETS:
                    raise FramingError("unsupported charset (only utf-8)")
        # other headers are ignored, as LSP allows
    if length is None:
        raise FramingError("missing Content-Length")
    return length


class FrameParser:
    """Incremental parser: feed bytes, take complete bodies. Raises :class:`FramingError` on bad input."""

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._need: int | None = None  # body length once the header block was parsed

    @property
    def buffered(self) -> int:
        """Bytes held but not yet returned as a frame."""
        return len(self._buf)

    @property
    def mid_header(self) -> bool:
        """True when part of a header block has been received but not its end."""
        return bool(self._buf) and self._need is None

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has been received (EOF now means a truncated message)."""
        return bool(self._buf) or self._need is not None

    @property
    def wanted(self) -> int:
        """How many bytes to ask the stream for: what the current body still needs, within bounds,
        so a big body arrives in few reads and small ones don't over-allocate."""
        if self._need is None:
            return _READ_CHUNK
        return max(_READ_CHUNK, min(self._need - len(self._buf), 1 << 20))

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buf += data

    def next_frame(self) -> bytes | None:
        """Return the next complete body, or ``None`` if more bytes are needed."""
        if self._need is None:
            end = self._buf.find(_HEADER_END, 0, self.max_header_bytes + len(_HEADER_END))
            if end < 0:
                if len(self._buf) > self.max_header_bytes:
                    raise FramingError("header too large")
                return None
            if end > self.max_header_bytes:
                raise FramingError("header too large")
            length = _parse_header_block(bytes(self._buf[:end]))
            if length > self.max_body_bytes:
                raise FramingError(f"message too large ({length} > {self.max_body_bytes} bytes)")
            del self._buf[: end + len(_HEADER_END)]
            self._need = length
        if len(self._buf) < self._need:
            return None
        body = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = None
        return body


class FrameReader:
    """Reads framed message bodies from a trio stream.

    A header block must be complete within ``header_timeout_s`` of its first byte (``None``: no
    limit), so a peer that trickles a header a byte at a time cannot hold a connection forever.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, parser: FrameParser,
                 header_timeout_s: float | None = None) -> None:
        self._stream = stream
        self._parser = parser
        self._header_timeout_s = header_timeout_s
        self._header_deadline = math.inf

    @property
    def mid_frame(self) -> bool:
        """Part of a message has been received."""
        return self._parser.mid_frame

    def buffered(self) -> bytes | None:
        """The next body when it has already been received in full (no I/O), else ``None``."""
        frame = self._parser.next_frame()
        if frame is not None:
            self._header_deadline = math.inf
        return frame

    async def receive(self) -> bytes | None:
        """Next body, or ``None`` at a clean end of stream. A truncated frame or a header that is not
        complete in time raises FramingError.

        Cancellation: safe; bytes already received stay buffered for the next call.
        """
        while True:
            frame = self._parser.next_frame()
            if frame is not None:
                self._header_deadline = math.inf
                return frame
            if self._header_timeout_s is None or not self._parser.mid_header:
                self._header_deadline = math.inf
            elif self._header_deadline == math.inf:
                self._header_deadline = trio.current_time() + self._header_timeout_s
            data = b""
            with trio.move_on_at(self._header_deadline) as timer:
                data = await self._stream.receive_some(self._parser.wanted)
            if timer.cancelled_caught:
                raise FramingError(f"header not complete within {self._header_timeout_s:g} s")
            if not data:
                if self._parser.mid_frame:
                    raise FramingError("connection closed mid-message")
                return None
            self._parser.feed(data)
