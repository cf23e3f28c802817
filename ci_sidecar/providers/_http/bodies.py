"""Request bodies a vendor API takes: JSON, a form, multipart (fields and files), raw bytes or a stream.

Each kind turns into the keyword arguments of ``httpx.AsyncClient.build_request`` and the headers it implies.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

__all__ = ["Body", "Json", "Form", "Multipart", "Raw", "FileChunks", "file_chunks"]

_CHUNK = 1 << 20


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    """The file at ``path`` in 1 MiB pieces (a stored artifact is never held in memory whole)."""
    async with await trio.open_file(path, "rb") as fh:
        while chunk := await fh.read(_CHUNK):
            yield chunk


@dataclass(frozen=True)
class FileChunks:
    """A multipart file's content read from ``path`` while it is sent; ``length`` bytes (the Content-Length of
    the whole body is computed from it, so the upload is not chunked)."""

    path: str
    length: int


class Body:
    """Base of the body kinds."""

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(``build_request`` keyword arguments, headers the body implies)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Json(Body):
    """``application/json`` (msgspec-encoded)."""

    value: Any

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {"content": msgspec.json.encode(self.value)}, {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Form(Body):
    """``application/x-www-form-urlencoded`` (Jenkins' build and script endpoints)."""

    fields: Mapping[str, str]

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        from urllib.parse import urlencode

        return ({"content": urlencode(list(self.fields.items())).encode()},
                {"Content-Type": "application/x-www-form-urlencoded"})


@dataclass(frozen=True)
class Multipart(Body):
    """``multipart/form-data``: text ``fields`` and ``files`` as name → (file name, content, content type); a
    file's content is bytes, or :class:`FileChunks` to stream it from disk (the body is then written here)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, tuple[str, bytes | FileChunks, str]] = field(default_factory=dict)

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        if not any(isinstance(content, FileChunks) for _, content, _ in self.files.values()):
            # httpx writes the boundary and its Content-Type header
            return {"data": dict(self.fields), "files": dict(self.files)}, {}
        boundary = secrets.token_hex(16)
        parts: list[bytes | FileChunks] = []
        for name, value in self.fields.items():
            parts += [_part_head(boundary, name) + b"\r\n" + value.encode() + b"\r\n"]
        for name, (filename, content, ctype) in self.files.items():
            parts += [_part_head(boundary, name, filename, ctype) + b"\r\n", content, b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode())
        length = sum(p.length if isinstance(p, FileChunks) else len(p) for p in parts)
        return ({"content": _stream(parts)},
                {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)})


def _quoted(text: str) -> str:
    """A header parameter value as browsers (and httpx) escape it in form-data."""
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _part_head(boundary: str, name: str, filename: str | None = None, ctype: str | None = None) -> bytes:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"'
    if filename is not None:
        head += f'; filename="{_quoted(filename)}"\r\nContent-Type: {ctype or "application/octet-stream"}'
    return (head + "\r\n").encode()


async def _stream(parts: list[bytes | FileChunks]) -> AsyncIterator[bytes]:
    for part in parts:
        if isinstance(part, FileChunks):
            async for chunk in file_chunks(part.path):
                yield chunk
        else:
            yield part


@dataclass(frozen=True)
class Raw(Body):
    """Bytes, or a stream of them with a known ``length`` (some stores refuse chunked uploads)."""

    data: bytes | AsyncIterable[bytes]
    content_type: str | None = None
    length: int | None = None

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        headers: dict[str, str] = {}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if self.length is not None:
            headers["Content-Length"] = str(self.length)
        elif isinstance(self.data, bytes | bytearray):
            headers["Content-Length"] = str(len(self.data))
        return {"content": self.data}, headers
