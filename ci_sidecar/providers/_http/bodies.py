"""Request bodies a vendor API takes: JSON, a form, multipart (fields and files), raw bytes or a stream.

Each kind turns into the keyword arguments of ``httpx.AsyncClient.build_request`` and the headers it implies.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["Body", "Json", "Form", "Multipart", "Raw"]


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
    """``multipart/form-data``: text ``fields`` and ``files`` as name → (file name, bytes, content type)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, tuple[str, bytes, str]] = field(default_factory=dict)

    def build(self) -> tuple[dict[str, Any], dict[str, str]]:
        # httpx writes the boundary and its Content-Type header
        return {"data": dict(self.fields), "files": dict(self.files)}, {}


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
